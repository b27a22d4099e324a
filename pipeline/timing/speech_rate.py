"""Speech rate (语速) per role in characters per minute, and sustained too-fast/too-slow speech.

An utterance's rate is its spoken characters (:func:`count_chars`) divided by
its *speech time*: the part of the utterance covered by that role's VAD
segments (so pauses inside a long utterance do not slow it down), or its
duration when no segments are known. Utterances shorter than
``speech_rate_min_utterance_s`` are too short to judge and are ignored, as
are suspect ones (hallucinated text would give nonsense rates).

DOMAIN.md §5 gives no number for 语速适当; the defaults (280 / 120 字/分钟)
are the usual contact-centre band and must be calibrated on real calls.
A hit needs ``speech_rate_min_sustained_s`` of consecutive judged agent speech
all outside the band, so one hurried sentence is not a fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.chinese import count_chars
from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, MIXED, CallEvidence, Hit, Utterance
from pipeline.spans import intersection_s
from pipeline.timing.columns import Feature, per_role
from pipeline.timing.intervals import activity, mean, percentile

FAST_RULE = "timing.speech_rate_fast"
SLOW_RULE = "timing.speech_rate_slow"
_RATE_ROLES = ("agent", "customer", "mixed")

FEATURES: tuple[Feature, ...] = (
    *per_role("{role}_rate_chars_per_min_mean", "float", "{Role} speech rate, mean over rated utterances (chars/min).",
              _RATE_ROLES),
    *per_role("{role}_rate_chars_per_min_p90", "float",
              "{Role} speech rate, 90th percentile over utterances (chars/min).", _RATE_ROLES),
    *per_role("{role}_rate_chars_per_min_overall", "float",
              "{Role} speech rate, characters / rated speech time (chars/min).", _RATE_ROLES),
    *per_role("{role}_rated_speech_s", "float", "{Role} speech time long enough to rate (s).", _RATE_ROLES),
)


@dataclass(frozen=True)
class UtteranceRate:
    """One judged utterance: its characters, speech time and rate."""

    utterance: Utterance
    chars: int
    speech_s: float

    @property
    def rate_chars_per_min(self) -> float:
        return 60.0 * self.chars / self.speech_s


def utterance_rates(evidence: CallEvidence, role: str, min_utterance_s: float) -> list[UtteranceRate]:
    """Rates of ``role``'s utterances long enough to judge, in time order."""
    segments = evidence.segments_of(role)
    spans = activity(segments)
    rates = []
    for u in sorted(evidence.utterances_of(role), key=lambda u: u.start_s):
        if u.suspect:
            continue
        speech_s = intersection_s(spans, u.start_s, u.end_s) if spans else u.duration_s
        chars = count_chars(u.text)
        if speech_s >= max(min_utterance_s, 1e-3) and chars > 0:
            rates.append(UtteranceRate(u, chars, speech_s))
    return rates


def speech_rate_features(evidence: CallEvidence, config: TimingConfig) -> dict[str, float | int | None]:
    """Per-role rate features (chars/min) for the roles of the call.

    Keys per role ``R`` (``agent``, ``customer``; ``mixed`` on mono calls):
    ``R_rate_chars_per_min_mean`` / ``_p90`` (over judged utterances),
    ``R_rate_chars_per_min_overall`` (all judged characters / all their speech
    time) and ``R_rated_speech_s``. Roles absent from the call get NaN.
    """
    features: dict[str, float | int | None] = {}
    roles = (MIXED,) if evidence.is_mono else (AGENT, CUSTOMER)
    for role in (AGENT, CUSTOMER, MIXED):
        rates = utterance_rates(evidence, role, config.speech_rate_min_utterance_s) if role in roles else []
        values = [r.rate_chars_per_min for r in rates]
        chars = sum(r.chars for r in rates)
        speech_s = sum(r.speech_s for r in rates)
        applicable = role in roles
        features[f"{role}_rate_chars_per_min_mean"] = mean(values)
        features[f"{role}_rate_chars_per_min_p90"] = percentile(values, 90)
        features[f"{role}_rate_chars_per_min_overall"] = 60.0 * chars / speech_s if speech_s > 0 else math.nan
        features[f"{role}_rated_speech_s"] = speech_s if applicable else math.nan
    return features


def detect_speech_rate(evidence: CallEvidence, config: TimingConfig, detector_version: str) -> list[Hit]:
    """Hits for sustained too-fast or too-slow *agent* speech (not on mono calls).

    Consecutive judged agent utterances outside the band form a run (short,
    unjudged utterances neither extend nor break it); a run with at least
    ``speech_rate_min_sustained_s`` of speech whose pooled rate is outside the
    band is one hit spanning the run. Severity ``non_fatal``, error class
    ``customer``: 语调语速适当 is a deduction item of 服务技能, not a 禁区 error.
    """
    if evidence.is_mono:
        return []
    rates = utterance_rates(evidence, AGENT, config.speech_rate_min_utterance_s)
    hits = []
    fast, slow = config.speech_rate_max_chars_per_min, config.speech_rate_min_chars_per_min
    checks = (
        (FAST_RULE, lambda rate: rate > fast, "above", fast),
        (SLOW_RULE, lambda rate: rate < slow, "below", slow),
    )
    for rule_id, outside, word, limit in checks:
        run: list[UtteranceRate] = []
        for r in [*rates, None]:
            if r is not None and outside(r.rate_chars_per_min):
                run.append(r)
                continue
            speech_s = sum(x.speech_s for x in run)
            pooled = 60.0 * sum(x.chars for x in run) / speech_s if speech_s > 0 else math.nan
            if run and speech_s >= config.speech_rate_min_sustained_s and outside(pooled):
                hits.append(Hit(
                    call_id=evidence.call_id, rule_id=rule_id, detector_version=detector_version,
                    category="speech_rate", severity="non_fatal", error_class="customer", role=AGENT,
                    start_s=run[0].utterance.start_s, end_s=run[-1].utterance.end_s, match_type="timing",
                    matched_text="".join(x.utterance.text for x in run)[:200],
                    detail=f"{pooled:.0f} chars/min over {speech_s:.1f} s of speech, {word} {limit:.0f}",
                ))
            run = []
    return hits
