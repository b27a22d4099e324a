"""Who hung up first (挂机): from call metadata, else estimated from the end of the call.

Rule (DOMAIN.md §4b, §5): the customer hangs up first (让用户先挂机); the agent
must never hang up while the customer is still speaking (八大要点
禁止挂用户电话).

* ``hangup_party`` in the metadata (``agent``/``customer``, also ``坐席``/``客户``)
  is taken as fact. Agent first raises ``timing.agent_hung_up_first``:
  ``fatal`` when the customer was still speaking (customer speech ends less
  than ``hangup_trailing_silence_s`` before the end of the recording),
  otherwise ``non_fatal``; error class ``customer``.
* Without it (stereo only) the party is *estimated*: the recording stopping
  less than ``hangup_trailing_silence_s`` after the customer's last words,
  with the customer speaking last, reads as the agent cutting the customer
  off; the agent speaking last followed by a longer silence reads as the
  customer hanging up after the closing; anything else (including a call where
  only one side spoke) is ``unknown``. An
  estimated agent hang-up raises a ``non_fatal`` hit with confidence ``hangup_estimated_confidence``
  marked *estimated*: a guess never fails a call on its own.
"""

from __future__ import annotations

import math

from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Hit
from pipeline.timing.columns import Feature

HANGUP_RULE = "timing.agent_hung_up_first"

FEATURES: tuple[Feature, ...] = (
    Feature("hangup_party", "category", "Who hung up first: agent, customer or unknown (metadata, else estimated)."),
    Feature("hangup_estimated", "int", "1 if hangup_party was estimated from the audio, 0 if from metadata."),
    Feature("trailing_silence_s", "float", "Silence after the last speech until the call ends (s)."),
)
_ALIASES = {"agent": AGENT, "a": AGENT, "坐席": AGENT, "客服": AGENT,
            "customer": CUSTOMER, "c": CUSTOMER, "客户": CUSTOMER, "用户": CUSTOMER}


def _last_end(evidence: CallEvidence, role: str | None) -> float:
    ends = [s.end_s for s in evidence.segments if role is None or s.role == role]
    return max(ends) if ends else math.nan


def hangup_party(evidence: CallEvidence, config: TimingConfig) -> tuple[str, bool]:
    """``(party, estimated)``: ``agent``, ``customer`` or ``unknown``."""
    given = _ALIASES.get(str(evidence.metadata.get("hangup_party", "")).strip().lower())
    if given is not None:
        return given, False
    if evidence.is_mono:
        return "unknown", True
    agent_end, customer_end = _last_end(evidence, AGENT), _last_end(evidence, CUSTOMER)
    last = _last_end(evidence, None)
    if math.isnan(agent_end) or math.isnan(customer_end):
        return "unknown", True  # a one-sided call says nothing about who ended it
    trailing_s = evidence.duration_s - last
    customer_last = customer_end > agent_end
    if customer_last and trailing_s < config.hangup_trailing_silence_s:
        return AGENT, True
    if not customer_last and trailing_s >= config.hangup_trailing_silence_s:
        return CUSTOMER, True
    return "unknown", True


def hangup_features(evidence: CallEvidence, config: TimingConfig) -> dict[str, float | int | str | None]:
    """``hangup_party`` (str), ``hangup_estimated`` (0/1) and ``trailing_silence_s``."""
    party, estimated = hangup_party(evidence, config)
    last = _last_end(evidence, None)
    return {"hangup_party": party, "hangup_estimated": int(estimated),
            "trailing_silence_s": max(0.0, evidence.duration_s - last) if not math.isnan(last) else math.nan}


def detect_hangup(evidence: CallEvidence, config: TimingConfig, detector_version: str) -> list[Hit]:
    """``timing.agent_hung_up_first`` when the agent ended the call (see module doc)."""
    party, estimated = hangup_party(evidence, config)
    if party != AGENT:
        return []
    customer_end = _last_end(evidence, CUSTOMER)
    still_speaking = (not math.isnan(customer_end)
                      and evidence.duration_s - customer_end < config.hangup_trailing_silence_s)
    end_s = max(evidence.duration_s, 0.0)
    last = _last_end(evidence, None)
    start_s = min(last, end_s) if not math.isnan(last) else end_s
    severity = "fatal" if still_speaking and not estimated else "non_fatal"
    detail = ("estimated from the end of the call: " if estimated else "from metadata: ") + (
        "agent hung up while the customer was still speaking" if still_speaking else "agent hung up first")
    return [Hit(call_id=evidence.call_id, rule_id=HANGUP_RULE, detector_version=detector_version, category="hangup",
                severity=severity, error_class="customer", role=AGENT, start_s=start_s, end_s=end_s,
                match_type="timing", confidence=config.hangup_estimated_confidence if estimated else 1.0,
                detail=detail)]
