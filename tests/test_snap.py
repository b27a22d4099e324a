"""How far a word reaches for coverage: out to the edges of the speech it was heard in (pipeline/asr/snap.py).

faster-whisper cuts a word at a sentence end or after a pause to twice the
window's median word; coverage lets the edge words of each VAD segment reach
its edges, as far as a word can last, and no further. Stored times stay as heard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from pipeline.asr.coverage import coverage_columns, text_spans
from pipeline.asr.guard import load_hallucination_lexicon
from pipeline.asr.pieces import ChannelSpeech
from pipeline.asr.snap import CHAR_MAX_S, longest_s, snap_to_speech
from pipeline.asr.transcribe import transcribe_speech
from pipeline.config import default_config
from pipeline.records import SAMPLE_RATE_HZ, Call, CallEvidence, Channel, SpeechSegment, Utterance, Word

ASR = default_config().asr
LEXICON = load_hallucination_lexicon(ASR.guard.hallucination_lexicon)


def seg(role: str, start_s: float, end_s: float) -> SpeechSegment:
    return SpeechSegment(role, start_s, end_s, -20.0)


def utt(role: str, *words: tuple[str, float, float], suspect: bool = False) -> Utterance:
    ws = tuple(Word(t, a, b, 0.9) for t, a, b in words)
    return Utterance(role, ws[0].start_s, ws[-1].end_s, "".join(t for t, _, _ in words), ws, suspect=suspect,
                     suspect_reason="loop" if suspect else "")


def times(u: Utterance) -> list[tuple[str, float, float]]:
    return [(w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in u.words]


def test_a_word_lasts_at_most_half_a_second_a_spoken_character() -> None:
    assert CHAR_MAX_S == 0.5
    assert [longest_s(t) for t in ("好", "这个", "这个，", "OK", "，")] == [0.5, 1.0, 1.0, 1.0, 0.5]


def test_the_first_and_last_word_of_a_segment_reach_its_edges() -> None:
    # a drawn-out "这个…" cut by Whisper half a second before the voice stops
    heard = utt("customer", ("首先", 10.2, 10.6), ("咱们", 10.6, 11.0), ("这个", 12.0, 12.3))
    (snapped,) = snap_to_speech([heard], [seg("customer", 10.0, 12.9)])
    assert times(snapped) == [("首先", 10.0, 10.6), ("咱们", 10.6, 11.0), ("这个", 12.0, 12.9)]
    assert (snapped.start_s, snapped.end_s) == (10.0, 12.9)
    assert snapped.text == heard.text


def test_a_word_reaches_no_further_than_it_can_last_so_missing_words_stay_uncovered() -> None:
    # one character heard in 5 s of speech: it covers at most 0.5 s, the rest has no text
    heard = utt("agent", ("好", 2.0, 2.2))
    (snapped,) = snap_to_speech([heard], [seg("agent", 0.0, 5.0)])
    assert times(snapped) == [("好", 1.7, 2.2)]  # 0.5 s in all, however it is placed
    assert text_spans([snapped], "agent", 0.25) == [pytest.approx((1.45, 2.45))]


def test_words_never_cross_a_neighbour_and_each_segment_snaps_its_own_edges() -> None:
    # one utterance over two segments with a pause: the inner edges move to the pause, not over it
    heard = utt("agent", ("您好", 1.3, 1.7), ("请问", 1.7, 2.0), ("有什么", 3.4, 3.9), ("可以帮您", 3.9, 4.5))
    segments = [seg("agent", 1.0, 2.4), seg("agent", 3.0, 4.8)]
    (snapped,) = snap_to_speech([heard], segments)
    assert times(snapped) == [("您好", 1.0, 1.7), ("请问", 1.7, 2.4), ("有什么", 3.0, 3.9), ("可以帮您", 3.9, 4.8)]
    # a later word that starts before the segment ends caps the extension
    crowded = utt("agent", ("好", 1.0, 1.1), ("的", 1.35, 1.5))
    first, second = snap_to_speech([utt("agent", ("好", 1.0, 1.1)), utt("agent", ("的", 1.35, 1.5))],
                                   [seg("agent", 1.0, 1.3)])
    assert times(first) == [("好", 1.0, 1.3)] and times(second) == [("的", 1.35, 1.5)]
    assert times(snap_to_speech([crowded], [seg("agent", 1.0, 1.6)])[0]) == [("好", 1.0, 1.1), ("的", 1.35, 1.6)]


def test_no_edge_reaches_over_distrusted_text() -> None:
    heard = utt("agent", ("第一句", 1.2, 1.8))
    suspect = utt("agent", ("谢谢观看", 2.5, 3.5), suspect=True)
    first, second = snap_to_speech([heard, suspect], [seg("agent", 1.0, 4.0)])
    assert times(first) == [("第一句", 1.0, 1.8)] and second == suspect  # the start still reaches back
    assert times(snap_to_speech([heard], [seg("agent", 1.0, 4.0)])[0]) == [("第一句", 1.0, 2.5)]


def test_suspect_text_other_roles_and_words_outside_speech_are_left_alone() -> None:
    loop = utt("agent", ("首先", 1.5, 2.0), suspect=True)
    customer = utt("customer", ("喂", 1.5, 1.7))
    stray = utt("agent", ("嗯", 8.0, 8.2))
    kept = snap_to_speech([loop, customer, stray], [seg("agent", 1.0, 3.0)])
    assert kept == [loop, customer, stray]
    assert snap_to_speech([], [seg("agent", 1.0, 3.0)]) == []


WORDS = ("您好", "请问", "您的", "宽带", "哪天", "开始", "断网", "我来", "帮您", "查询")


class Truncating:
    """Whisper as faster-whisper times it: two-character words over each segment, the last one cut
    0.8 s before the voice stops."""

    model_id = "truncating@1"

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        out = []
        for channel in channels:
            for s in channel.speech:
                count = round((s.duration_s - 0.8) / 0.4)
                step = (s.duration_s - 0.8) / count
                out.append(utt(channel.role, *((WORDS[i], s.start_s + i * step, s.start_s + (i + 1) * step)
                                               for i in range(count))))
        return out


@pytest.mark.parametrize("snap, gaps", [(True, []), (False, [("agent", 4.45, 5.0), ("agent", 9.45, 10.0)])])
def test_truncated_edge_words_leave_no_false_gap_but_keep_their_stored_times(snap: bool, gaps: list) -> None:
    call = Call("c", "c.wav", "0" * 64, (Channel("agent", np.zeros(12 * SAMPLE_RATE_HZ, np.float32)),), 8000, 1,
                "pcm_mulaw", "wav", 12.0)
    segments = [seg("agent", 1.0, 5.0), seg("agent", 7.0, 10.0)]
    asr = ASR.model_copy(update={"coverage_snap_words": snap})
    result = transcribe_speech(call, segments, Truncating(), asr, LEXICON)
    assert [(g.role, round(g.start_s, 2), round(g.end_s, 2)) for g in result.gaps] == gaps
    assert [round(u.end_s, 2) for u in result.utterances] == [4.2, 9.2]  # the transcript keeps Whisper's times
    evidence = CallEvidence("c", 12.0, ("agent",), tuple(segments), result.utterances)
    coverage = coverage_columns(evidence, (), asr.coverage_word_margin_s, asr.gap_min_s, snap)
    assert coverage["agent_coverage"] == (1.0 if snap else pytest.approx(1 - 1.1 / 7.0))
    assert coverage["gap_count"] == len(gaps)
