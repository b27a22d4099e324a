"""Plain data handed from one pipeline stage to the next.

Every time is in seconds from the start of the call (the *call clock*), so a
reviewer can seek the audio to any hit without conversion. Units are part of
the field names. Invariants are checked in ``__post_init__`` so a bad value
fails where it is made, not three stages later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

#: Every channel is resampled to this rate at ingest; all later stages assume it.
SAMPLE_RATE_HZ = 16_000

#: Speaker roles. ``mixed`` is a mono call's only channel; ``unknown`` is the
#: role given to hits found on a mixed channel by role-scoped rules.
AGENT = "agent"
CUSTOMER = "customer"
MIXED = "mixed"
UNKNOWN = "unknown"
ROLES = (AGENT, CUSTOMER, MIXED)


def _check_span(start_s: float, end_s: float, what: str) -> None:
    if not (np.isfinite(start_s) and np.isfinite(end_s)):
        raise ValueError(f"{what}: times must be finite, got {start_s}..{end_s}")
    if start_s < 0 or end_s < start_s:
        raise ValueError(f"{what}: need 0 <= start_s <= end_s, got {start_s}..{end_s}")


def stable_id(*parts: object, length: int = 16) -> str:
    """Return a short hex id that depends only on ``parts``.

    Used for hit ids and chunk-independent keys: the same inputs give the same
    id on every machine and every run, so a killed and resumed batch produces
    identical rows.
    """
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Channel:
    """One speaker's audio, float32 mono at :data:`SAMPLE_RATE_HZ`."""

    role: str
    samples: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {ROLES}")
        if self.samples.dtype != np.float32 or self.samples.ndim != 1:
            raise ValueError("channel samples must be a 1-D float32 array")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Call:
    """A decoded recording: one channel per role plus facts about the source."""

    call_id: str
    path: str
    audio_sha256: str
    channels: tuple[Channel, ...]
    source_sample_rate_hz: int
    source_channels: int
    codec: str
    container: str
    duration_s: float
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError(f"{self.path}: a call needs at least one channel")
        roles = [c.role for c in self.channels]
        if len(set(roles)) != len(roles):
            raise ValueError(f"{self.path}: duplicate channel roles {roles}")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def is_mono(self) -> bool:
        return len(self.channels) == 1 and self.channels[0].role == MIXED

    def channel(self, role: str) -> Channel:
        for channel in self.channels:
            if channel.role == role:
                return channel
        raise KeyError(role)


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech on one channel found by voice activity detection."""

    role: str
    start_s: float
    end_s: float
    loudness_dbfs: float

    def __post_init__(self) -> None:
        _check_span(self.start_s, self.end_s, "SpeechSegment")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Word:
    """One recognised word (or character group) with its timing."""

    text: str
    start_s: float
    end_s: float
    probability: float

    def __post_init__(self) -> None:
        _check_span(self.start_s, self.end_s, f"Word {self.text!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"Word {self.text!r}: probability {self.probability} outside [0, 1]")


@dataclass(frozen=True)
class Utterance:
    """One recognised stretch of speech by one role, on the call clock."""

    role: str
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    suspect: bool = False
    suspect_reason: str = ""

    def __post_init__(self) -> None:
        _check_span(self.start_s, self.end_s, "Utterance")
        if self.suspect and not self.suspect_reason:
            raise ValueError("a suspect utterance needs a suspect_reason")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


#: Severities and error classes a hit can carry (DOMAIN.md §3).
SEVERITIES = ("fatal", "non_fatal", "info")
ERROR_CLASSES = ("customer", "business", "compliance", "none")
MATCH_TYPES = ("exact", "fuzzy", "regex", "absence", "count", "model", "timing", "acoustic", "forced")
#: What a QA lead does with a call, worst first: only "pass" counts as passed.
OUTCOMES = ("fail", "needs_review", "needs_listening", "pass")
#: Outcome reasons of a call whose every red-line hit is unconfirmed: only the text model heard it,
#: or only the sound check (``pipeline.scoring.scorecard.call_outcome``).
UNCONFIRMED_REDLINE_REASONS = ("redline_model_only", "redline_unconfirmed")


def unconfirmed(match_type: str | None, severity: str | None) -> bool:
    """Whether a hit is evidence no rule confirmed on the text: the text model's, or the sound check's
    at severity info (its audio fit the phrase, but not clearly better than what Whisper wrote)."""
    return match_type == "model" or (match_type == "forced" and severity == "info")


def redline_label(redline: bool | None, reasons: Sequence[str] | None) -> str:
    """How a call's red-line flag is shown: "red line", "red line, unconfirmed" (no rule heard it: a
    person confirms or rejects it) or "" (none)."""
    if not redline:
        return ""
    return "red line, unconfirmed" if set(reasons or ()) & set(UNCONFIRMED_REDLINE_REASONS) else "red line"


@dataclass(frozen=True)
class Hit:
    """One finding on one call: a rule or detector fired, with its evidence.

    ``hit_id`` is derived from the call, the rule, its version and the times,
    so re-running the same rules on the same transcript gives the same ids
    (reviews stay attached to their hits).
    """

    call_id: str
    rule_id: str
    detector_version: str
    category: str
    severity: str
    error_class: str
    role: str
    start_s: float
    end_s: float
    match_type: str
    confidence: float = 1.0
    matched_text: str = ""
    context: str = ""
    suspect: bool = False
    detail: str = ""

    def __post_init__(self) -> None:
        _check_span(self.start_s, self.end_s, f"Hit {self.rule_id}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Hit {self.rule_id}: severity {self.severity!r} not in {SEVERITIES}")
        if self.error_class not in ERROR_CLASSES:
            raise ValueError(f"Hit {self.rule_id}: error_class {self.error_class!r} not in {ERROR_CLASSES}")
        if self.match_type not in MATCH_TYPES:
            raise ValueError(f"Hit {self.rule_id}: match_type {self.match_type!r} not in {MATCH_TYPES}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Hit {self.rule_id}: confidence {self.confidence} outside [0, 1]")

    @property
    def hit_id(self) -> str:
        return stable_id(
            self.call_id, self.rule_id, self.detector_version, self.role,
            f"{self.start_s:.3f}", f"{self.end_s:.3f}", self.match_type, self.matched_text,
        )


@dataclass(frozen=True)
class CallEvidence:
    """Everything the detectors may look at for one call, without the audio.

    It can be rebuilt from the store (segments and utterances tables), which
    is what lets ``callqa rescore`` re-run rules without transcribing again.
    """

    call_id: str
    duration_s: float
    roles: tuple[str, ...]
    segments: tuple[SpeechSegment, ...] = ()
    utterances: tuple[Utterance, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def is_mono(self) -> bool:
        return self.roles == (MIXED,)

    def utterances_of(self, role: str) -> tuple[Utterance, ...]:
        return tuple(u for u in self.utterances if u.role == role)

    def segments_of(self, role: str) -> tuple[SpeechSegment, ...]:
        return tuple(s for s in self.segments if s.role == role)


#: Hit categories shared by rule sets, detectors, the scorecard and reports.
#: Keys are stable identifiers; values are the names QA teams use.
CATEGORIES: Mapping[str, str] = MappingProxyType({
    # words (rule sets in lexicons/)
    "forbidden_phrase": "服务禁语",
    "redline_abuse": "红线/辱骂",
    "redline_counter_question": "红线/反问反驳",
    "redline_coldness": "红线/冷漠不耐烦",
    "arguing": "争辩",
    "contradicting": "反驳用户",
    "verbal_tic": "口头禅",
    "politeness": "礼貌用语",
    "thanks": "致谢语",
    "apology": "致歉语",
    "opening": "开头语",
    "closing": "结束语",
    "rash_promise": "乱承诺",
    "shirking": "推诿",
    "pii": "个人信息",
    # timing and acoustics (pipeline/timing/)
    "speech_rate": "语速",
    "silence": "静音/冷场",
    "hold": "保持等待",
    "answer_delay": "接起应答",
    "interruption": "打断",
    "response_latency": "响应速度",
    "raised_voice": "提高分贝",
    "hangup": "挂机",
})

#: A call with any hit in these categories is a red-line call (DOMAIN.md §3).
REDLINE_CATEGORIES = frozenset({"redline_abuse", "redline_counter_question", "redline_coldness"})
