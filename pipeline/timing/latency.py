"""Response latency (响应速度), talk ratio, overlap and longest monologue.

*Response latency* is the gap from the end of a customer turn to the start of
the agent's reply: for each stretch of agent speech that starts after the
customer has stopped (no customer speech at that instant) and with customer
speech since the agent last spoke, the time since the customer's last speech
ended. An agent starting while the customer still speaks is an overlap (see
interruptions), not a latency. A reply later than ``response_latency_max_s``
raises ``timing.response_latency`` (DOMAIN.md §4a 快速理解及时回答:
``non_fatal``, ``customer``). A long latency is also a mutual silence, so a
silence hit may cover the same gap: the categories differ (pacing vs
responsiveness) and a scorecard may weigh them separately.

Talk features use the VAD segments only; all role-scoped ones are ``None``
on mono calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Hit
from pipeline.spans import Span, overlap_s, total_s
from pipeline.timing.columns import Feature
from pipeline.timing.intervals import activity, mean, percentile

LATENCY_RULE = "timing.response_latency"

LATENCY_FEATURES: tuple[Feature, ...] = (
    Feature("response_latency_count", "int", "Agent replies after a customer turn."),
    Feature("response_latency_mean_s", "float", "Mean gap from a customer turn's end to the agent's reply (s)."),
    Feature("response_latency_median_s", "float", "Median agent response latency (s)."),
    Feature("response_latency_p90_s", "float", "90th percentile of the agent's response latency (s)."),
    Feature("response_latency_max_s", "float", "Longest agent response latency (s)."),
)
TALK_FEATURES: tuple[Feature, ...] = (
    Feature("speech_total_s", "float", "Speech time of all roles (s)."),
    Feature("agent_talk_ratio", "float", "Agent speech time / (agent + customer speech time)."),
    Feature("overlap_total_s", "float", "Time both roles speak at once (s)."),
    Feature("longest_monologue_s", "float", "Longest stretch one role speaks without the other (s)."),
)


def response_latencies(evidence: CallEvidence) -> list[Span]:
    """``(customer_end_s, agent_start_s)`` for every agent reply (empty on mono calls)."""
    if evidence.is_mono:
        return []
    agent, customer = activity(evidence.segments, AGENT), activity(evidence.segments, CUSTOMER)
    replies = []
    previous_agent_end = float("-inf")
    for start_s, end_s in agent:
        speaking = any(a < start_s < b for a, b in customer)
        ended = [b for a, b in customer if previous_agent_end < b <= start_s]
        if ended and not speaking:
            replies.append((max(ended), start_s))
        previous_agent_end = end_s
    return replies


def latency_features(replies: Sequence[Span], evidence: CallEvidence) -> dict[str, float | int | None]:
    """``response_latency_count`` and ``_mean_s``/``_median_s``/``_p90_s``/``_max_s`` (NaN without replies)."""
    if evidence.is_mono:
        return {k: None for k in ("response_latency_count", "response_latency_mean_s", "response_latency_median_s",
                                  "response_latency_p90_s", "response_latency_max_s")}
    values = [b - a for a, b in replies]
    return {
        "response_latency_count": len(values),
        "response_latency_mean_s": mean(values),
        "response_latency_median_s": percentile(values, 50),
        "response_latency_p90_s": percentile(values, 90),
        "response_latency_max_s": percentile(values, 100),
    }


def detect_response_latency(evidence: CallEvidence, config: TimingConfig, replies: Sequence[Span],
                            detector_version: str) -> list[Hit]:
    """One hit per agent reply slower than ``response_latency_max_s``."""
    return [
        Hit(call_id=evidence.call_id, rule_id=LATENCY_RULE, detector_version=detector_version,
            category="response_latency", severity="non_fatal", error_class="customer", role=AGENT,
            start_s=a, end_s=b, match_type="timing",
            detail=f"agent replied {b - a:.1f} s after the customer stopped (> {config.response_latency_max_s:g} s)")
        for a, b in replies if b - a > config.response_latency_max_s
    ]


def monologues(evidence: CallEvidence, max_pause_s: float) -> list[tuple[str, float, float]]:
    """Stretches ``(role, start_s, end_s)`` where one role speaks and the other does not.

    A stretch ends when the other role starts or after a pause of ``max_pause_s``.
    """
    spans = sorted((a, b, role) for role in (AGENT, CUSTOMER) for a, b in activity(evidence.segments, role))
    runs: list[list] = []
    for a, b, role in spans:
        if runs and runs[-1][0] == role and a - runs[-1][2] < max_pause_s:
            runs[-1][2] = max(runs[-1][2], b)
        else:
            runs.append([role, a, b])
    return [(r, a, b) for r, a, b in runs]


def talk_features(evidence: CallEvidence, config: TimingConfig) -> dict[str, float | int | None]:
    """``speech_total_s`` (anyone), and on stereo calls ``agent_talk_ratio``
    (agent / both, NaN when nobody speaks), ``overlap_total_s`` and ``longest_monologue_s`` (pauses shorter
    than ``silence_min_s`` do not end a monologue)."""
    features: dict[str, float | int | None] = {"speech_total_s": total_s(activity(evidence.segments))}
    if evidence.is_mono:
        features.update(agent_talk_ratio=None, overlap_total_s=None, longest_monologue_s=None)
        return features
    agent, customer = activity(evidence.segments, AGENT), activity(evidence.segments, CUSTOMER)
    agent_s, customer_s = total_s(agent), total_s(customer)
    both = agent_s + customer_s
    features.update(
        agent_talk_ratio=agent_s / both if both > 0 else float("nan"),
        overlap_total_s=overlap_s(agent, customer),
        longest_monologue_s=max((b - a for _, a, b in monologues(evidence, config.silence_min_s)), default=0.0),
    )
    return features
