"""Dead air (静音/冷场), announced holds (保持等待) and the answer delay (接起应答).

A *silence* is a gap between speech of either side (the union of every
channel's VAD segments), from the first to the last speech of the call, at
least ``silence_min_s`` long. Leading silence is the answer delay; trailing
silence belongs to the hang-up detector.

A silence is an excused *hold* when the agent (or, on a mono call, anyone)
announced it: an utterance ending within ``hold_announce_window_s`` before the
silence contains one of the hold phrases ("请稍等", "我帮您查询一下", …,
passed in from the lexicon). Holds raise no dead-air hit, but a hold longer
than ``hold_max_s`` raises ``timing.hold_long``. Without a transcript no hold
can be recognised, so every long silence is reported as dead air.

Severities (DOMAIN.md §3-5): dead air is 控制节奏 "沉默尴尬", an overlong hold
and a late answer break stated service standards (接起 ≤3 s [003]); all are
improvable ``non_fatal`` faults felt by the customer (error class ``customer``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.chinese import matching_form
from pipeline.config import TimingConfig
from pipeline.records import AGENT, MIXED, UNKNOWN, CallEvidence, Hit, Utterance
from pipeline.spans import gaps
from pipeline.timing.columns import Feature
from pipeline.timing.intervals import activity

SILENCE_RULE = "timing.silence"
HOLD_RULE = "timing.hold_long"
ANSWER_RULE = "timing.answer_delay"

FEATURES: tuple[Feature, ...] = (
    Feature("silence_count", "int", "Silences (nobody speaking) of at least timing.silence_min_s, holds included."),
    Feature("silence_total_s", "float", "Total time of those silences (s)."),
    Feature("silence_max_s", "float", "Longest silence (s)."),
    Feature("dead_air_count", "int", "Unexcused silences (not announced as a hold)."),
    Feature("dead_air_total_s", "float", "Total unexcused silence (s)."),
    Feature("dead_air_max_s", "float", "Longest unexcused silence (s)."),
    Feature("hold_count", "int", "Holds: silences announced by the agent (请稍等, ...)."),
    Feature("hold_total_s", "float", "Total hold time (s)."),
    Feature("hold_max_s", "float", "Longest hold (s)."),
    Feature("answer_delay_s", "float", "Time from call start to the agent's first words (s)."),
    Feature("first_speech_s", "float", "Time from call start to anyone's first speech (s)."),
)


@dataclass(frozen=True)
class Silence:
    """A mutual silence; ``announced_by`` is the hold phrase that excuses it ("" = dead air)."""

    start_s: float
    end_s: float
    announced_by: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_hold(self) -> bool:
        return bool(self.announced_by)


def _announcement(utterances: Sequence[Utterance], at_s: float, window_s: float,
                  phrases: Sequence[str]) -> str:
    for u in utterances:
        if u.role in (AGENT, MIXED) and at_s - window_s <= u.end_s <= at_s + 0.5:
            text = matching_form(u.text)
            for phrase in phrases:
                if phrase and phrase in text:
                    return phrase
    return ""


def find_silences(evidence: CallEvidence, config: TimingConfig, hold_phrases: Sequence[str]) -> list[Silence]:
    """Mutual silences of at least ``silence_min_s``, each marked as hold or dead air."""
    phrases = [p for p in (matching_form(p) for p in hold_phrases) if p]
    found = []
    for start_s, end_s in gaps(activity(evidence.segments)):
        if end_s - start_s >= config.silence_min_s:
            phrase = _announcement(evidence.utterances, start_s, config.hold_announce_window_s, phrases)
            found.append(Silence(start_s, end_s, phrase))
    return found


def answer_delay_s(evidence: CallEvidence) -> float | None:
    """Seconds from the call start to the agent's first speech; ``None`` on mono or without agent speech."""
    if evidence.is_mono:
        return None
    agent = evidence.segments_of(AGENT)
    return min(s.start_s for s in agent) if agent else None


def silence_features(silences: Sequence[Silence], evidence: CallEvidence) -> dict[str, float | int | None]:
    """``silence_count``/``_total_s``/``_max_s`` (holds included), the same for
    ``dead_air_`` (unexcused) and ``hold_`` (announced), ``answer_delay_s`` and
    ``first_speech_s`` (role-free, also on mono calls)."""
    dead = [s.duration_s for s in silences if not s.is_hold]
    held = [s.duration_s for s in silences if s.is_hold]
    every = [s.duration_s for s in silences]
    features: dict[str, float | int | None] = {}
    for name, values in (("silence", every), ("dead_air", dead), ("hold", held)):
        features[f"{name}_count"] = len(values)
        features[f"{name}_total_s"] = float(sum(values))
        features[f"{name}_max_s"] = max(values) if values else 0.0
    delay = answer_delay_s(evidence)
    features["answer_delay_s"] = math.nan if delay is None else delay
    features["first_speech_s"] = min((s.start_s for s in evidence.segments), default=math.nan)
    return features


def detect_silence(evidence: CallEvidence, config: TimingConfig, silences: Sequence[Silence],
                   detector_version: str) -> list[Hit]:
    """Hits for dead air, overlong holds and a late first answer."""
    role = UNKNOWN if evidence.is_mono else AGENT
    hits = []
    for s in silences:
        if not s.is_hold:
            hits.append(_hit(evidence, SILENCE_RULE, "silence", role, s.start_s, s.end_s, detector_version,
                             f"{s.duration_s:.1f} s with nobody speaking (>= {config.silence_min_s:g} s)"))
        elif s.duration_s > config.hold_max_s:
            hits.append(_hit(evidence, HOLD_RULE, "hold", role, s.start_s, s.end_s, detector_version,
                             f"hold of {s.duration_s:.1f} s after '{s.announced_by}' (> {config.hold_max_s:g} s)",
                             matched_text=s.announced_by))
    delay = answer_delay_s(evidence)
    if delay is not None and delay > config.answer_delay_max_s:
        hits.append(_hit(evidence, ANSWER_RULE, "answer_delay", AGENT, 0.0, delay, detector_version,
                         f"agent's first words {delay:.1f} s after the call start (> {config.answer_delay_max_s:g} s)"))
    return hits


def _hit(evidence: CallEvidence, rule_id: str, category: str, role: str, start_s: float, end_s: float,
         detector_version: str, detail: str, matched_text: str = "") -> Hit:
    return Hit(call_id=evidence.call_id, rule_id=rule_id, detector_version=detector_version, category=category,
               severity="non_fatal", error_class="customer", role=role, start_s=start_s, end_s=end_s,
               match_type="timing", matched_text=matched_text, detail=detail)
