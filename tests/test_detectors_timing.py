"""Timing and acoustic detectors on hand-made evidence: values, thresholds, edge cases, invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.audio.loudness import LoudnessTrack, loudness_tracks
from pipeline.config import TimingConfig, default_config
from pipeline.records import (
    AGENT,
    CATEGORIES,
    CUSTOMER,
    MIXED,
    SAMPLE_RATE_HZ,
    Call,
    CallEvidence,
    Channel,
    SpeechSegment,
    Utterance,
    Word,
)
from pipeline.timing.detect import TIMING_VERSION, TimingResult, detect_timing

HOLDS = ("请稍等", "我帮您查询一下")
BACKCHANNELS = ("嗯", "对", "好的", "是的")
TIMING = default_config().timing


def seg(role: str, start_s: float, end_s: float, dbfs: float = -30.0) -> SpeechSegment:
    return SpeechSegment(role, start_s, end_s, dbfs)


def utt(role: str, start_s: float, end_s: float, text: str) -> Utterance:
    return Utterance(role, start_s, end_s, text)


def evidence(segments=(), utterances=(), duration_s: float = 60.0, mono: bool = False,
             metadata: dict | None = None) -> CallEvidence:
    roles = (MIXED,) if mono else (AGENT, CUSTOMER)
    return CallEvidence("call-1", duration_s, roles, tuple(segments), tuple(utterances), metadata or {})


def run(ev: CallEvidence, config: TimingConfig = TIMING, loudness=None) -> TimingResult:
    return detect_timing(ev, config, loudness, HOLDS, BACKCHANNELS)


def rules(result: TimingResult) -> list[str]:
    return [h.rule_id for h in result.hits]


def with_(**update) -> TimingConfig:
    return TIMING.model_copy(update=update)


# -- silence, holds, answer delay -------------------------------------------------

def test_dead_air_between_turns_is_a_silence_hit_with_its_span():
    ev = evidence([seg(AGENT, 1.0, 3.0), seg(CUSTOMER, 9.5, 11.0)])
    result = run(ev)
    hit = next(h for h in result.hits if h.rule_id == "timing.silence")
    assert (hit.start_s, hit.end_s) == (3.0, 9.5)
    assert hit.category == "silence" and hit.severity == "non_fatal" and hit.detector_version == TIMING_VERSION
    assert result.features["silence_count"] == 1 and result.features["silence_total_s"] == pytest.approx(6.5)
    assert result.features["dead_air_count"] == 1 and result.features["hold_count"] == 0


def test_silence_threshold_comes_from_config():
    ev = evidence([seg(AGENT, 1.0, 3.0), seg(CUSTOMER, 7.0, 8.0)])  # a 4 s gap
    assert "timing.silence" not in rules(run(ev))
    assert "timing.silence" in rules(run(ev, with_(silence_min_s=3.5)))


def test_announced_silence_is_a_hold_not_dead_air():
    ev = evidence([seg(AGENT, 1.0, 3.0), seg(AGENT, 20.0, 22.0)],
                  [utt(AGENT, 1.0, 3.0, "好的，请稍等，我帮您查询一下。"), utt(AGENT, 20.0, 22.0, "让您久等了")])
    result = run(ev)
    assert "timing.silence" not in rules(result) and "timing.hold_long" not in rules(result)
    assert result.features["hold_count"] == 1 and result.features["hold_total_s"] == pytest.approx(17.0)
    long_hold = run(ev, with_(hold_max_s=10.0))
    hit = next(h for h in long_hold.hits if h.rule_id == "timing.hold_long")
    assert (hit.start_s, hit.end_s, hit.category, hit.matched_text) == (3.0, 20.0, "hold", "请稍等")


def test_announcement_too_long_before_the_silence_does_not_excuse_it():
    ev = evidence([seg(AGENT, 0.5, 2.0), seg(CUSTOMER, 3.0, 15.0), seg(AGENT, 30.0, 31.0)],
                  [utt(AGENT, 0.5, 2.0, "请稍等"), utt(CUSTOMER, 3.0, 15.0, "我的订单一直没有到货")])
    assert "timing.silence" in rules(run(ev))  # announced 13 s before the gap: window is 10 s


def test_answer_delay_feature_and_hit():
    late = run(evidence([seg(CUSTOMER, 0.5, 1.0), seg(AGENT, 4.2, 6.0)]))
    hit = next(h for h in late.hits if h.rule_id == "timing.answer_delay")
    assert (hit.start_s, hit.end_s, hit.role) == (0.0, 4.2, AGENT)
    assert late.features["answer_delay_s"] == pytest.approx(4.2)
    assert "timing.answer_delay" not in rules(run(evidence([seg(AGENT, 2.9, 6.0)])))


# -- interruptions -------------------------------------------------------------------

def test_agent_interrupting_customer_with_words_is_a_fault():
    ev = evidence([seg(CUSTOMER, 0.0, 5.0), seg(AGENT, 3.0, 7.0)],
                  [utt(CUSTOMER, 0.0, 5.0, "我想问一下那个退款"), utt(AGENT, 3.0, 7.0, "您先听我说完好吗")])
    result = run(ev)
    hit = next(h for h in result.hits if h.category == "interruption")
    assert (hit.rule_id, hit.role, hit.start_s, hit.end_s) == ("timing.interruption_agent", AGENT, 3.0, 5.0)
    assert hit.severity == "non_fatal" and hit.error_class == "customer" and hit.confidence == 1.0
    assert result.features["interruptions_agent_count"] == 1
    assert result.features["interruptions_customer_count"] == 0


def test_customer_interrupting_agent_is_info():
    ev = evidence([seg(AGENT, 0.0, 5.0), seg(CUSTOMER, 2.0, 6.0)],
                  [utt(AGENT, 0.0, 5.0, "根据我们的规定这个需要"), utt(CUSTOMER, 2.0, 6.0, "你们到底什么时候退款")])
    hit = next(h for h in run(ev).hits if h.category == "interruption")
    assert (hit.rule_id, hit.severity, hit.error_class) == ("timing.interruption_customer", "info", "none")


@pytest.mark.parametrize("text", ["嗯", "对。", "好的", "嗯嗯对"])
def test_backchannels_and_short_words_are_not_interruptions(text):
    ev = evidence([seg(CUSTOMER, 0.0, 5.0), seg(AGENT, 2.0, 3.0)],
                  [utt(CUSTOMER, 0.0, 5.0, "我想问一下那个退款"), utt(AGENT, 2.0, 3.0, text)])
    assert run(ev).features["interruptions_agent_count"] == 0


def test_few_words_over_a_long_stretch_are_an_interruption_unless_they_are_backchannels():
    # Whisper wrote the customer's "换一首歌", said over the agent for 1.3 s, as "一首歌": knowing three of
    # the words must not make the detector stricter than knowing none (1 s of speech is enough then)
    def agent_count(text: str, end_s: float) -> int:
        ev = evidence([seg(CUSTOMER, 0.0, 5.0), seg(AGENT, 2.0, end_s)],
                      [utt(CUSTOMER, 0.0, 5.0, "我想问一下那个退款"), utt(AGENT, 2.0, end_s, text)])
        return run(ev).features["interruptions_agent_count"]

    assert TIMING.interruption_min_chars == 4 and TIMING.interruption_unchecked_min_speech_s == 1.0
    assert agent_count("一首歌", 3.3) == 1
    assert agent_count("一首歌", 2.8) == 0  # 0.8 s: as short as a backchannel
    # listening noises one after another stay listening noises, however long
    assert agent_count("对对对好的", 4.0) == 0 and agent_count("嗯好的嗯", 4.0) == 0
    assert agent_count("对对对你先听我说", 4.0) == 1


def test_min_chars_and_overlap_thresholds_come_from_config():
    ev = evidence([seg(CUSTOMER, 0.0, 5.0), seg(AGENT, 4.6, 7.0)],
                  [utt(CUSTOMER, 0.0, 5.0, "我想问一下那个退款"), utt(AGENT, 4.6, 7.0, "换一首歌")])
    assert run(ev).features["interruptions_agent_count"] == 1  # 4 chars, 0.4 s overlap
    assert run(ev, with_(interruption_min_chars=5)).features["interruptions_agent_count"] == 0
    assert run(ev, with_(interruption_min_overlap_s=0.5)).features["interruptions_agent_count"] == 0


def test_simultaneous_start_interrupts_nobody_and_without_transcript_confidence_drops():
    together = evidence([seg(CUSTOMER, 1.0, 5.0), seg(AGENT, 1.1, 4.0)])
    assert run(together).features["interruptions_agent_count"] == 0
    untranscribed = run(evidence([seg(CUSTOMER, 0.0, 5.0), seg(AGENT, 2.0, 4.0)]))
    hit = next(h for h in untranscribed.hits if h.category == "interruption")
    assert hit.confidence == pytest.approx(0.6) and "no transcribed words" in hit.detail


def words(role: str, start_s: float, end_s: float, text: str) -> Utterance:
    """An utterance with one word per character, evenly spread (what Whisper gives)."""
    step = (end_s - start_s) / len(text)
    return Utterance(role, start_s, end_s, text, tuple(Word(ch, start_s + i * step, start_s + (i + 1) * step, 0.9)
                                                       for i, ch in enumerate(text)))


def test_an_agent_starting_in_the_customers_pause_and_talking_over_her_for_3_s_interrupts():
    # the kind that was missed: the customer pauses 0.6 s mid-sentence, the agent starts in the pause,
    # and both then speak for 3 s (the agent's start fell in no customer segment)
    ev = evidence([seg(CUSTOMER, 0.0, 4.0), seg(CUSTOMER, 4.6, 8.0), seg(AGENT, 4.3, 9.0)],
                  [words(CUSTOMER, 0.0, 8.0, "我想问一下那个退款到底什么时候能到账"),
                   words(AGENT, 4.3, 9.0, "您先别急我先帮您查一下这个订单")])
    result = run(ev)
    (hit,) = [h for h in result.hits if h.category == "interruption"]
    assert (hit.role, hit.start_s, hit.end_s, hit.confidence) == (AGENT, 4.3, 8.0, 1.0)
    assert result.features["interruptions_overlap_s"] == pytest.approx(3.4)
    # a customer turn ended by a real pause (longer than interruption_turn_gap_s) is not cut into
    ended = evidence([seg(CUSTOMER, 0.0, 4.0), seg(AGENT, 5.2, 9.0), seg(CUSTOMER, 5.5, 8.0)])
    assert run(ended).features["interruptions_agent_count"] == 0
    assert run(ended).features["interruptions_customer_count"] == 1


def test_an_overlap_that_starts_with_a_short_one_is_measured_over_the_whole_turn():
    # the agent's turn starts 0.2 s before the customer's first stretch ends, the customer goes on
    # after a 0.3 s breath: 3.2 s spoken at once, not 0.2 s
    ev = evidence([seg(CUSTOMER, 0.0, 3.0), seg(CUSTOMER, 3.3, 6.0), seg(AGENT, 2.8, 7.0)],
                  [], duration_s=10.0)
    (found,) = [h for h in run(ev).hits if h.category == "interruption"]
    assert (found.start_s, found.end_s) == (2.8, 6.0) and "2.9 s spoken at once" in found.detail


def test_speech_without_words_is_judged_by_its_length_and_words_that_exist_are_checked():
    customer = [seg(CUSTOMER, 0.0, 8.0)]
    said = [words(CUSTOMER, 0.0, 8.0, "我想问一下那个退款到底什么时候")]
    # the transcript has a gap over the agent's 3 s of speech: still an interruption, marked unchecked
    gap = run(evidence([*customer, seg(AGENT, 3.0, 6.0)], said))
    (hit,) = [h for h in gap.hits if h.category == "interruption"]
    assert hit.confidence == TIMING.interruption_unchecked_confidence
    assert "few or no transcribed words there" in hit.detail
    # half a second of untranscribed speech is as short as a backchannel
    assert run(evidence([*customer, seg(AGENT, 3.0, 3.5)], said)).features["interruptions_agent_count"] == 0
    # where the words are known, a backchannel stays a backchannel however long the VAD made it
    known = [*said, words(AGENT, 3.0, 5.0, "嗯")]
    assert run(evidence([*customer, seg(AGENT, 3.0, 5.0)], known)).features["interruptions_agent_count"] == 0
    # one word heard in 3.8 s of speech is a transcript that missed the rest, not a backchannel
    for garbled in ([*said, words(AGENT, 4.8, 5.0, "伯")],
                    [*said, words(AGENT, 4.0, 6.8, "伯")]):  # one word stretched over 2.8 s covers no more
        (hit,) = [h for h in run(evidence([*customer, seg(AGENT, 3.0, 6.8)], garbled)).hits
                  if h.category == "interruption"]
        assert (hit.start_s, hit.confidence) == (3.0, TIMING.interruption_unchecked_confidence)
        assert "few or no transcribed words" in hit.detail
    # ... while a backchannel whose word covers half the speech is still one
    half = [*said, words(AGENT, 3.4, 3.6, "嗯")]  # 0.2 s word + 0.25 s either side: 0.7 of 1.4 s
    assert run(evidence([*customer, seg(AGENT, 3.0, 4.4)], half)).features["interruptions_agent_count"] == 0
    # distrusted words are not known words
    hallucinated = [*said, Utterance(AGENT, 3.0, 6.0, "谢谢观看", suspect=True, suspect_reason="known_hallucination")]
    (hit,) = [h for h in run(evidence([*customer, seg(AGENT, 3.0, 6.0)], hallucinated)).hits
              if h.category == "interruption"]
    assert hit.confidence < 1.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pause_at=st.floats(1.0, 8.0), pause_s=st.floats(0.05, 0.95), start_after=st.floats(-0.9, 1.2),
       length_s=st.floats(1.0, 6.0))
def test_an_agent_overlapping_the_customer_by_a_second_or_more_is_found_wherever_it_starts(
        pause_at, pause_s, start_after, length_s):
    # the customer speaks 0..10 s with one pause shorter than a turn gap; the agent starts around the pause:
    # whenever both speak a second or more, one agent interruption (never a customer one), overlap exact
    customer = [seg(CUSTOMER, 0.0, pause_at), seg(CUSTOMER, pause_at + pause_s, 10.0)]
    start = max(0.3, pause_at + start_after)
    agent = seg(AGENT, start, start + length_s)
    both = sum(max(0.0, min(c.end_s, agent.end_s) - max(c.start_s, agent.start_s)) for c in customer)
    assume(both >= 1.0)
    features = run(evidence([*customer, agent], [], duration_s=20.0)).features
    assert (features["interruptions_agent_count"], features["interruptions_customer_count"]) == (1, 0)
    assert features["interruptions_overlap_s"] == pytest.approx(both)


# -- response latency and talk ------------------------------------------------------

def test_response_latencies_and_slow_reply_hit():
    ev = evidence([seg(CUSTOMER, 0.0, 2.0), seg(AGENT, 3.0, 5.0), seg(CUSTOMER, 6.0, 8.0), seg(AGENT, 14.5, 16.0)])
    result = run(ev)
    f = result.features
    assert f["response_latency_count"] == 2
    assert f["response_latency_median_s"] == pytest.approx(3.75) and f["response_latency_max_s"] == pytest.approx(6.5)
    hit = next(h for h in result.hits if h.rule_id == "timing.response_latency")
    assert (hit.start_s, hit.end_s) == (8.0, 14.5)


def test_talk_ratio_overlap_and_longest_monologue():
    ev = evidence([seg(AGENT, 0.0, 4.0), seg(AGENT, 4.5, 10.0), seg(CUSTOMER, 9.0, 12.0), seg(AGENT, 20.0, 21.0)])
    f = run(ev).features
    # agent 10.5 s, customer 3.0 s, 1 s of it at once (per-role speech times are feature columns
    # computed from the segments now, not timing features)
    assert f["speech_total_s"] == pytest.approx(12.5)
    assert f["agent_talk_ratio"] == pytest.approx(10.5 / 13.5)
    assert f["overlap_total_s"] == pytest.approx(1.0)
    assert f["longest_monologue_s"] == pytest.approx(10.0)


# -- speech rate ----------------------------------------------------------------------

def test_sustained_fast_agent_speech_is_a_hit_short_bursts_are_not():
    text = "您好这里是客服中心请问有什么可以帮您" * 2  # 36 chars
    fast = [utt(AGENT, t, t + 6.0, text) for t in (0.0, 7.0)]  # 360 chars/min, 12 s
    result = run(evidence([seg(AGENT, 0.0, 6.0), seg(AGENT, 7.0, 13.0)], fast))
    hit = next(h for h in result.hits if h.rule_id == "timing.speech_rate_fast")
    assert (hit.start_s, hit.end_s, hit.category) == (0.0, 13.0, "speech_rate")
    assert result.features["agent_rate_chars_per_min_mean"] == pytest.approx(360.0)
    one = run(evidence([seg(AGENT, 0.0, 6.0)], fast[:1]))  # 6 s < 10 s sustained
    assert "timing.speech_rate_fast" not in rules(one)
    assert "timing.speech_rate_fast" in rules(run(evidence([seg(AGENT, 0.0, 6.0)], fast[:1]),
                                                  with_(speech_rate_min_sustained_s=5.0)))


def test_slow_speech_short_utterances_and_punctuation():
    slow = [utt(AGENT, 0.0, 12.0, "好的，请您，稍等。"), utt(AGENT, 13.0, 14.0, "嗯？")]  # 6 chars / 12 s
    result = run(evidence([seg(AGENT, 0.0, 12.0), seg(AGENT, 13.0, 14.0)], slow))
    assert "timing.speech_rate_slow" in rules(result)
    assert result.features["agent_rate_chars_per_min_mean"] == pytest.approx(30.0)  # 1 s utterance ignored
    assert result.features["agent_rated_speech_s"] == pytest.approx(12.0)  # 6 characters (no punctuation) / 12 s


def test_rate_uses_speech_time_inside_the_utterance():
    ev = evidence([seg(AGENT, 0.0, 3.0), seg(AGENT, 5.0, 8.0)], [utt(AGENT, 0.0, 8.0, "字" * 24)])
    assert run(ev).features["agent_rate_chars_per_min_mean"] == pytest.approx(240.0)  # 24 chars / 6 s


# -- raised voice -----------------------------------------------------------------------

def _track(role: str, levels: list[tuple[float, float]], frame_s: float = 0.1) -> LoudnessTrack:
    dbfs = np.concatenate([np.full(int(round(d / frame_s)), lv, np.float32) for d, lv in levels])
    return LoudnessTrack(role, frame_s, dbfs, dbfs > -90)


def test_raised_voice_from_tracks_against_own_median():
    agent = _track(AGENT, [(10.0, -30.0), (2.0, -20.0), (5.0, -30.0), (1.0, -120.0)])
    customer = _track(CUSTOMER, [(18.0, -40.0)])
    segments = [seg(AGENT, 0.0, 17.0), seg(CUSTOMER, 0.0, 18.0)]
    result = run(evidence(segments, duration_s=18.0), loudness={AGENT: agent, CUSTOMER: customer})
    hit = next(h for h in result.hits if h.rule_id == "acoustic.raised_voice")
    assert hit.start_s == pytest.approx(9.8, abs=0.3) and hit.end_s == pytest.approx(12.2, abs=0.3)
    assert hit.match_type == "acoustic" and hit.category == "raised_voice"
    assert result.features["agent_speech_level_dbfs_median"] == pytest.approx(-30.0)
    assert result.features["customer_raised_voice_count"] == 0
    quiet = run(evidence(segments, duration_s=18.0), with_(raised_voice_db=12.0), {AGENT: agent, CUSTOMER: customer})
    assert "acoustic.raised_voice" not in rules(quiet)


def test_raised_voice_falls_back_to_segment_loudness():
    segments = [seg(AGENT, t, t + 2.0, -30.0) for t in (0.0, 3.0, 6.0, 9.0)] + [seg(AGENT, 12.0, 14.0, -21.0)]
    result = run(evidence(segments))
    hits = [h for h in result.hits if h.rule_id == "acoustic.raised_voice"]
    assert [(h.start_s, h.end_s) for h in hits] == [(12.0, 14.0)]


def test_loudness_tracks_frames_and_speech_mask():
    n = SAMPLE_RATE_HZ * 3
    tone = (0.1 * np.sin(np.arange(n) * 2 * np.pi * 440 / SAMPLE_RATE_HZ)).astype(np.float32)
    tone[: SAMPLE_RATE_HZ] = 0.0
    call = Call("c", "x.wav", "0", (Channel(AGENT, tone), Channel(CUSTOMER, np.zeros(n, np.float32))),
                SAMPLE_RATE_HZ, 2, "pcm", "wav", 3.0)
    tracks = loudness_tracks(call, [seg(AGENT, 1.0, 3.0)], 0.1)
    agent = tracks[AGENT]
    assert agent.dbfs.shape == (30,) and agent.speech.sum() == 20 and not tracks[CUSTOMER].speech.any()
    assert agent.dbfs[15] == pytest.approx(20 * math.log10(0.1 / math.sqrt(2)), abs=0.1)
    assert agent.dbfs[5] == pytest.approx(-120.0)


# -- hang-up --------------------------------------------------------------------------

def test_hangup_from_metadata():
    ended = [seg(AGENT, 0.0, 2.0), seg(CUSTOMER, 3.0, 29.5)]
    cut_off = run(evidence(ended, duration_s=30.0, metadata={"hangup_party": "agent"}))
    hit = next(h for h in cut_off.hits if h.category == "hangup")
    assert (hit.rule_id, hit.severity, hit.confidence) == ("timing.agent_hung_up_first", "fatal", 1.0)
    calm = run(evidence([seg(AGENT, 0.0, 2.0), seg(CUSTOMER, 3.0, 20.0)], duration_s=30.0,
                        metadata={"hangup_party": "坐席"}))
    assert [h.severity for h in calm.hits if h.category == "hangup"] == ["non_fatal"]
    assert calm.features["hangup_party"] == AGENT and calm.features["hangup_estimated"] == 0
    fine = run(evidence(ended, duration_s=30.0, metadata={"hangup_party": "customer"}))
    assert not [h for h in fine.hits if h.category == "hangup"]


def test_hangup_estimated_without_metadata():
    cut = run(evidence([seg(AGENT, 0.0, 2.0), seg(CUSTOMER, 3.0, 29.5)], duration_s=30.0))
    hit = next(h for h in cut.hits if h.category == "hangup")
    assert hit.confidence == pytest.approx(0.5) and hit.severity == "non_fatal" and "estimated" in hit.detail
    polite = run(evidence([seg(CUSTOMER, 0.0, 2.0), seg(AGENT, 3.0, 20.0)], duration_s=30.0))
    assert polite.features["hangup_party"] == CUSTOMER and polite.features["hangup_estimated"] == 1
    assert polite.features["trailing_silence_s"] == pytest.approx(10.0)


# -- mono, empty, invariants ---------------------------------------------------------------

def test_mono_call_gets_role_free_features_only():
    ev = evidence([seg(MIXED, 0.5, 4.0), seg(MIXED, 12.0, 15.0)], [utt(MIXED, 0.5, 4.0, "字" * 14)], mono=True)
    result = run(ev)
    f = result.features
    assert [h.rule_id for h in result.hits] == ["timing.silence"] and result.hits[0].role == "unknown"
    assert f["mixed_rate_chars_per_min_mean"] == pytest.approx(240.0)
    assert f["silence_count"] == 1 and f["speech_total_s"] == pytest.approx(6.5)
    for key in ("agent_talk_ratio", "interruptions_agent_count", "response_latency_median_s",
                "agent_raised_voice_count", "agent_speech_level_dbfs_median", "overlap_total_s"):
        assert f[key] is None, key
    assert math.isnan(f["answer_delay_s"])


def test_empty_and_one_sided_calls():
    empty = run(evidence(duration_s=30.0))
    assert empty.hits == ()
    assert empty.features["silence_count"] == 0 and empty.features["speech_total_s"] == 0.0
    assert math.isnan(empty.features["agent_talk_ratio"]) and empty.features["hangup_party"] == "unknown"
    agent_only = run(evidence([seg(AGENT, 1.0, 5.0)], duration_s=10.0))
    assert agent_only.features["agent_talk_ratio"] == 1.0 and agent_only.features["response_latency_count"] == 0
    customer_only = run(evidence([seg(CUSTOMER, 1.0, 5.0), seg(CUSTOMER, 5.0, 9.0)], duration_s=10.0))
    assert math.isnan(customer_only.features["answer_delay_s"]) and not customer_only.hits


spans = st.lists(st.tuples(st.sampled_from([AGENT, CUSTOMER]), st.floats(0, 100), st.floats(0, 15)), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans, st.booleans())
def test_invariants_on_random_segments(raw, with_text):
    segments = [seg(r, round(a, 2), round(min(a + d, 120.0), 2)) for r, a, d in raw]
    utterances = [utt(s.role, s.start_s, s.end_s, "我们这边帮您看一下") for s in segments] if with_text else []
    result = run(evidence(segments, utterances, duration_s=120.0))
    for h in result.hits:
        assert 0.0 <= h.start_s <= h.end_s <= 120.0
        assert h.category in CATEGORIES and h.detector_version == TIMING_VERSION
    f = result.features
    for key, value in f.items():
        if isinstance(value, float) and not math.isnan(value) and "_dbfs" not in key:  # levels are negative
            assert value >= 0.0, key
    ratio = f["agent_talk_ratio"]
    assert math.isnan(ratio) or 0.0 <= ratio <= 1.0
    agent_s = sum(s.duration_s for s in intervals_union(segments, AGENT))
    customer_s = sum(s.duration_s for s in intervals_union(segments, CUSTOMER))
    assert f["silence_total_s"] <= 120.0 and f["overlap_total_s"] <= min(agent_s, customer_s) + 1e-9
    assert f["speech_total_s"] <= 120.0 + 1e-9
    assert f["silence_count"] == sum(1 for h in result.hits if h.rule_id == "timing.silence")
    assert sorted(result.hits, key=lambda h: (h.start_s, h.rule_id)) == list(result.hits)


def intervals_union(segments, role):
    """The role's speech as disjoint spans (computed here, independently of the detectors)."""
    merged: list[SpeechSegment] = []
    for seg_ in sorted((x for x in segments if x.role == role), key=lambda x: x.start_s):
        if merged and seg_.start_s <= merged[-1].end_s:
            last = merged[-1]
            merged[-1] = SpeechSegment(role, last.start_s, max(last.end_s, seg_.end_s), last.loudness_dbfs)
        else:
            merged.append(seg_)
    return merged


def test_zero_length_gaps_and_segments():
    touching = run(evidence([seg(CUSTOMER, 0.0, 2.0), seg(AGENT, 2.0, 4.0), seg(CUSTOMER, 4.0, 4.0)]))
    f = touching.features
    assert f["response_latency_count"] == 1 and f["response_latency_max_s"] == 0.0
    assert f["interruptions_agent_count"] == 0 and f["interruptions_customer_count"] == 0
    assert f["overlap_total_s"] == 0.0 and f["silence_count"] == 0
    assert not [h for h in touching.hits if h.category in ("interruption", "silence", "response_latency")]


def test_feature_keys_are_the_same_for_every_call():
    stereo = run(evidence([seg(AGENT, 0.0, 2.0)]))
    mono = run(evidence([seg(MIXED, 0.0, 2.0)], mono=True))
    empty = run(evidence())
    assert set(stereo.features) == set(mono.features) == set(empty.features)
    assert {"agent_rate_chars_per_min_mean", "silence_total_s", "hold_count", "answer_delay_s",
            "interruptions_agent_count", "response_latency_median_s", "agent_talk_ratio",
            "longest_monologue_s", "agent_raised_voice_count", "hangup_party"} <= set(stereo.features)
