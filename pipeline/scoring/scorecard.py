"""Score a call against the QA scorecard (``config/scorecard.toml``).

A scorecard has weighted sections (服务礼仪, 服务技能, 服务意识, 综合评价), each
scored out of 100, and items. An item fails when hits in its categories (or
matching its rule-id patterns) are found, or when a feature of the call's
feature row is outside its ``min``/``max``. A failed item deducts
``deduction`` per hit (capped at ``max_deduction``) from its section; a failed
``fatal`` item fails the call outright. Items may belong to a COPC
critical-error class (customer / business / compliance), which then fails.

:func:`score_call` is pure, so stored feature rows and hits can be re-scored
with another scorecard version without touching audio.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.paths import read_text_file, resolve
from pipeline.records import CATEGORIES, OUTCOMES, REDLINE_CATEGORIES, Hit, unconfirmed

COPC_CLASSES = ("customer", "business", "compliance")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Section(_Frozen):
    """A weighted part of the scorecard, scored out of 100."""

    name: str
    weight: float = Field(gt=0)


class Item(_Frozen):
    """One checkable item; see the module docstring for when it fails."""

    id: str
    name: str
    section: str
    categories: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    severities: tuple[str, ...] = ("fatal", "non_fatal")
    feature: str = ""
    min: float | None = None
    max: float | None = None
    deduction: float = Field(default=0.0, ge=0)
    max_deduction: float | None = Field(default=None, ge=0)
    fatal: bool = False
    copc: str = ""

    @model_validator(mode="after")
    def _check(self) -> Item:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"item {self.id}: unknown categories {unknown}")
        if self.copc and self.copc not in COPC_CLASSES:
            raise ValueError(f"item {self.id}: copc must be one of {COPC_CLASSES}, got {self.copc!r}")
        if not (self.categories or self.rule_ids or self.feature):
            raise ValueError(f"item {self.id}: needs categories, rule_ids or feature")
        if self.feature and self.min is None and self.max is None:
            raise ValueError(f"item {self.id}: a feature item needs min or max")
        return self


class OutcomeRules(_Frozen):
    """When a call needs a person instead of a verdict (the scorecard's ``[outcome]`` table)."""

    model_only_redline: Literal["needs_review", "fail"] = "needs_review"
    no_speech: Literal["needs_listening", "fail"] = "needs_listening"
    min_transcript_coverage: float = Field(default=0.8, ge=0, le=1)


class Scorecard(_Frozen):
    """A validated, immutable scorecard."""

    version: str
    name: str = ""
    pass_score: float = Field(ge=0, le=100)
    fatal_score: float = Field(default=0.0, ge=0, le=100)
    any_fatal_hit_fails: bool = True
    count_suspect_hits: bool = False
    grades: dict[str, float]
    sections: dict[str, Section]
    items: tuple[Item, ...]
    outcome: OutcomeRules = OutcomeRules()

    @model_validator(mode="after")
    def _check(self) -> Scorecard:
        for item in self.items:
            if item.section not in self.sections:
                raise ValueError(f"item {item.id}: unknown section {item.section!r}")
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        if not self.grades or min(self.grades.values()) > 0:
            raise ValueError("grades need one grade with a lowest score of 0")
        return self

    def grade_for(self, score: float) -> str:
        """The best grade whose lowest score is <= ``score``."""
        for grade, lowest in sorted(self.grades.items(), key=lambda kv: -kv[1]):
            if score >= lowest:
                return grade
        return min(self.grades, key=lambda g: self.grades[g])


@dataclass(frozen=True)
class FailedItem:
    """A scorecard item that failed, with the hits that are its evidence."""

    item_id: str
    name: str
    section: str
    deduction: float
    fatal: bool
    hit_ids: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class ScoreResult:
    """A call's scorecard result.

    ``outcome`` is what a QA lead does with the call: ``fail``, ``needs_review``
    (e.g. a red line only the text model saw), ``needs_listening`` (no speech,
    or too little of it transcribed) or ``pass``. ``passed`` is true only for
    ``pass``. A call without speech has no score or grade: there was nothing to judge.
    """

    scorecard_version: str
    score: float | None
    grade: str | None
    passed: bool
    fatal: bool
    redline: bool
    failed_items: tuple[FailedItem, ...]
    section_scores: Mapping[str, float] = field(default_factory=dict)
    copc: Mapping[str, bool] = field(default_factory=dict)
    outcome: str = "pass"
    outcome_reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 100.0:
            raise ValueError(f"score {self.score} outside 0..100")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} not in {OUTCOMES}")
        if self.passed != (self.outcome == "pass"):
            raise ValueError("passed must be true exactly when the outcome is pass")
        object.__setattr__(self, "section_scores", MappingProxyType(dict(self.section_scores)))
        object.__setattr__(self, "copc", MappingProxyType(dict(self.copc)))


def parse_scorecard(text: str, source: str = "scorecard.toml") -> Scorecard:
    """Parse and validate scorecard TOML text.

    Raises:
        ConfigError: not TOML, or a missing/unknown/wrong key (named in the message).
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    try:
        return Scorecard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(source, f"{where + ': ' if where else ''}{first['msg']}") from None


def load_scorecard(name: str | Path = "callqa:config/scorecard.toml") -> Scorecard:
    """Load a scorecard: ``"callqa:config/scorecard.toml"`` (the shipped one) or a file path.

    Args:
        name: config ``[scoring] scorecard``.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = resolve(str(name))
    try:
        text = read_text_file(path)
    except FileNotFoundError:
        raise ConfigError(str(name), "scorecard file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(name), f"cannot read the scorecard: {exc}") from None
    return parse_scorecard(text, str(name))


def _matches(item: Item, hit: Hit) -> bool:
    if hit.severity not in item.severities:
        return False
    return hit.category in item.categories or any(fnmatch.fnmatchcase(hit.rule_id, p) for p in item.rule_ids)


def _feature_fails(item: Item, features_row: Mapping[str, Any]) -> str:
    value = features_row.get(item.feature)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # not measured: no evidence either way
    if item.min is not None and value < item.min:
        return f"{item.feature}={value:.3g} < {item.min:g}"
    if item.max is not None and value > item.max:
        return f"{item.feature}={value:.3g} > {item.max:g}"
    return ""


def score_call(hits: Sequence[Hit], features_row: Mapping[str, Any], scorecard: Scorecard) -> ScoreResult:
    """Score one call.

    Args:
        hits: the call's hits (``Hit.hit_id`` becomes the evidence of failed items).
        features_row: the call's feature row (``pipeline.scoring.features``) for
            feature items; may be empty when no item uses features.
        scorecard: from :func:`load_scorecard`.

    Returns:
        Score 0-100 (``fatal_score`` when a fatal item failed), grade,
        pass/fail, failed items with hit ids, per-section scores, COPC class
        pass/fail and the red-line flag.
    """
    counted = [h for h in hits if scorecard.count_suspect_hits or not h.suspect]
    failed: list[FailedItem] = []
    for item in scorecard.items:
        evidence = [h for h in counted if _matches(item, h)]
        reason = _feature_fails(item, features_row) if item.feature else ""
        if not evidence and not reason:
            continue
        units = max(len(evidence), 1)
        deduction = item.deduction * units
        if item.max_deduction is not None:
            deduction = min(deduction, item.max_deduction)
        failed.append(FailedItem(item.id, item.name, item.section, deduction, item.fatal,
                                 tuple(sorted({h.hit_id for h in evidence})),
                                 reason or f"{len(evidence)} hit(s)"))
    if scorecard.any_fatal_hit_fails:
        listed = {hid for f in failed if f.fatal for hid in f.hit_ids}
        stray = [h for h in counted if h.severity == "fatal" and h.hit_id not in listed]
        for rule_id in sorted({h.rule_id for h in stray}):
            ids = tuple(sorted(h.hit_id for h in stray if h.rule_id == rule_id))
            failed.append(FailedItem(f"fatal_hit:{rule_id}", f"fatal hit of rule {rule_id}", "", 0.0, True, ids,
                                     "a hit with severity fatal"))
    section_scores = {}
    for key in scorecard.sections:
        lost = sum(f.deduction for f in failed if f.section == key)
        section_scores[key] = max(0.0, 100.0 - lost)
    total_weight = sum(s.weight for s in scorecard.sections.values())
    score = sum(section_scores[k] * s.weight for k, s in scorecard.sections.items()) / total_weight
    fatal = any(f.fatal for f in failed)
    if fatal:
        score = scorecard.fatal_score
    score = round(min(100.0, max(0.0, score)), 2)
    items_by_id = {item.id: item for item in scorecard.items}
    failed_classes = {items_by_id[f.item_id].copc for f in failed if f.item_id in items_by_id}
    failed_classes |= {h.error_class for h in counted if h.severity == "fatal"}
    outcome, reasons = call_outcome(counted, features_row, scorecard,
                                    scorecard_failed=fatal or score < scorecard.pass_score)
    no_speech = "no_speech" in reasons
    return ScoreResult(
        scorecard_version=scorecard.version, score=None if no_speech else score,
        grade=None if no_speech else scorecard.grade_for(score), passed=outcome == "pass", fatal=fatal,
        redline=any(h.category in REDLINE_CATEGORIES for h in counted),
        failed_items=tuple(failed), section_scores=section_scores,
        copc={c: c not in failed_classes for c in COPC_CLASSES}, outcome=outcome, outcome_reasons=reasons,
    )


def _unconfirmed(hit: Hit) -> bool:
    """A hit no rule confirmed on the text: the model's, or the sound check's at severity info."""
    return unconfirmed(hit.match_type, hit.severity)


def call_outcome(hits: Sequence[Hit], features_row: Mapping[str, Any], scorecard: Scorecard,
                 scorecard_failed: bool) -> tuple[str, tuple[str, ...]]:
    """The call's outcome and its reasons, worst first (see :class:`ScoreResult`).

    Args:
        hits: the hits the scorecard counted (suspect ones already left out).
        features_row: the call's features (``speech_total_s``, and
            ``agent_coverage`` / ``customer_coverage`` where measured).
        scorecard: its ``[outcome]`` rules.
        scorecard_failed: a fatal item failed or the score is below the pass score.
    """
    rules = scorecard.outcome
    found: list[tuple[str, str]] = []
    if scorecard_failed:
        found.append(("fail", "scorecard_fail"))
    redline = [h for h in hits if h.category in REDLINE_CATEGORIES]
    if redline and all(_unconfirmed(h) for h in redline):
        # only the text model, or only the sound check short of its own confirmation, heard a red line
        model_only = all(h.match_type == "model" for h in redline)
        found.append((rules.model_only_redline, "redline_model_only" if model_only else "redline_unconfirmed"))
    # The model's threshold is on P(not clean); its category is a guess between hostile classes that
    # overlap ("你问我，我问谁去" is a counter-question and shirking). A hostile turn it heard in a
    # category no rule hit confirms goes to review too, not a pass on a deduction; so does a phrase
    # only the sound check read into the audio ("我没有这个权限" written "…前线"), in any category.
    confirmed = {h.category for h in hits if not _unconfirmed(h)}
    heard_by: dict[str, set[str]] = {}  # category -> match types of its unconfirmed hits
    for h in hits:
        if _unconfirmed(h) and h.category not in REDLINE_CATEGORIES and h.category not in confirmed:
            heard_by.setdefault(h.category, set()).add(h.match_type)
    for category, how in sorted(heard_by.items()):
        found.append(("needs_review", f"{'model_only' if how == {'model'} else 'unconfirmed'}:{category}"))
    speech_s = features_row.get("speech_total_s")
    if speech_s is not None and not speech_s > 0:
        found.append((rules.no_speech, "no_speech"))
    for role in ("agent", "customer"):
        coverage = features_row.get(f"{role}_coverage")
        if coverage is not None and coverage < rules.min_transcript_coverage:
            found.append(("needs_listening", f"low_coverage:{role}"))
    if not found:
        return "pass", ()
    found.sort(key=lambda f: OUTCOMES.index(f[0]))
    return found[0][0], tuple(reason for _, reason in found)


__all__ = ["COPC_CLASSES", "FailedItem", "Item", "OutcomeRules", "ScoreResult", "Scorecard", "Section",
           "call_outcome", "load_scorecard", "parse_scorecard", "score_call"]
