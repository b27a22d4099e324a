"""Interruptions (打断): one side starts speaking while the other is speaking.

Role X interrupts role Y when a stretch of X's speech (union of X's VAD
segments) starts while Y is speaking, Y having started at least
``interruption_simultaneous_start_s`` earlier (two people starting together interrupt
nobody), and the two overlap for at least ``interruption_min_overlap_s``.
When the call has a transcript for X, the interrupting speech must also say at
least ``interruption_min_chars`` characters and must not be a backchannel
("嗯", "对", "好的"…, from the lexicon): listening noises are not interruptions.
Without a transcript those two checks cannot be made; the hit then carries
confidence ``interruption_unchecked_confidence`` and says so.

The agent cutting the customer off breaks the baseline rule 不得打断客户发言
(DOMAIN.md §4c, 服务耐心): ``non_fatal``, error class ``customer``. The
customer cutting the agent off is no agent fault but a frustration signal:
``info``, error class ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.chinese import matching_form
from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Hit
from pipeline.timing.columns import Feature
from pipeline.timing.intervals import activity, count_chars, text_between

AGENT_RULE = "timing.interruption_agent"
CUSTOMER_RULE = "timing.interruption_customer"

FEATURES: tuple[Feature, ...] = (
    Feature("interruptions_agent_count", "int", "Times the agent started speaking over the customer (QA fault)."),
    Feature("interruptions_customer_count", "int", "Times the customer started speaking over the agent."),
    Feature("interruptions_overlap_s", "float", "Overlap time of those interruptions (s)."),
)


@dataclass(frozen=True)
class Interruption:
    """``by`` started speaking at ``start_s`` over ``of``; both spoke until ``end_s``."""

    by: str
    of: str
    start_s: float
    end_s: float
    text: str
    checked: bool

    @property
    def overlap_s(self) -> float:
        return self.end_s - self.start_s


def find_interruptions(evidence: CallEvidence, config: TimingConfig,
                       backchannels: Sequence[str]) -> list[Interruption]:
    """Every interruption of the call in time order (none on mono calls)."""
    if evidence.is_mono:
        return []
    quiet = {matching_form(b) for b in backchannels} - {""}
    found = []
    for by, of in ((AGENT, CUSTOMER), (CUSTOMER, AGENT)):
        other = activity(evidence.segments, of)
        has_text = any(u.role == by for u in evidence.utterances)
        for start_s, end_s in activity(evidence.segments, by):
            earliest = start_s - config.interruption_simultaneous_start_s
            over = next(((a, b) for a, b in other if a <= earliest and b > start_s), None)
            if over is None or min(end_s, over[1]) - start_s < config.interruption_min_overlap_s:
                continue
            text = text_between(evidence.utterances, by, start_s, end_s) if has_text else ""
            if has_text and (matching_form(text) in quiet or count_chars(text) < config.interruption_min_chars):
                continue
            found.append(Interruption(by, of, start_s, min(end_s, over[1]), text, has_text))
    return sorted(found, key=lambda i: i.start_s)


def interruption_features(found: Sequence[Interruption], evidence: CallEvidence) -> dict[str, float | int | None]:
    """``interruptions_agent_count`` (agent over customer), ``interruptions_customer_count``
    and ``interruptions_overlap_s`` (summed overlap); ``None`` on mono calls."""
    if evidence.is_mono:
        return {"interruptions_agent_count": None, "interruptions_customer_count": None,
                "interruptions_overlap_s": None}
    return {
        "interruptions_agent_count": sum(1 for i in found if i.by == AGENT),
        "interruptions_customer_count": sum(1 for i in found if i.by == CUSTOMER),
        "interruptions_overlap_s": float(sum(i.overlap_s for i in found)),
    }


def detect_interruptions(evidence: CallEvidence, config: TimingConfig, found: Sequence[Interruption],
                         detector_version: str) -> list[Hit]:
    """One hit per interruption (see the module doc for severities)."""
    hits = []
    for i in found:
        agent = i.by == AGENT
        hits.append(Hit(
            call_id=evidence.call_id, rule_id=AGENT_RULE if agent else CUSTOMER_RULE,
            detector_version=detector_version, category="interruption",
            severity="non_fatal" if agent else "info", error_class="customer" if agent else "none",
            role=i.by, start_s=i.start_s, end_s=i.end_s, match_type="timing",
            confidence=1.0 if i.checked else config.interruption_unchecked_confidence, matched_text=i.text[:200],
            detail=f"{i.by} started over {i.of}, {i.overlap_s:.1f} s overlap"
                   + ("" if i.checked else " (no transcript: characters and backchannels not checked)"),
        ))
    return hits
