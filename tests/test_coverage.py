"""Every second of speech accounted for: coverage, gaps and their reasons, loop cutting, re-decoding,
levelled pieces and word times on the speech; and the way low coverage reaches the verdict, the store
and ``callqa show``.

Whisper is replaced by fakes with known output; the real model is exercised in
the slow tests of ``tests/test_transcribe.py`` and ``tests/test_coverage_real.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from pipeline.asr.coverage import (
    DecodeNote,
    Gap,
    coverage_columns,
    find_gaps,
    gap_label,
    sound_gaps,
    text_spans,
    uncovered,
)
from pipeline.asr.guard import load_hallucination_lexicon
from pipeline.asr.loops import cut_loops, find_loop
from pipeline.asr.pieces import ChannelSpeech, DecodedSegment, DecodedWord, join_channels, level_gain, map_segment
from pipeline.asr.redecode import RedecodeRequest, merge_redecoded
from pipeline.asr.transcribe import Decoding, decode_unheard, transcribe_speech
from pipeline.audio.loudness import LoudnessTrack
from pipeline.chinese import matching_form
from pipeline.config import default_config
from pipeline.records import SAMPLE_RATE_HZ, Call, CallEvidence, Channel, SpeechSegment, Utterance, Word

ASR = default_config().asr
LEXICON = load_hallucination_lexicon(ASR.guard.hallucination_lexicon)
MARGIN, GAP_MIN = ASR.coverage_word_margin_s, ASR.gap_min_s


def seg(role: str, start_s: float, end_s: float, loudness: float = -20.0) -> SpeechSegment:
    return SpeechSegment(role, start_s, end_s, loudness)


def said(role: str, text: str, start_s: float, end_s: float, **fields) -> Utterance:
    """An utterance with one word per character, evenly spread over its span."""
    step = (end_s - start_s) / len(text)
    words = tuple(Word(ch, start_s + i * step, start_s + (i + 1) * step, 0.9) for i, ch in enumerate(text))
    return Utterance(role, start_s, end_s, text, words, **fields)


def make_call(*roles: str, seconds: float = 30.0) -> Call:
    channels = tuple(Channel(role, np.zeros(int(seconds * SAMPLE_RATE_HZ), np.float32)) for role in roles)
    return Call("c1", "c1.wav", "0" * 64, channels, 8000, len(channels), "pcm_mulaw", "wav", seconds)


# ------------------------------------------------------------------ coverage and gaps


def test_words_cover_their_time_widened_by_the_margin_and_distrusted_text_covers_nothing() -> None:
    utterances = [said("agent", "您好", 1.0, 1.6), Utterance("agent", 3.0, 4.0, "好的"),
                  said("agent", "谢谢观看", 6.0, 7.0, suspect=True, suspect_reason="known_hallucination(谢谢观看)"),
                  said("customer", "喂", 1.0, 1.3)]
    assert text_spans(utterances, "agent", 0.25) == [(0.75, 1.85), (2.75, 4.25)]  # words merge; no words: span
    assert uncovered([(0.5, 8.0)], text_spans(utterances, "agent", 0.25), 0.5) == [(1.85, 2.75), (4.25, 8.0)]
    assert uncovered([(0.5, 2.0)], [(0.75, 1.85)], 0.5) == []  # 0.25 s and 0.15 s at the edges: padding


def test_gaps_carry_the_reason_the_transcriber_reported_else_distrusted_text_else_no_text() -> None:
    segments = [seg("agent", 0.0, 10.0), seg("customer", 2.0, 6.0, -50.0), seg("customer", 12.0, 16.0)]
    crosstalk = [segments[1]]
    utterances = [said("agent", "您好请问", 0.0, 2.0),
                  said("agent", "好的好的好的", 4.0, 5.5, suspect=True, suspect_reason="repetitive(3.10)")]
    notes = [DecodeNote("agent", 6.5, 8.5, "loop", "Whisper looped ('首先要注意到上面的' x7)")]
    gaps = find_gaps(("agent", "customer"), segments, crosstalk, utterances, notes, MARGIN, GAP_MIN)
    assert [(g.role, g.start_s, g.end_s, g.reason) for g in gaps] == [
        ("customer", 2.0, 6.0, "crosstalk"),
        ("agent", 2.25, 10.0, "loop"),  # the note overlaps 2 s of it, the distrusted text 1.5 s
        ("customer", 12.0, 16.0, "no_text")]
    assert "首先要注意到上面的" in gaps[1].detail
    hallucinated = find_gaps(("agent",), segments[:1], (), utterances, (), MARGIN, GAP_MIN)
    assert [g.reason for g in hallucinated] == ["hallucination"]
    assert "repetitive" in hallucinated[0].detail


def test_a_gap_has_a_known_reason_and_times_in_order() -> None:
    with pytest.raises(ValueError, match="reason"):
        Gap("agent", 1.0, 2.0, "lost")
    with pytest.raises(ValueError, match="start_s"):
        Gap("agent", 2.0, 1.0, "no_text")


def track(role: str, level: dict[tuple[float, float], float], speech: Sequence[tuple[float, float]],
          seconds: float = 12.0, noise: float = -60.0) -> LoudnessTrack:
    """A loudness track of 0.1 s frames: line noise, with ``level`` dBFS over each (start, end)."""
    frames = np.arange(int(seconds * 10)) / 10 + 1e-9
    dbfs = np.full(frames.size, noise)
    for (a, b), db in level.items():
        dbfs[(frames >= a) & (frames < b)] = db
    mask = np.zeros(frames.size, bool)
    for a, b in speech:
        mask[(frames >= a) & (frames < b)] = True
    return LoudnessTrack(role, 0.1, dbfs, mask)


def test_sound_the_vad_did_not_take_for_speech_is_a_gap_to_listen_to() -> None:
    speech = [seg("agent", 1.0, 3.0)]
    agent = track("agent", {(1.0, 3.0): -20.0,  # VAD speech
                            (5.0, 6.0): -24.0,  # a voice Silero did not hear: a gap
                            (7.0, 8.0): -40.0,  # a breath, 20 dB under the speech: none
                            (9.0, 10.0): -22.0},  # sound under text: none
                  speech=[(1.0, 3.0)])
    customer = track("customer", {}, speech=[])
    text = [said("agent", "您好", 9.2, 9.8)]
    gaps = sound_gaps({"agent": agent, "customer": customer}, speech, text, ASR)
    assert [(g.role, round(g.start_s, 2), round(g.end_s, 2), g.reason) for g in gaps] == [
        ("agent", 5.1, 5.9, "vad_missed")]  # three-frame smoothing trims a frame at each edge
    assert "listen" in gaps[0].detail
    assert gap_label("vad_missed") == "sound here, VAD heard no speech"
    assert gap_label("no_text") == "speech here, no text"
    # the other side 15 dB louder there: an echo, not this side's voice
    loud_customer = track("customer", {(5.0, 6.0): -5.0}, speech=[(5.0, 6.0)])
    both = [*speech, seg("customer", 5.0, 6.0)]
    assert sound_gaps({"agent": agent, "customer": loud_customer}, both, text, ASR) == []
    assert sound_gaps({"agent": agent}, speech, text, ASR.model_copy(update={"sound_above_floor_db": "off"})) == []
    # a quieter line: only the floor matters where the speech is far above it
    assert len(sound_gaps({"agent": agent}, speech, [], ASR)) == 2  # 5-6 s and 9-10 s, text gone


def test_a_faint_voice_silero_hears_only_when_listening_harder_is_a_gap_unless_it_widens_speech() -> None:
    speech = [seg("agent", 1.0, 3.0)]
    agent = track("agent", {(1.0, 3.0): -20.0, (14.0, 15.0): -24.0}, speech=[(1.0, 3.0)], seconds=20.0)
    customer = track("customer", {(10.0, 11.0): -5.0}, speech=[(10.0, 11.0)], seconds=20.0)
    tracks = {"agent": agent, "customer": customer}
    segments = [*speech, seg("customer", 10.0, 11.0)]
    faint = {"agent": [(2.8, 3.4),  # widens the VAD segment: the same speech, none
                       (5.0, 5.6),  # alone, quiet: a gap
                       (6.0, 6.1),  # shorter than faint_min_s: none
                       (7.0, 7.6),  # under text: none
                       (10.2, 10.8),  # the customer 15 dB louder there, an echo: none
                       (10.9, 11.5),  # the customer louder over a sixth of it: kept whole
                       (14.2, 14.8)]}  # inside a loud gap: the loud one only
    text = [said("agent", "好的", 7.0, 7.6)]
    gaps = sound_gaps(tracks, segments, text, ASR, faint, faint_min_s=0.2)
    assert [(round(g.start_s, 2), round(g.end_s, 2)) for g in gaps] == [(5.0, 5.6), (10.9, 11.5), (14.1, 14.9)]
    assert "faint voice" in gaps[0].detail and "dB or more" in gaps[2].detail
    assert {g.reason for g in gaps} == {"vad_missed"}
    assert sound_gaps(tracks, segments, text, ASR, faint=None) == [gaps[2]]


def test_a_quiet_thank_you_on_a_noisy_line_that_the_vad_misses_is_marked(tmp_path) -> None:
    """The coverage benchmark's seed 0, call 0: the agent's quiet "好，谢谢" (26.65-27.27 s, 3-4 dB over
    the line noise) is not VAD speech and under the loudness rule; the faint pass finds it."""
    pytest.importorskip("scipy")
    from pipeline.audio.decode import load_call
    from pipeline.audio.loudness import loudness_tracks
    from pipeline.audio.vad import detect_faint_speech, detect_speech
    from scripts.make_calls import ClipBank, build_call, stress_layout, write_call

    try:
        bank = ClipBank.load()
    except FileNotFoundError:
        pytest.skip("real clips not available (../shared/data/speech)")
    config = default_config()
    audio, truth = build_call(stress_layout(bank, np.random.default_rng(0), turns=10), bank, telephone=True,
                              snr_db=20.0, seed=0)
    piece = (26.652, 27.268)
    assert any(abs(a - piece[0]) < 0.01 and abs(b - piece[1]) < 0.01 for a, b in truth["speech"]["agent"])
    call = load_call(write_call(tmp_path, "call_000", audio, truth, telephone=True), config)
    agent = call.channels[0]
    segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
    assert agent.role == "agent"
    assert not any(s.role == "agent" and s.start_s < piece[1] and piece[0] < s.end_s for s in segments)
    faint = {channel.role: detect_faint_speech(channel, config.vad) for channel in call.channels}
    assert any(a < piece[1] and piece[0] < b for a, b in faint["agent"])
    tracks = loudness_tracks(call, segments, config.vad.loudness_frame_s)

    def marked(gaps: Sequence[Gap]) -> float:
        return sum(max(0.0, min(g.end_s, piece[1]) - max(g.start_s, piece[0])) for g in gaps if g.role == "agent")

    assert marked(sound_gaps(tracks, segments, [], config.asr)) < 0.1
    assert marked(sound_gaps(tracks, segments, [], config.asr, faint, 0.2)) >= 0.5 * (piece[1] - piece[0])
    assert detect_faint_speech(agent, config.vad.model_copy(update={"faint_threshold": "off"})) == []


def test_coverage_columns_per_role_leave_out_crosstalk_and_are_none_without_speech() -> None:
    segments = (seg("agent", 0.0, 10.0), seg("customer", 20.0, 24.0, -50.0))
    evidence = CallEvidence("c1", 30.0, ("agent", "customer"), segments, (said("agent", "您好" * 8, 0.0, 7.5),))
    row = coverage_columns(evidence, (), MARGIN, GAP_MIN)
    # 7.78 s of 10 s: the last "好" (7.03-7.5 s) reaching its 0.5 s towards the segment's end, + the margin
    assert row["agent_coverage"] == pytest.approx(0.778125)
    assert row["customer_coverage"] == 0.0 and row["mixed_coverage"] is None
    assert row["untranscribed_s"] == pytest.approx(10 - 7.78125 + 4.0) and row["gap_count"] == 2
    leaked = coverage_columns(evidence, (segments[1],), MARGIN, GAP_MIN)  # the customer's "speech" is leakage
    assert leaked["customer_coverage"] is None and leaked["gap_count"] == 1
    mono = CallEvidence("m", 10.0, ("mixed",), (seg("mixed", 1.0, 3.0),), (said("mixed", "喂你好", 1.0, 3.0),))
    assert coverage_columns(mono, (), MARGIN, GAP_MIN) == {
        "agent_coverage": None, "customer_coverage": None, "mixed_coverage": 1.0, "untranscribed_s": 0.0,
        "gap_count": 0}


# ------------------------------------------------------------------ loops


@pytest.mark.parametrize(("text", "kept"), [
    ("首先要注意到上面的箱子" * 7, "首先要注意到上面的箱子"),
    ("好的请稍等" + "页" * 16, "好的请稍等页"),
    ("好的好的好的", None),  # a person may say that: the repeats add only 4 characters
    ("对对对", None),
    ("喂喂喂喂喂喂喂喂喂喂", "喂"),
])
def test_a_loop_is_a_unit_repeated_enough_to_add_many_characters(text: str, kept: str | None) -> None:
    loop = find_loop(text, ASR.loop_min_repeats, ASR.loop_min_tail_chars)
    assert (text[:loop.cut] if loop else None) == kept


def test_loops_are_cut_across_segments_to_whole_words_and_what_follows_is_kept() -> None:
    def words(start: float, *texts: str) -> tuple[DecodedWord, ...]:
        return tuple(DecodedWord(t, start + 0.3 * i, start + 0.3 * i + 0.25, 0.8) for i, t in enumerate(texts))

    looping = [DecodedSegment("您好首先要注意", 0.0, 1.0, words(0.0, "您好", "首先", "要注意")),
               *[DecodedSegment("首先要注意", 1.0 + i, 2.0 + i, words(1.0 + i, "首先", "要注意")) for i in range(5)],
               DecodedSegment("再见", 7.0, 7.3, words(7.0, "再见"))]
    kept, loops = cut_loops(looping, ASR.loop_min_repeats, ASR.loop_min_tail_chars)
    assert [s.text for s in kept] == ["您好首先要注意", "再见"]
    assert [(c.unit, c.repeats, c.start, c.end) for c in loops] == [("首先要注意", 6, 1.0, 7.0)]
    assert kept[0].compression_ratio < ASR.guard.compression_ratio_max
    plain = [DecodedSegment("我们" * 20, 0.0, 10.0)]  # no word timings: the text itself is cut
    kept, loops = cut_loops(plain, ASR.loop_min_repeats, ASR.loop_min_tail_chars)
    assert [s.text for s in kept] == ["我们"] and loops[0].start == pytest.approx(0.5)


# ------------------------------------------------------------------ pieces: levels and times


def test_overlapping_segments_of_one_role_are_one_piece_and_quiet_pieces_are_levelled() -> None:
    quiet = np.zeros(20 * SAMPLE_RATE_HZ, np.float32)
    quiet[2 * SAMPLE_RATE_HZ:8 * SAMPLE_RATE_HZ] = 0.005 * np.sin(np.arange(6 * SAMPLE_RATE_HZ) / 3.0)
    loud = np.zeros(20 * SAMPLE_RATE_HZ, np.float32)
    loud[10 * SAMPLE_RATE_HZ:12 * SAMPLE_RATE_HZ] = 0.5 * np.sin(np.arange(2 * SAMPLE_RATE_HZ) / 3.0)
    channels = [ChannelSpeech("customer", quiet, [seg("customer", 2.0, 5.5), seg("customer", 5.0, 8.0)]),
                ChannelSpeech("agent", loud, [seg("agent", 10.0, 12.0)])]
    joined, pieces = join_channels(channels, 0.4, 0.2, -20.0, 30.0)
    assert [(p.role, p.speech_start_s, p.speech_end_s) for p in pieces] == [("customer", 2.0, 8.0),
                                                                              ("agent", 10.0, 12.0)]

    def level(piece) -> float:
        part = joined[int(piece.joined_start_s * SAMPLE_RATE_HZ):int(piece.joined_end_s * SAMPLE_RATE_HZ)]
        return 20 * np.log10(np.sqrt(np.mean(part.astype(np.float64) ** 2)))

    assert abs(level(pieces[0]) - level(pieces[1])) < 3.0  # 40 dB apart as recorded
    assert level_gain(np.full(100, 0.5, np.float32), -20.0, 30.0) == pytest.approx(0.2)  # quieter too
    assert level_gain(np.full(100, 1e-5, np.float32), -20.0, 30.0) == pytest.approx(10 ** 1.5)  # at most +30 dB
    assert level_gain(np.full(100, 0.1, np.float32), None, 30.0) == 1.0


def test_a_word_placed_in_the_padding_starts_on_the_speech() -> None:
    channel = ChannelSpeech("agent", np.zeros(20 * SAMPLE_RATE_HZ, np.float32), [seg("agent", 5.0, 7.0)])
    _joined, pieces = join_channels([channel], 0.4, 0.2)
    segment = DecodedSegment("您好再见", 0.0, 2.6, (DecodedWord("您好", 0.05, 0.9, 0.9),
                                                   DecodedWord("再见", 2.1, 2.75, 0.9)))
    (utterance,) = map_segment(segment, "agent", pieces)
    assert [(w.start_s, w.end_s) for w in utterance.words] == [(5.0, pytest.approx(5.5)), (pytest.approx(6.7), 7.0)]
    assert (utterance.start_s, utterance.end_s) == (5.0, 7.0)


# ------------------------------------------------------------------ re-decoding


def test_redecoded_words_are_kept_inside_their_stretch_spliced_into_the_sentence_they_fill() -> None:
    channel = ChannelSpeech("agent", np.zeros(10, np.float32), [seg("agent", 0.0, 8.0)])
    first = [said("agent", "您好", 0.0, 1.0), said("agent", "有什么可以帮您", 5.0, 8.0)]
    host = Utterance("agent", 0.0, 8.0, "您好有什么可以帮您", first[0].words + first[1].words)
    request = RedecodeRequest(channel, 1.5, 4.5)
    fresh = [said("agent", "好请问我", 0.5, 4.5),  # 好 lies in the context (decoded already), the rest inside
             said("agent", "谢谢观看", 2.0, 3.0, suspect=True, suspect_reason="known_hallucination(谢谢观看)")]
    merged, rejected = merge_redecoded([host], fresh, [request], MARGIN)
    assert [u.text for u in merged] == ["您好请问我有什么可以帮您"]
    assert [(n.reason, n.start_s, n.end_s) for n in rejected] == [("hallucination", 1.5, 4.5)]
    alone, _ = merge_redecoded(first, fresh[:1], [request], MARGIN)
    assert [u.text for u in alone] == ["您好", "请问我", "有什么可以帮您"]


class ScriptedRedecoder:
    """A re-decoding transcriber: the first pass gives ``first``; each attempt gives ``again[attempt]``
    (utterances, notes) and records the stretches it was asked about."""

    model_id = "fake-redecoder@1"

    def __init__(self, first: Sequence[Utterance], again: Sequence[tuple[list[Utterance], list[DecodeNote]]],
                 first_notes: Sequence[DecodeNote] = ()) -> None:
        self.first, self.again, self.first_notes = list(first), list(again), list(first_notes)
        self.asked: list[list[tuple[str, float, float]]] = []

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        return list(self.first)

    def decode(self, channels: Sequence[ChannelSpeech]) -> Decoding:
        return Decoding(tuple(self.first), tuple(self.first_notes))

    def redecode(self, requests: Sequence[RedecodeRequest], attempt: int) -> Decoding:
        self.asked.append([(r.role, round(r.start_s, 2), round(r.end_s, 2)) for r in requests])
        utterances, notes = self.again[attempt] if attempt < len(self.again) else ([], [])
        return Decoding(tuple(utterances), tuple(notes))


def test_speech_without_text_is_decoded_again_until_it_has_text_or_attempts_run_out() -> None:
    call = make_call("agent", "customer")
    segments = [seg("agent", 1.0, 5.0), seg("customer", 6.0, 12.0)]
    transcriber = ScriptedRedecoder(
        first=[said("agent", "您好请问有什么可以帮您", 1.0, 5.0), said("customer", "我的宽带", 6.0, 7.5)],
        again=[([], [DecodeNote("customer", 7.75, 12.0, "loop", "Whisper looped ('断了' x9)")]),
               ([said("customer", "断了三天了", 8.0, 10.0)], [])],
        first_notes=[DecodeNote("customer", 7.75, 12.0, "decode_failure", "window stopped early")])
    two = ASR.model_copy(update={"redecode_passes": ("fresh_windows", "alone")})
    result = transcribe_speech(call, segments, transcriber, two, LEXICON)
    # asked about the stretch as Whisper timed it (words reach the speech's edges only in coverage, asr/snap.py)
    assert transcriber.asked == [[("customer", 7.75, 12.0)], [("customer", 7.75, 12.0)]]
    assert [u.text for u in result.utterances] == ["您好请问有什么可以帮您", "我的宽带", "断了三天了"]
    # what the last attempt could not fill keeps the reason that attempt gave ("了" snapped to 10.1 s)
    assert [(g.role, round(g.start_s, 2), g.end_s, g.reason) for g in result.gaps] == [
        ("customer", 10.35, 12.0, "no_text")]
    looping = ScriptedRedecoder(first=transcriber.first[:2], again=[
        ([], [DecodeNote("customer", 7.75, 12.0, "loop", "Whisper looped ('断了' x9)")])] * 2)
    (gap,) = transcribe_speech(call, segments, looping, two, LEXICON).gaps
    # "带" (7.125-7.5 s) reaches 7.625 s, the most one character lasts, + the margin
    assert (gap.reason, gap.start_s) == ("loop", 7.875) and "断了" in gap.detail
    off = ASR.model_copy(update={"redecode": False})
    never = ScriptedRedecoder(first=transcriber.first[:2], again=[])
    (gap,) = transcribe_speech(call, segments, never, off, LEXICON).gaps
    assert never.asked == [] and (gap.reason, gap.detail) == ("no_text", "no text was recognised for this speech")


def test_sound_vad_missed_is_decoded_at_temperature_0_and_only_trusted_text_is_kept() -> None:
    call = make_call("agent", "customer")
    segments = [seg("agent", 1.0, 5.0)]
    first = transcribe_speech(call, segments, ScriptedRedecoder([said("agent", "您好请问有什么可以帮您", 1.0, 5.0)],
                                                                []), ASR, LEXICON)
    unheard = [Gap(role, a, b, "vad_missed") for role, a, b in
               [("agent", 8.0, 11.0), ("customer", 14.0, 16.0), ("customer", 20.0, 20.6)]]
    # the agent's far-field voice gets text; the customer's sound only a made-up sign-off the guard distrusts
    transcriber = ScriptedRedecoder([], again=[
        ([said("agent", "我帮您查一下", 8.2, 10.8), said("customer", "谢谢观看", 14.0, 16.0)], []),
        ([said("customer", "谢谢观看", 14.0, 16.0)], [])])
    result = decode_unheard(call, segments, first, unheard, transcriber, ASR, LEXICON)
    # stretches shorter than redecode_min_s are not asked about; alone_with_fallback (sampling) is never run
    assert ASR.redecode_passes == ("fresh_windows", "alone", "alone_with_fallback")
    assert transcriber.asked == [[("agent", 8.0, 11.0), ("customer", 14.0, 16.0)], [("customer", 14.0, 16.0)]]
    assert [(u.role, u.text, u.suspect) for u in result.utterances] == [
        ("agent", "您好请问有什么可以帮您", False), ("agent", "我帮您查一下", False)]
    assert result.gaps == first.gaps and result.stats["unheard_0_recovered_s"] == 3.0
    assert "unheard_0_s" not in first.stats
    # the text the guard trusts needs no VAD segment under it, only the sound it was decoded from
    assert not result.utterances[1].suspect
    assert decode_unheard(call, segments, first, [], transcriber, ASR, LEXICON) is first


def test_speech_gaps_are_found_again_on_the_text_decoded_from_sound_the_vad_missed() -> None:
    """Text decoded from sound next to a VAD segment changes that segment's gap (on a built call, a
    stored gap started 0.38 s after the speech it stood for): the gaps are found again on the final
    text, with the reasons already known."""
    from pipeline.asr.coverage import crosstalk_of

    call = make_call("agent")
    segments = [seg("agent", 1.0, 6.0)]
    looped = [([], [DecodeNote("agent", 2.0, 6.0, "loop", "Whisper looped ('您好' x5)")])] * 3
    first = transcribe_speech(call, segments, ScriptedRedecoder([said("agent", "您好请问", 1.0, 2.0)], looped),
                              ASR, LEXICON)
    (before,) = first.gaps
    heard = ScriptedRedecoder([], again=[([said("agent", "好的", 6.0, 6.4)], [])])
    result = decode_unheard(call, segments, first, [Gap("agent", 6.0, 7.0, "vad_missed")], heard, ASR, LEXICON)
    (after,) = result.gaps
    assert after.reason == "loop" and "您好" in after.detail  # the reason known before is kept
    # the gap ended at the segment's end; "好的" (6.0 s) now covers that end, back to 5.75 s with the margin
    assert (before.start_s, before.end_s, after.start_s, after.end_s) == (2.5, 6.0, 2.5, 5.75)
    notes = [DecodeNote("agent", 2.0, 6.0, "loop", after.detail)]
    assert result.gaps == tuple(find_gaps(("agent",), segments, crosstalk_of(segments, ASR), result.utterances,
                                          notes, MARGIN, GAP_MIN, ASR.coverage_snap_words))


def test_a_plain_transcriber_gets_gaps_and_crosstalk_is_a_gap_of_its_own() -> None:
    class Plain:
        model_id = "plain@1"

        def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
            return [said("agent", "您好", 1.0, 2.0)]

    segments = [seg("agent", 1.0, 5.0, -18.0), seg("customer", 1.2, 4.8, -45.0)]
    result = transcribe_speech(make_call("agent", "customer"), segments, Plain(), ASR, LEXICON)
    assert [(g.role, g.reason) for g in result.gaps] == [("customer", "crosstalk"), ("agent", "no_text")]
    assert result.crosstalk == (segments[1],)


# ------------------------------------------------------------------ the verdict, the store and `callqa show`


class HalfHeard:
    """A transcriber that hears the agent fully but only "喂" over the first quarter of each customer segment
    (one character: it covers no more than 0.5 s of that quarter, pipeline/asr/snap.py)."""

    model_id = "half-heard@1"

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        out = []
        for channel in channels:
            for s in channel.speech:
                if channel.role == "agent":  # a character every 0.4 s or less, as speech goes
                    count = math.ceil(s.duration_s / 0.4)
                    text, end = ("您好请问有什么可以帮您" * count)[:count], s.end_s
                    step = s.duration_s / count
                    words = tuple(Word(ch, s.start_s + i * step, s.start_s + (i + 1) * step, 0.9)
                                  for i, ch in enumerate(text))
                else:
                    text, end = "喂", s.start_s + 0.25 * s.duration_s
                    words = (Word(text, s.start_s, end, 0.9),)
                out.append(Utterance(channel.role, s.start_s, end, text, words, -0.2, 0.01, 1.0))
        return out


def test_low_customer_coverage_makes_the_call_need_listening_and_shows_where(cli, tmp_path, stereo_call) -> None:
    from pipeline.analysis import ResourceSpec
    from pipeline.batch import RunOptions, run_batch
    from pipeline.config import load_config
    from pipeline.store import Store

    audio = stereo_call("c1.wav", agent=[("asr_example.wav", 0.5)], customer=[("BAC009S0764W0121.wav", 7.0)])
    config = load_config()
    run_batch(audio, tmp_path / "store", config, RunOptions(isolate=False),
              resources=ResourceSpec(config, transcriber=HalfHeard()))
    store = Store(tmp_path / "store")
    (row,) = store.read("features").to_pylist()
    assert row["agent_coverage"] == pytest.approx(1.0)
    assert 0.2 < row["customer_coverage"] < 0.5
    assert row["outcome"] == "needs_listening" and "low_coverage:customer" in row["outcome_reasons"]
    assert row["gap_count"] == 1 and row["untranscribed_s"] > 1.5
    (gap,) = store.read("gaps").to_pylist()
    assert (gap["role"], gap["reason"]) == ("customer", "no_text")
    assert gap["transcript_id"] == store.read("calls")["transcript_id"][0].as_py()
    assert gap["end_s"] - gap["start_s"] == pytest.approx(row["untranscribed_s"], abs=1e-3)
    shown = cli("show", tmp_path / "store", "c1")
    assert shown.exit_code == 0, shown.output
    assert "speech with text: agent 100%, customer" in shown.stdout
    assert "speech here, no text" in shown.stdout and "no_text" in shown.stdout


def test_full_coverage_passes_and_a_call_without_transcript_has_no_coverage(tmp_path, stereo_call,
                                                                           vad_only_config) -> None:
    from conftest import ScriptedTranscriber

    from pipeline.analysis import ResourceSpec
    from pipeline.batch import RunOptions, run_batch
    from pipeline.config import load_config
    from pipeline.store import Store

    audio = stereo_call("c1.wav")
    config = load_config()
    run_batch(audio, tmp_path / "heard", config, RunOptions(isolate=False),
              resources=ResourceSpec(config, transcriber=ScriptedTranscriber({"agent": "您好", "customer": "喂"})))
    (row,) = Store(tmp_path / "heard").read("features").to_pylist()
    assert (row["agent_coverage"], row["customer_coverage"], row["gap_count"]) == (1.0, 1.0, 0)
    assert not any(r.startswith("low_coverage") for r in row["outcome_reasons"])
    run_batch(audio, tmp_path / "vad", vad_only_config, RunOptions(isolate=False))
    (bare,) = Store(tmp_path / "vad").read("features").to_pylist()
    assert bare["agent_coverage"] is None and bare["customer_coverage"] is None and bare["gap_count"] is None
    assert Store(tmp_path / "vad").read("gaps").num_rows == 0


def test_a_store_made_before_the_gaps_table_gets_it_on_open(tmp_path) -> None:
    import shutil

    from pipeline.store import Store

    store = Store(tmp_path / "store", create=True)
    shutil.rmtree(store.path("gaps"))
    assert Store(tmp_path / "store").read("gaps").num_rows == 0


def test_rescore_keeps_the_coverage_measured_on_the_stored_transcript(tmp_path) -> None:
    from pipeline.analysis import Resources, analyse_evidence
    from pipeline.versions import NONE

    config = default_config()
    resources = Resources.load(config, transcriber=None)
    evidence = CallEvidence("c1", 20.0, ("agent", "customer"), (seg("agent", 0.0, 4.0), seg("customer", 5.0, 9.0)),
                            (said("agent", "您好请问有什么可以帮您", 0.0, 4.0),))
    stored = replace(resources.versions, asr_model="whisper@1")
    row = analyse_evidence(evidence, resources, {"call_date": "2026-11-20"}, versions=stored).features
    assert (row["agent_coverage"], row["customer_coverage"]) == (1.0, 0.0)
    assert row["outcome"] == "needs_listening" and "low_coverage:customer" in row["outcome_reasons"]
    untranscribed = analyse_evidence(evidence, resources, {"call_date": "2026-11-20"},
                                     versions=replace(stored, asr_model=NONE)).features
    assert untranscribed["customer_coverage"] is None


def test_matching_form_of_a_cut_loop_is_its_first_occurrence() -> None:
    kept, _ = cut_loops([DecodedSegment("首先要注意到上面的箱子" * 7, 0.0, 14.0)], ASR.loop_min_repeats,
                        ASR.loop_min_tail_chars)
    assert [matching_form(s.text) for s in kept] == ["首先要注意到上面的箱子"]


# ------------------------------------------------------------------ speech after long line noise is heard


def test_speech_after_a_minute_of_telephone_line_noise_is_still_found() -> None:
    """Silero run once over a channel stops hearing speech after 30-60 s of band-passed mu-law noise;
    run in chunks that start in pauses, it finds all of it (the speech the transcript must cover)."""
    pytest.importorskip("scipy")
    from pipeline.audio.vad import chunk_starts, detect_speech
    from scripts.make_calls import ClipBank, telephone_channel

    try:
        bank = ClipBank.load()
    except FileNotFoundError:
        pytest.skip("real clips not available (../shared/data/speech)")
    config = default_config().vad
    clip = bank.slice("BAC009S0764W0121.wav")
    samples = np.zeros(70 * SAMPLE_RATE_HZ, np.float32)
    samples[60 * SAMPLE_RATE_HZ:60 * SAMPLE_RATE_HZ + len(clip)] = clip
    line = telephone_channel(samples, snr_db=20.0, rng=np.random.default_rng(0))
    found = sum(s.duration_s for s in detect_speech(Channel("customer", line), config) if s.start_s >= 59.0)
    speech_s = bank.spans("BAC009S0764W0121.wav")[0][1] - bank.spans("BAC009S0764W0121.wav")[0][0]
    assert found >= 0.9 * speech_s
    starts = chunk_starts(line, config)
    steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert starts[0] == 0 and all(0 < step <= config.chunk_s * SAMPLE_RATE_HZ for step in steps)


def test_the_decoding_profile_names_each_pass_that_ran_and_what_it_recovered() -> None:
    from pipeline.asr.transcribe import describe_passes

    stats = {"first_pass_s": 53.2, "windows": 26.0, "decoded_audio_s": 600.0, "redecode_1_s": 8.0,
             "redecode_1_stretches": 10.0, "redecode_1_recovered_s": 26.0, "redecode_1_asked_s": 30.0,
             "unheard_0_s": 1.5, "unheard_0_stretches": 2.0, "unheard_0_recovered_s": 3.0, "unheard_0_asked_s": 4.5}
    assert describe_passes(stats, ("fresh_windows", "alone")) == [
        "first pass 53.2 s (26 windows, 600 s of audio)",
        "re-decode alone 8.0 s (10 stretches, 26.0 of 30.0 s of speech given text)",
        "decode sound VAD missed fresh_windows 1.5 s (2 stretches, 3.0 of 4.5 s of sound given text)"]
