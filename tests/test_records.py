"""The records handed between stages (pipeline/records.py): a bad value fails where it is made."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import (
    AGENT,
    CUSTOMER,
    MIXED,
    OUTCOMES,
    ROLES,
    SAMPLE_RATE_HZ,
    Call,
    CallEvidence,
    Channel,
    Hit,
    SpeechSegment,
    Utterance,
    Word,
    stable_id,
)


def channel(role: str = AGENT, seconds: float = 1.0) -> Channel:
    return Channel(role, np.zeros(int(seconds * SAMPLE_RATE_HZ), np.float32))


def call(*channels: Channel, metadata=None) -> Call:
    return Call("c1", "c1.wav", "0" * 64, channels, 8000, len(channels), "pcm_mulaw", "wav", 1.0,
                metadata if metadata is not None else {})


def hit(**change) -> Hit:
    values = {"call_id": "c1", "rule_id": "r.1", "detector_version": "v1", "category": "verbal_tic",
              "severity": "non_fatal", "error_class": "none", "role": AGENT, "start_s": 1.0, "end_s": 2.0,
              "match_type": "exact", **change}
    return Hit(**values)


# -- spans: times are finite, non-negative and ordered -------------------------------------------------

SPAN_MAKERS = {
    "SpeechSegment": lambda a, b: SpeechSegment(AGENT, a, b, -20.0),
    "Word": lambda a, b: Word("好", a, b, 0.9),
    "Utterance": lambda a, b: Utterance(AGENT, a, b, "好"),
    "Hit": lambda a, b: hit(start_s=a, end_s=b),
}


@pytest.mark.parametrize("make", SPAN_MAKERS.values(), ids=SPAN_MAKERS.keys())
@pytest.mark.parametrize(("start_s", "end_s"), [(2.0, 1.0), (-0.1, 1.0), (math.nan, 1.0), (0.0, math.inf)])
def test_bad_spans_are_refused(make, start_s, end_s):
    with pytest.raises(ValueError, match="start_s|finite"):
        make(start_s, end_s)


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_any_ordered_finite_span_is_accepted(a, b):
    start_s, end_s = min(a, b), max(a, b)
    for make in SPAN_MAKERS.values():
        made = make(start_s, end_s)
        assert (made.start_s, made.end_s) == (start_s, end_s)
    assert SpeechSegment(AGENT, start_s, end_s, -20.0).duration_s == pytest.approx(end_s - start_s)


def test_zero_length_spans_are_allowed():
    assert SpeechSegment(AGENT, 3.0, 3.0, -20.0).duration_s == 0.0
    assert Utterance(AGENT, 3.0, 3.0, "嗯").duration_s == 0.0


# -- each record's own rules ---------------------------------------------------------------------------


def test_channel_role_and_samples():
    assert channel(CUSTOMER, 2.0).duration_s == pytest.approx(2.0)
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        channel("boss")
    with pytest.raises(ValueError, match="unknown role 'unknown'"):
        channel("unknown")  # a hit may be about an unknown role, a channel never is
    with pytest.raises(ValueError, match="1-D float32"):
        Channel(AGENT, np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="1-D float32"):
        Channel(AGENT, np.zeros((10, 2), np.float32))
    assert set(ROLES) == {AGENT, CUSTOMER, MIXED}


def test_call_channels_and_metadata():
    stereo = call(channel(AGENT), channel(CUSTOMER), metadata={"team": "售后一组"})
    assert not stereo.is_mono and stereo.channel(CUSTOMER).role == CUSTOMER
    with pytest.raises(KeyError):
        stereo.channel(MIXED)
    assert call(channel(MIXED)).is_mono and not call(channel(AGENT)).is_mono
    with pytest.raises(ValueError, match="at least one channel"):
        call()
    with pytest.raises(ValueError, match="duplicate channel roles"):
        call(channel(AGENT), channel(AGENT))
    source = {"team": "售后一组"}
    kept = call(channel(AGENT), metadata=source)
    source["team"] = "changed later"
    assert kept.metadata["team"] == "售后一组"  # a copy, not the caller's dict
    with pytest.raises(TypeError):
        kept.metadata["team"] = "x"  # type: ignore[index]


def test_word_probability_is_a_probability():
    assert Word("好", 0.0, 0.2, 0.0).probability == 0.0 and Word("好", 0.0, 0.2, 1.0).probability == 1.0
    for bad in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError, match="probability"):
            Word("好", 0.0, 0.2, bad)


def test_a_suspect_utterance_says_why():
    with pytest.raises(ValueError, match="suspect_reason"):
        Utterance(AGENT, 0.0, 1.0, "谢谢观看", suspect=True)
    flagged = Utterance(AGENT, 0.0, 1.0, "谢谢观看", suspect=True, suspect_reason="known_hallucination(谢谢观看)")
    assert flagged.suspect and flagged.suspect_reason.startswith("known_hallucination")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("severity", "critical", "severity 'critical'"),
    ("error_class", "legal", "error_class 'legal'"),
    ("match_type", "guess", "match_type 'guess'"),
    ("confidence", 1.5, "confidence 1.5"),
    ("confidence", -0.1, "confidence -0.1"),
])
def test_hit_fields_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        hit(**{field: value})


def test_hit_id_is_stable_and_depends_on_what_was_found():
    first = hit()
    assert first.hit_id == hit().hit_id and len(first.hit_id) == 16
    assert first.hit_id == stable_id("c1", "r.1", "v1", AGENT, "1.000", "2.000", "exact", "")
    # what the hit is about changes its id; how it is described (confidence, detail) does not
    for change in ({"call_id": "c2"}, {"rule_id": "r.2"}, {"detector_version": "v2"}, {"role": CUSTOMER},
                   {"start_s": 1.001}, {"end_s": 2.5}, {"match_type": "fuzzy"}, {"matched_text": "就是"}):
        assert hit(**change).hit_id != first.hit_id, change
    for change in ({"confidence": 0.5}, {"detail": "x"}, {"context": "就是说"}, {"suspect": True},
                   {"severity": "fatal"}, {"category": "arguing"}):
        assert hit(**change).hit_id == first.hit_id, change
    assert hit(start_s=1.0001).hit_id == first.hit_id  # times count to the millisecond


def test_stable_id_depends_only_on_its_parts():
    assert stable_id("a", 1, 2.5) == stable_id("a", 1, 2.5) != stable_id("a", 1, 2.50001)
    assert stable_id("ab", "c") != stable_id("a", "bc")  # parts are separated, not just joined
    assert len(stable_id("x", length=8)) == 8


def test_evidence_views_and_read_only_metadata():
    utterances = (Utterance(AGENT, 0.0, 1.0, "您好"), Utterance(CUSTOMER, 1.0, 2.0, "喂"),
                  Utterance(AGENT, 2.0, 3.0, "请讲"))
    segments = (SpeechSegment(AGENT, 0.0, 1.0, -20.0), SpeechSegment(CUSTOMER, 1.0, 2.0, -25.0))
    evidence = CallEvidence("c1", 3.0, (AGENT, CUSTOMER), segments, utterances, {"hangup_party": "agent"})
    assert [u.text for u in evidence.utterances_of(AGENT)] == ["您好", "请讲"]
    assert evidence.segments_of(CUSTOMER) == (segments[1],) and not evidence.is_mono
    assert CallEvidence("m", 1.0, (MIXED,)).is_mono
    with pytest.raises(TypeError):
        evidence.metadata["hangup_party"] = "customer"  # type: ignore[index]


@pytest.mark.parametrize("record", [
    SpeechSegment(AGENT, 0.0, 1.0, -20.0), Word("好", 0.0, 1.0, 0.5), Utterance(AGENT, 0.0, 1.0, "好"), hit(),
    CallEvidence("c1", 1.0, (AGENT,)), channel(), call(channel()),
], ids=lambda r: type(r).__name__)
def test_records_are_frozen(record):
    name = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, name, getattr(record, name))


def test_outcomes_are_worst_first():
    assert OUTCOMES == ("fail", "needs_review", "needs_listening", "pass")
