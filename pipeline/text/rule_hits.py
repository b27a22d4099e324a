"""From accepted lexicon matches to hits: phrase, count and absence hits of one rule.

Used by :func:`pipeline.text.matcher.detect_phrases` after the rules' context checks;
pure functions. A match lies in a turn (:mod:`pipeline.text.turns`); its time comes from
its characters and it is *suspect* when any utterance it was heard in is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.config import TextConfig
from pipeline.records import AGENT, CUSTOMER, MIXED, UNKNOWN, CallEvidence, Hit, Utterance
from pipeline.text.rules import Rule
from pipeline.text.turns import Turn

_TYPE_RANK = {"exact": 0, "regex": 1, "fuzzy": 2}


@dataclass(frozen=True)
class Found:
    """One accepted match: ``turn.norm.text[start:end]``, heard as ``text``."""

    turn_index: int
    turn: Turn
    start: int
    end: int
    text: str
    match_type: str

    @property
    def start_s(self) -> float:
        return self.turn.norm.char_start_s[self.start]

    @property
    def end_s(self) -> float:
        return self.turn.norm.char_end_s[self.end - 1]

    def suspect(self, utterances: Sequence[Utterance]) -> bool:
        """Whether any utterance the match was heard in is suspect."""
        return any(utterances[i].suspect for i in set(self.turn.char_utterance[self.start:self.end]))

    def context(self, width: int = 12) -> str:
        return self.turn.norm.text[max(0, self.start - width):self.end + width]


def dedupe(found: Sequence[Found]) -> list[Found]:
    """One match per overlapping stretch of one turn: longest first, exact before regex before fuzzy."""
    kept: list[Found] = []
    for f in sorted(found, key=lambda f: (f.turn_index, f.start, f.start - f.end, _TYPE_RANK[f.match_type])):
        if kept and kept[-1].turn_index == f.turn_index and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


def make_hit(evidence: CallEvidence, rule: Rule, version: str, role: str, start_s: float, end_s: float,
             match_type: str, confidence: float, text: str, context: str, suspect: bool,
             detail: str, text_config: TextConfig) -> Hit:
    """A hit of ``rule``; a suspect fatal hit is downgraded unless the config allows it."""
    severity = rule.severity
    if suspect and severity == "fatal" and not text_config.suspect_can_raise_fatal:
        severity = "non_fatal"
        detail = (detail + "; " if detail else "") + "fatal downgraded: suspect utterance"
    start_s, end_s = round(start_s, 3), round(max(start_s, end_s), 3)
    return Hit(call_id=evidence.call_id, rule_id=rule.id, detector_version=version, category=rule.category,
               severity=severity, error_class=rule.error_class, role=role, start_s=start_s,
               end_s=end_s, match_type=match_type, confidence=round(min(1.0, max(0.0, confidence)), 4),
               matched_text=text, context=context, suspect=suspect, detail=detail)


def hit_role(rule: Rule, turn_role: str) -> str:
    """The role a hit reports: ``unknown`` for a role-scoped rule on a mono call."""
    return UNKNOWN if turn_role == MIXED and rule.role != "any" else turn_role


def phrase_hit(evidence: CallEvidence, rule: Rule, version: str, utterances: Sequence[Utterance], f: Found,
               text_config: TextConfig, detail: str = "") -> Hit:
    """The hit of one phrase match (confidence: mean word probability, times ``fuzzy_confidence`` if fuzzy)."""
    probs = f.turn.norm.char_prob[f.start:f.end]
    conf = sum(probs) / len(probs) if probs else 1.0
    if f.match_type == "fuzzy":
        conf *= text_config.fuzzy_confidence
    if f.turn.role == MIXED and rule.role != "any":
        detail = "; ".join(x for x in ("mono: role-scoped rule on mixed channel", detail) if x)
    return make_hit(evidence, rule, version, hit_role(rule, f.turn.role), f.start_s, f.end_s, f.match_type, conf,
                    f.text, f.context(), f.suspect(utterances), detail, text_config)


def count_hit(evidence: CallEvidence, rule: Rule, version: str, utterances: Sequence[Utterance],
              found: Sequence[Found], text_config: TextConfig) -> list[Hit]:
    """One hit when the rule's phrases are used at least ``min_count`` times."""
    if len(found) < rule.min_count:
        return []
    first, last = found[0], found[-1]
    words = sorted({f.text for f in found})
    return [make_hit(evidence, rule, version, hit_role(rule, first.turn.role), first.start_s, last.end_s,
                     "count", 1.0, "/".join(words), f"{len(found)} uses",
                     any(f.suspect(utterances) for f in found),
                     f"count={len(found)} min_count={rule.min_count}", text_config)]


def first_trigger_s(rule: Rule, turns: Sequence[Turn], triggers: tuple[str, ...]) -> float | None:
    """Start of the first trigger phrase said by the other side (any side on mono calls), or None."""
    for turn in turns:
        if turn.role != MIXED and rule.role != "any" and turn.role == rule.role:
            continue
        positions = [p for p in (turn.norm.text.find(t) for t in triggers if t) if p >= 0]
        if positions:
            return turn.norm.char_start_s[min(positions)]
    return None


def absence_hit(evidence: CallEvidence, rule: Rule, version: str, turns: Sequence[Turn], found: Sequence[Found],
                text_config: TextConfig, trigger_s: float | None = None) -> list[Hit]:
    """A required rule's hit when none of its phrases was found in its window."""
    if found:
        return []
    roles = {t.role for t in turns if rule.role == "any" or t.role == MIXED or rule.role == t.role}
    if not roles:
        return []  # nobody to judge: no speech on the rule's side
    role = AGENT if rule.role == AGENT and AGENT in roles else CUSTOMER if rule.role == CUSTOMER else (
        UNKNOWN if MIXED in roles else rule.role)
    if rule.window == "first":
        start_s, end_s = 0.0, min(rule.window_s, evidence.duration_s)
    elif rule.window == "last":
        start_s, end_s = max(0.0, evidence.duration_s - rule.window_s), evidence.duration_s
    else:
        start_s, end_s = 0.0, evidence.duration_s
    detail = f"none of {len(rule.phrases) + len(rule.regexes)} phrases in window {rule.window}"
    if trigger_s is not None:
        start_s = max(start_s, trigger_s)
        detail += f" after trigger at {trigger_s:.2f} s"
    return [make_hit(evidence, rule, version, role, start_s, max(start_s, end_s), "absence", 1.0, "", "",
                     False, detail, text_config)]


__all__ = ["Found", "absence_hit", "count_hit", "dedupe", "first_trigger_s", "hit_role", "make_hit", "phrase_hit"]
