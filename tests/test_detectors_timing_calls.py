"""Timing detectors on ground-truth calls built from real speech (scripts/make_calls.py) with the real VAD.

Tolerances (stated, measured by scripts/bench/detector_eval.py): clean 16 kHz,
boundaries within 0.2 s and exact event counts; 8 kHz μ-law with band-pass and
noise at 20 dB SNR, after onset repair, boundaries within 0.35 s and exact
counts. Speech rate from a perfect transcript (the clips' reference texts)
within 5 % clean and 8 % on the telephone line.

The audio goes through the analysis path (:func:`pipeline.analysis.transcribe_audio`:
VAD, onset repair when asked, loudness tracks; no transcriber), with the clips'
reference texts as the transcript. What the detectors should find is computed
here from the truth record, independently of the detectors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.analysis import Resources, transcribe_audio
from pipeline.config import Config, TimingConfig, default_config, load_config
from pipeline.records import AGENT, CUSTOMER, Call, CallEvidence, Channel
from pipeline.timing.detect import TimingResult, detect_timing
from pipeline.timing.interruptions import find_interruptions
from pipeline.timing.raised_voice import find_raised_voice
from pipeline.timing.silence import find_silences
from scripts.make_calls import (
    BACKCHANNELS,
    TURN_GAP_S,
    ClipBank,
    Layout,
    Placement,
    build_call,
    mulaw_decode,
    mulaw_encode,
    random_layout,
    reference_utterances,
    reported_interruptions,
    stress_layout,
    write_call,
)

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech"
CONFIG = default_config()
TIMING = CONFIG.timing
BAC1, BAC2, ASR, SHORT = "BAC009S0764W0121.wav", "BAC009S0764W0122.wav", "asr_example.wav", "IT0011W0001.wav"
LONG = "vad_example_70s.wav"
HOLD_PHRASES = ("请稍等", "我帮您查询一下")


@dataclass(frozen=True)
class Analysis:
    """The detectors' view of one built call."""

    evidence: CallEvidence
    result: TimingResult
    silences: list[tuple[float, float]]
    interruptions: list[tuple[str, float, float]]
    raised: list[tuple[str, float, float]]


def analyse(audio: np.ndarray, truth: dict[str, Any], config: Config, *, refine: bool = False,
            backchannels: Sequence[str] = BACKCHANNELS) -> Analysis:
    """VAD (and onset repair when ``refine``) through the analysis path, then every timing detector."""
    config = config.with_overrides({"vad": {"onset_repair": refine}})
    channels = tuple(Channel(role, np.ascontiguousarray(audio[:, i])) for i, role in enumerate((AGENT, CUSTOMER)))
    metadata = {"hangup_party": truth["hangup_party"]} if truth.get("hangup_party") else {}
    duration_s = len(audio) / 16_000
    call = Call("synthetic", "synthetic.wav", "0", channels, 16_000, 2, "pcm", "wav", duration_s, metadata)
    transcript = transcribe_audio(call, Resources.load(config, transcriber=None, text=False))
    evidence = CallEvidence("synthetic", duration_s, (AGENT, CUSTOMER), transcript.segments,
                            tuple(reference_utterances(truth)), metadata)
    result = detect_timing(evidence, config.timing, transcript.tracks, HOLD_PHRASES, backchannels)
    silences = [(s.start_s, s.end_s) for s in find_silences(evidence, config.timing, HOLD_PHRASES)]
    found = find_interruptions(evidence, config.timing, backchannels)
    raised, _ = find_raised_voice(evidence, config.timing, transcript.tracks)
    return Analysis(evidence, result, silences, [(i.by, i.start_s, i.end_s) for i in found],
                    [(r.role, r.start_s, r.end_s) for r in raised])


def true_silences(truth: dict[str, Any], timing: TimingConfig) -> list[tuple[float, float]]:
    """Truth silences the detector should report."""
    return [(s["start_s"], s["end_s"]) for s in truth["silences"] if s["duration_s"] >= timing.silence_min_s]


def true_interruptions(truth: dict[str, Any], timing: TimingConfig) -> list[tuple[str, float, float]]:
    """Truth interruptions the detector should report (long enough, wordy enough, not a backchannel)."""
    return [(i["by"], i["start_s"], i["end_s"]) for i in reported_interruptions(truth, timing, BACKCHANNELS)]


def true_rates(truth: dict[str, Any], timing: TimingConfig) -> dict[str, float]:
    """Each role's pooled rate (chars/min) over clips long enough to judge."""
    rates = {}
    for role in (AGENT, CUSTOMER):
        clips = [c for c in truth["clips"] if c["role"] == role and c["spans"] and c["chars"] > 0
                 and c["spans"][-1][1] - c["spans"][0][0] >= timing.speech_rate_min_utterance_s]
        speech = sum(c["spans"][-1][1] - c["spans"][0][0] for c in clips)
        if speech > 0:
            rates[role] = 60.0 * sum(c["chars"] for c in clips) / speech
    return rates


@pytest.fixture(scope="module")
def bank() -> ClipBank:
    if not (SPEECH / "references.tsv").exists():
        pytest.skip(f"real clips not available: {SPEECH} (needs ../shared/data/speech)")
    return ClipBank.load(SPEECH)


def _check(bank: ClipBank, seed: int, turns: int, telephone: bool) -> None:
    layout = random_layout(bank, np.random.default_rng(seed), turns=turns)
    audio, truth = build_call(layout, bank, telephone=telephone, snr_db=20.0 if telephone else None, seed=seed)
    got = analyse(audio, truth, CONFIG, refine=telephone)
    tol, rate_tol = (0.35, 0.08) if telephone else (0.2, 0.05)
    want = true_silences(truth, TIMING)
    assert len(got.silences) == len(want)
    for (a, b), (c, d) in zip(want, got.silences, strict=True):
        assert c == pytest.approx(a, abs=tol) and d == pytest.approx(b, abs=tol)
    want_int = true_interruptions(truth, TIMING)
    assert [i[0] for i in got.interruptions] == [i[0] for i in want_int]
    for (_, a, _), (_, c, _) in zip(want_int, got.interruptions, strict=True):
        assert c == pytest.approx(a, abs=tol)
    assert [r[0] for r in got.raised] == [r["role"] for r in truth["raised_voice"]]
    for found, true in zip(got.raised, truth["raised_voice"], strict=True):
        assert found[1] < true["end_s"] and true["start_s"] < found[2]
    for role, rate in true_rates(truth, TIMING).items():
        assert got.result.features[f"{role}_rate_chars_per_min_overall"] == pytest.approx(rate, rel=rate_tol)
    assert got.result.features["interruptions_agent_count"] == sum(1 for i in want_int if i[0] == AGENT)
    assert got.result.features["silence_count"] == len(want)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), turns=st.integers(4, 12))
def test_random_calls_clean_16k(bank, seed, turns):
    _check(bank, seed, turns, telephone=False)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), turns=st.integers(4, 12))
def test_random_calls_telephone_8k_ulaw_noise(bank, seed, turns):
    _check(bank, seed, turns, telephone=True)


MEETING = "TEST_MEETING_T0000000001_S00000.wav"  # 12 s with two breaths (0.7 s and 0.3 s)


@pytest.mark.parametrize("overlap_s", [0.5, 1.0, 2.0, 3.0, 4.0])
def test_overlaps_of_half_a_second_to_four_seconds_on_the_telephone_line(bank, overlap_s):
    # the customer reads 12 s; the agent starts overlap_s before her last word (for 3 and 4 s that is
    # around her second breath) and goes on after her: one agent interruption, none by the customer
    customer = Placement(CUSTOMER, MEETING, 1.0)
    end = bank.spans(MEETING)[-1][1] - bank.spans(MEETING)[0][0] + 1.0
    layout = Layout((customer, Placement(AGENT, BAC1, round(end - overlap_s, 3)), Placement(AGENT, ASR, end + 5.0)),
                    end + 12.0)
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0, seed=int(overlap_s * 10))
    (want,) = true_interruptions(truth, TIMING)
    got = analyse(audio, truth, CONFIG, refine=True)
    assert [i[0] for i in got.interruptions] == [AGENT]
    assert got.interruptions[0][1] == pytest.approx(want[1], abs=0.35)
    (overlap,) = [i["overlap_s"] for i in truth["interruptions"]]
    assert got.result.features["interruptions_overlap_s"] == pytest.approx(overlap, abs=0.4)


def test_an_agent_starting_in_the_customers_breath_interrupts_with_or_without_words(bank):
    # the agent starts inside the customer's 0.7 s pause and both then speak ~5 s at once: the kind
    # the detector missed (the start fell in no customer segment), found with the words and without
    shift = 1.0 - bank.spans(MEETING)[0][0]
    breath_s = (bank.spans(MEETING)[0][1] + bank.spans(MEETING)[1][0]) / 2 + shift
    layout = Layout((Placement(CUSTOMER, MEETING, 1.0), Placement(AGENT, BAC1, round(breath_s, 3))), 16.0)
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0, seed=3)
    assert [(i["by"], round(i["overlap_s"]) >= 3) for i in truth["interruptions"]] == [(AGENT, True)]
    with_words = analyse(audio, truth, CONFIG, refine=True)
    assert [i[0] for i in with_words.interruptions] == [AGENT]
    gap = {**truth, "clips": [c for c in truth["clips"] if c["role"] == CUSTOMER]}  # no agent words at all
    without = analyse(audio, gap, CONFIG, refine=True)
    (hit,) = [h for h in without.result.hits if h.category == "interruption"]
    assert hit.role == AGENT and hit.confidence == TIMING.interruption_unchecked_confidence


def test_a_long_pause_inside_one_clip_ends_the_turn_for_the_truth_and_the_detector(bank):
    # a slice of a long recording with a pause of more than a second in it; the agent starts 0.3 s into
    # the pause and talks on, and the customer goes on over him: she interrupts him, not he her. The
    # truth used to join a clip's pauses however long and said the agent interrupted.
    spans = bank.spans(LONG)
    before, after = next((a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] - a[1] >= TURN_GAP_S + 0.2)
    customer = Placement(CUSTOMER, LONG, 1.0, offset_s=before[0], length_s=round(after[1] - before[0], 3), text="")
    pause_start = 1.0 + before[1] - before[0]
    layout = Layout((customer, Placement(AGENT, BAC1, round(pause_start + 0.3, 3))), 12.0)
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0, seed=5)
    [her] = [c["spans"] for c in truth["clips"] if c["role"] == CUSTOMER]
    resumes = next(b[0] for a, b in zip(her, her[1:], strict=False) if b[0] - a[1] >= TURN_GAP_S)
    [event] = truth["interruptions"]
    assert (event["by"], event["of"]) == (CUSTOMER, AGENT) and event["start_s"] == pytest.approx(resumes)
    # her words are not known (a slice without a reference): the detector goes by her speech alone
    got = analyse(audio, {**truth, "clips": [c for c in truth["clips"] if c["role"] == AGENT]}, CONFIG, refine=True)
    assert [(by, start) for by, start, _ in got.interruptions] == [(CUSTOMER, pytest.approx(resumes, abs=0.35))]


def test_stress_calls_cut_long_recordings_on_words(bank):
    # a slice cut at random began and ended inside words: pieces no listener could transcribe, counted as
    # reference speech that the transcript missed
    layouts = [stress_layout(bank, np.random.default_rng(seed), turns=10) for seed in range(4)]
    slices = [p for layout in layouts for p in layout.placements if p.length_s is not None]
    assert slices
    for p in slices:
        spans = bank.spans(p.clip)
        assert p.offset_s in {round(a, 3) for a, _ in spans}
        assert round(p.offset_s + p.length_s, 3) == pytest.approx(min((b for _, b in spans), key=lambda b: abs(
            b - p.offset_s - p.length_s)), abs=0.002)


def test_min_chars_rule_with_reference_transcript(bank):
    # the agent says 换一首歌 (4 characters) 1.5 s into the customer's sentence
    layout = Layout((Placement(CUSTOMER, BAC1, 1.0), Placement(AGENT, SHORT, 2.5), Placement(AGENT, ASR, 8.0)), 15.0)
    audio, truth = build_call(layout, bank)
    assert [i["chars"] for i in truth["interruptions"]] == [4]
    assert analyse(audio, truth, CONFIG).result.features["interruptions_agent_count"] == 1
    # four characters under a bar of five count only when spoken as long as an interruption without words
    for min_speech_s, count in ((10.0, 0), (0.3, 1)):
        stricter = CONFIG.model_copy(update={"timing": TIMING.model_copy(update={
            "interruption_min_chars": 5, "interruption_unchecked_min_speech_s": min_speech_s})})
        assert analyse(audio, truth, stricter).result.features["interruptions_agent_count"] == count


def test_backchannel_over_speech_is_not_an_interruption(bank):
    layout = Layout((Placement(CUSTOMER, ASR, 1.0),
                     Placement(AGENT, BAC2, 2.0, offset_s=1.0, length_s=0.5, text="嗯"),
                     Placement(AGENT, BAC1, 7.0)), 12.0)
    audio, truth = build_call(layout, bank)
    got = analyse(audio, truth, CONFIG)
    assert truth["interruptions"] and truth["interruptions"][0]["text"] == "嗯"
    assert got.result.features["interruptions_agent_count"] == 0
    assert analyse(audio, truth, CONFIG, backchannels=()).result.features["interruptions_agent_count"] == 0  # 1 char


def test_speech_rate_from_reference_texts_and_fast_transcript(bank):
    layout = Layout(tuple(Placement(AGENT, clip, t) for clip, t in ((BAC1, 1.0), (BAC2, 5.5), (ASR, 10.0)))
                    + (Placement(CUSTOMER, SHORT, 15.5),), 18.0)
    audio, truth = build_call(layout, bank)
    got = analyse(audio, truth, CONFIG)
    rate = true_rates(truth, TIMING)[AGENT]
    assert 200 < rate < 280
    assert got.result.features["agent_rate_chars_per_min_overall"] == pytest.approx(rate, rel=0.05)
    assert not [h for h in got.result.hits if h.category == "speech_rate"]
    for clip in truth["clips"]:  # the same audio said with 1.5x the characters: 300+ chars/min
        clip["text"] = clip["text"] + clip["text"][: len(clip["text"]) // 2]
    fast = analyse(audio, truth, CONFIG)
    hit = next(h for h in fast.result.hits if h.rule_id == "timing.speech_rate_fast")
    assert hit.start_s == pytest.approx(truth["speech"][AGENT][0][0], abs=0.01)


def test_announced_hold_on_real_speech(bank):
    layout = Layout((Placement(AGENT, BAC1, 0.5, text="好的请稍等我帮您查询一下"), Placement(AGENT, BAC2, 16.0),
                     Placement(CUSTOMER, ASR, 21.0)), 28.0)
    audio, truth = build_call(layout, bank, telephone=True, snr_db=25.0)
    result = analyse(audio, truth, CONFIG, refine=True).result
    assert result.features["hold_count"] == 1 and result.features["dead_air_count"] == 0
    assert result.features["hold_max_s"] == pytest.approx(16.0 - truth["clips"][0]["spans"][-1][1], abs=0.35)
    bare = analyse(audio, {**truth, "clips": [{**c, "text": "字"} for c in truth["clips"]]}, CONFIG).result
    assert bare.features["dead_air_count"] == 1


def test_build_call_shape_truth_and_files(bank, tmp_path):
    layout = Layout((Placement(AGENT, BAC1, 0.5), Placement(CUSTOMER, SHORT, 6.0, gain_db=3.0)), 9.0,
                    hangup_party=CUSTOMER)
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0)
    assert audio.dtype == np.float32 and audio.shape == (9 * 16_000, 2)
    assert truth["chars"] == {AGENT: 13, CUSTOMER: 4} and truth["hangup_party"] == CUSTOMER
    assert truth["first_speech_s"][CUSTOMER] == pytest.approx(6.0)
    assert truth["speech_s"][AGENT] == pytest.approx(truth["clips"][0]["spans"][0][1] - 0.5)
    assert [u.text for u in reference_utterances(truth)] == ["甚至出现交易几乎停滞的情况", "换一首歌"]
    wav = write_call(tmp_path, "call", audio, truth, telephone=True)
    info = soundfile.info(wav)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 2, "ULAW")
    assert json.loads((tmp_path / "call.json").read_text(encoding="utf-8"))["chars"][AGENT] == 13


def test_mulaw_round_trip_is_close():
    x = np.linspace(-1, 1, 1001)
    y = mulaw_decode(mulaw_encode(x))
    assert np.max(np.abs(y - x)) < 0.035 and np.max(np.abs(y[480:521] - x[480:521])) < 0.001


def test_with_segments_re_marks_speech_like_a_fresh_measurement() -> None:
    """The analysis measures levels once and re-marks speech after repairing the VAD onsets."""
    from conftest import place

    from pipeline.audio.loudness import loudness_tracks, refine_segments, with_segments
    from pipeline.audio.vad import detect_speech

    config = default_config()
    channels = (Channel(AGENT, place([("asr_example.wav", 1.0)], 10.0)),
                Channel(CUSTOMER, place([("BAC009S0764W0121.wav", 5.0)], 10.0)))
    call = Call("c", "c.wav", "x", channels, 16000, 2, "pcm_s16le", "wav", 10.0)
    segments = [s for c in channels for s in detect_speech(c, config.vad)]
    frame_s = config.vad.loudness_frame_s
    refined = refine_segments(segments, loudness_tracks(call, segments, frame_s), config.vad)
    fresh = loudness_tracks(call, refined, frame_s)
    reused = with_segments(loudness_tracks(call, segments, frame_s), refined)
    assert set(reused) == {AGENT, CUSTOMER}
    for role, track in fresh.items():
        assert np.array_equal(reused[role].dbfs, track.dbfs)
        assert np.array_equal(reused[role].speech, track.speech) and track.speech.any()
    # the analysis path does the same: its tracks mark the repaired segments
    transcript = transcribe_audio(call, Resources.load(config, transcriber=None, text=False))
    assert sorted(transcript.segments, key=lambda s: (s.role, s.start_s)) == sorted(
        refined, key=lambda s: (s.role, s.start_s))
    for role, track in fresh.items():
        assert np.array_equal(transcript.tracks[role].speech, track.speech)


def _onset_case():
    from conftest import place

    from pipeline.audio.loudness import loudness_tracks
    from pipeline.audio.vad import detect_speech

    config = default_config()
    channel = Channel(AGENT, place([("BAC009S0764W0122.wav", 6.0)], 12.0))
    call = Call("c", "c.wav", "x", (channel,), 16000, 1, "pcm_s16le", "wav", 12.0)
    segments = detect_speech(channel, config.vad)
    return config, segments, loudness_tracks(call, segments, config.vad.loudness_frame_s)


def test_onset_repair_moves_starts_back_only_and_within_the_configured_shift() -> None:
    from pipeline.audio.loudness import refine_segments

    config, segments, tracks = _onset_case()
    frame_s = config.vad.loudness_frame_s
    for limit in (0.0, 0.3, 1.5):
        vad = config.vad.model_copy(update={"onset_max_shift_s": limit})
        refined = refine_segments(segments, tracks, vad)
        assert len(refined) == len(segments)
        for before, after in zip(segments, refined, strict=True):
            # never later, never more than the limit (plus the frame the start falls in), ends untouched
            assert before.start_s - limit - frame_s - 1e-9 <= after.start_s <= before.start_s
            assert (after.role, after.end_s, after.loudness_dbfs) == (before.role, before.end_s, before.loudness_dbfs)


def test_onset_repair_moves_a_late_start_back_to_where_the_loud_frames_begin() -> None:
    import numpy as np

    from pipeline.audio.loudness import LoudnessTrack, refine_segments
    from pipeline.records import SpeechSegment

    config = load_config()
    frame_s = config.vad.loudness_frame_s
    dbfs = np.full(200, -60.0, np.float32)  # 20 s of line noise at -60 dBFS ...
    dbfs[50:120] = -20.0  # ... speech from 5.0 s to 12.0 s
    speech = np.zeros(200, bool)
    speech[58:120] = True  # but VAD starts the segment late, at 5.8 s
    late = SpeechSegment("agent", 5.8, 12.0, -20.0)
    tracks = {"agent": LoudnessTrack("agent", frame_s, dbfs, speech)}
    [repaired] = refine_segments([late], tracks, config.vad)
    assert repaired.start_s == pytest.approx(5.0) and repaired.end_s == 12.0
    tight = config.vad.model_copy(update={"onset_max_shift_s": 0.3})
    assert refine_segments([late], tracks, tight)[0].start_s == pytest.approx(5.5)
    on_time = SpeechSegment("agent", 5.0, 12.0, -20.0)  # nothing loud before it: unchanged
    assert refine_segments([on_time], tracks, config.vad) == [on_time]


def test_onset_repair_with_no_shift_allowed_changes_nothing() -> None:
    from pipeline.audio.loudness import refine_segments

    config, segments, tracks = _onset_case()
    vad = config.vad.model_copy(update={"onset_max_shift_s": 0.0})
    assert refine_segments(segments, tracks, vad) == list(segments)


def _soft_start_call():
    """The customer speaks 5-13 s; the agent cuts in at 10.0 s, the first 0.9 s soft (8 dB over the line noise).

    VAD (and the [vad] onset repair) start the agent at 10.9 s, where the loud part begins.
    """
    from pipeline.audio.loudness import LoudnessTrack
    from pipeline.records import CallEvidence, SpeechSegment

    frame_s = 0.1
    agent, customer = np.full(200, -48.0, np.float32), np.full(200, -48.0, np.float32)
    agent[100:109], agent[109:140] = -40.0, -30.0
    customer[50:130] = -30.0
    segments = (SpeechSegment(CUSTOMER, 5.0, 13.0, -30.0), SpeechSegment(AGENT, 10.9, 14.0, -30.0))
    mask = {AGENT: np.arange(200) >= 109, CUSTOMER: (np.arange(200) >= 50) & (np.arange(200) < 130)}
    mask[AGENT] &= np.arange(200) < 140
    tracks = {AGENT: LoudnessTrack(AGENT, frame_s, agent, mask[AGENT]),
              CUSTOMER: LoudnessTrack(CUSTOMER, frame_s, customer, mask[CUSTOMER])}
    return CallEvidence("soft", 20.0, (AGENT, CUSTOMER), segments=segments), tracks


def test_timing_starts_a_turn_where_its_soft_first_syllable_starts() -> None:
    """[timing] onset_* time the interruption from 10.0 s; the stored ([vad]) onset stays at 10.9 s."""
    from pipeline.audio.loudness import refine_segments
    from pipeline.timing.detect import detect_timing, timing_evidence

    config = load_config()
    evidence, tracks = _soft_start_call()
    assert [s.start_s for s in refine_segments(evidence.segments, tracks, config.vad)] == [5.0, 10.9]
    timed = timing_evidence(evidence, config.timing, tracks)
    assert [s.start_s for s in timed.segments] == [5.0, pytest.approx(10.0)]
    assert timed.segments[1].end_s == 14.0 and timed.utterances == evidence.utterances

    def interruption(timing, loudness):  # noqa: ANN001, ANN202
        result = detect_timing(evidence, timing, loudness, (), ())
        [hit] = [h for h in result.hits if h.rule_id == "timing.interruption_agent"]
        return hit.start_s, result.features["interruptions_overlap_s"]

    assert interruption(config.timing, tracks) == (pytest.approx(10.0), pytest.approx(3.0))
    off = config.timing.model_copy(update={"onset_repair": False})
    assert interruption(off, tracks) == (pytest.approx(10.9), pytest.approx(2.1))
    assert interruption(config.timing, None) == (pytest.approx(10.9), pytest.approx(2.1))  # rescore: no tracks


def test_the_other_side_leaking_in_is_nobodys_speech() -> None:
    """An echo of the agent 20 dB down on the customer channel is crosstalk: no interruption, no turn."""
    from pipeline.analysis import timing_of
    from pipeline.records import CallEvidence, SpeechSegment

    config = load_config()
    agent = SpeechSegment(AGENT, 5.0, 13.0, -25.0)
    echo = SpeechSegment(CUSTOMER, 6.0, 10.0, -45.0)  # inside the agent's speech, 20 dB quieter
    reply = SpeechSegment(CUSTOMER, 14.0, 16.0, -28.0)
    evidence = CallEvidence("echo", 20.0, (AGENT, CUSTOMER), segments=(agent, echo, reply))

    def customer_interruptions(result) -> int:  # noqa: ANN001
        return result.features["interruptions_customer_count"]

    resources = Resources.load(config, transcriber=None, text=False)
    assert customer_interruptions(detect_timing(evidence, config.timing, None, (), ())) == 1  # the echo, as speech
    assert customer_interruptions(detect_timing(evidence, config.timing, None, (), (), crosstalk=(echo,))) == 0
    assert customer_interruptions(timing_of(evidence, resources, None)) == 0  # the run finds the echo itself
    loud = SpeechSegment(CUSTOMER, 6.0, 10.0, -27.0)  # real double-talk at a similar level stays
    double_talk = CallEvidence("dt", 20.0, (AGENT, CUSTOMER), segments=(agent, loud, reply))
    assert customer_interruptions(timing_of(double_talk, resources, None)) == 1
