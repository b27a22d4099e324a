"""How far reviewers agree with each other and with the machine, and how precise each rule is.

- Cohen's κ for every pair of reviewers on the calls (pass/fail) or hits
  (confirmed/rejected/unsure) both judged;
- κ between each reviewer and the scorecard (its own verdict) and the promoted
  classifier (``classifier_decision``: pass/fail, or a grade compared with the
  reviewer's grade);
- Krippendorff's α (nominal) where more than two reviewers judged the same
  calls or hits;
- per-rule precision (confirmed share of reviewed hits) with Wilson 95 %
  intervals.

Verdicts come from :mod:`pipeline.review.verdicts` (current verdict per
reviewer; for precision one chosen verdict per hit, a lead's first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import krippendorff
import numpy as np
import pyarrow as pa

from pipeline.reports.inputs import ReportInputs, sql

#: Label the scorecard's ``passed`` maps to, comparable with call verdicts.
PASS, FAIL = "pass", "fail"


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's κ of two raters' nominal labels on the same items (NaN when chance agreement is 1).

    Args:
        first: rater one's label per item.
        second: rater two's label per item, same order.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(first) != len(second) or not first:
        raise ValueError(f"need two equally long, non-empty label lists, got {len(first)} and {len(second)}")
    _, codes = np.unique(np.asarray(list(first) + list(second), dtype=object).astype(str), return_inverse=True)
    a, b = codes[: len(first)], codes[len(first):]
    k = int(codes.max()) + 1
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (a, b), 1.0)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0)) / (n * n)
    if expected >= 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def wilson_interval(successes: np.ndarray | Sequence[int], trials: np.ndarray | Sequence[int],
                    confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions, vectorised (NaN where trials is 0)."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return np.where(n > 0, centre - half, np.nan), np.where(n > 0, centre + half, np.nan)


def krippendorff_alpha(ratings: pa.Table, unit: str, rater: str = "reviewer", value: str = "verdict") -> float:
    """Krippendorff's α (nominal) over every unit rated at least twice.

    Args:
        ratings: one row per (rater, unit) with a label.
        unit: the column naming the unit (call_id or hit_id).
        rater: the rater column.
        value: the label column.

    Returns:
        α, or NaN when fewer than two units are rated twice or all labels are equal.
    """
    rows = ratings.select([unit, rater, value]).to_pylist()
    units = sorted({r[unit] for r in rows})
    raters = sorted({r[rater] for r in rows})
    labels = sorted({r[value] for r in rows})
    if len(units) < 2 or len(raters) < 2 or len(labels) < 2:
        return float("nan")
    matrix = np.full((len(raters), len(units)), np.nan)
    unit_index = {u: i for i, u in enumerate(units)}
    rater_index = {r: i for i, r in enumerate(raters)}
    label_index = {v: i for i, v in enumerate(labels)}
    for r in rows:
        matrix[rater_index[r[rater]], unit_index[r[unit]]] = label_index[r[value]]
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if pairable.sum() < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=matrix[:, pairable], level_of_measurement="nominal"))


_PAIR_SCHEMA = pa.schema([("kind", pa.string()), ("reviewer_a", pa.string()), ("reviewer_b", pa.string()),
                          ("items", pa.int64()), ("agreement", pa.float64()), ("kappa", pa.float64())])


def _kappa_row(kind: str, a: str, b: str, first: list[str], second: list[str]) -> dict[str, object]:
    agree = sum(x == y for x, y in zip(first, second, strict=True)) / len(first)
    return {"kind": kind, "reviewer_a": a, "reviewer_b": b, "items": len(first), "agreement": agree,
            "kappa": cohen_kappa(first, second)}


def reviewer_pairs(verdicts: pa.Table, unit: str, kind: str) -> pa.Table:
    """Cohen's κ for every pair of reviewers who judged the same units.

    Args:
        verdicts: current verdicts, one row per (reviewer, unit), with ``verdict``.
        unit: "call_id" or "hit_id".
        kind: label for the ``kind`` column ("call" or "hit").

    Returns:
        kind, reviewer_a, reviewer_b, items (units both judged), agreement
        (observed share), kappa; pairs in name order.
    """
    pairs = sql(f"""
        SELECT a.reviewer AS ra, b.reviewer AS rb, list(a.verdict ORDER BY a.{unit}) AS va,
               list(b.verdict ORDER BY a.{unit}) AS vb
        FROM verdicts a JOIN verdicts b ON a.{unit} = b.{unit} AND a.reviewer < b.reviewer
        GROUP BY ALL ORDER BY ra, rb""", verdicts=verdicts).to_pylist() if verdicts.num_rows else []
    rows = [_kappa_row(kind, p["ra"], p["rb"], p["va"], p["vb"]) for p in pairs]
    return pa.Table.from_pylist(rows, schema=_PAIR_SCHEMA)


def scorecard_verdict(alias: str, has_outcome: bool = True) -> str:
    """SQL for the scorecard's own verdict of a feature row ``alias``: 'fail' when the outcome's reasons
    hold ``scorecard_fail``, else 'pass'; NULL without a score (no speech).

    ``passed`` is true only when the outcome is pass, so a call left to a person (needs review or
    listening) has it false although the scorecard did not fail it. Rows written before the outcome
    existed (``has_outcome`` false, or a NULL outcome) use ``passed``.
    """
    by_passed = f"CASE WHEN {alias}.passed THEN 'pass' WHEN NOT {alias}.passed THEN 'fail' END"
    if not has_outcome:
        return by_passed
    return (f"CASE WHEN {alias}.outcome IS NULL THEN {by_passed} WHEN {alias}.score IS NULL THEN NULL "
            f"WHEN list_contains({alias}.outcome_reasons, 'scorecard_fail') THEN 'fail' ELSE 'pass' END")


def reviewers_vs_system(call_verdicts: pa.Table, features: pa.Table) -> pa.Table:
    """κ between each reviewer's call verdicts and the scorecard / the classifier on the same calls.

    The scorecard's label is its own verdict (:func:`scorecard_verdict`), not ``passed``:
    a call the pipeline left to a person is not one the scorecard failed. The classifier's
    ``classifier_decision`` is compared with the verdict when it is pass/fail,
    otherwise (an ordinal model predicting grades) with the reviewer's grade.

    Returns:
        kind ('scorecard' or 'classifier'), reviewer_a (the reviewer),
        reviewer_b (the system), items, agreement, kappa.
    """
    if not call_verdicts.num_rows:
        return _PAIR_SCHEMA.empty_table()
    joined = sql(f"""
        SELECT v.reviewer, v.verdict, nullif(v.grade, '') AS grade,
               {scorecard_verdict("f", "outcome_reasons" in features.column_names)} AS scorecard,
               f.classifier_decision AS decision
        FROM call_verdicts v JOIN features f USING (call_id) ORDER BY v.reviewer, v.call_id""",
                 call_verdicts=call_verdicts, features=features).to_pylist()
    rows: list[dict[str, object]] = []
    for reviewer in sorted({r["reviewer"] for r in joined}):
        mine = [r for r in joined if r["reviewer"] == reviewer]
        scored = [r for r in mine if r["scorecard"] is not None]
        if scored:
            rows.append(_kappa_row("scorecard", reviewer, "scorecard", [r["verdict"] for r in scored],
                                   [r["scorecard"] for r in scored]))
        decided = [r for r in mine if r["decision"] is not None]
        binary = {r["decision"] for r in decided} <= {PASS, FAIL}
        pairs = [(r["verdict"] if binary else r["grade"], r["decision"]) for r in decided]
        pairs = [(a, b) for a, b in pairs if a is not None]
        if pairs:
            rows.append(_kappa_row("classifier", reviewer, "classifier", [a for a, _ in pairs],
                                   [b for _, b in pairs]))
    return pa.Table.from_pylist(rows, schema=_PAIR_SCHEMA)


def alpha_table(call_verdicts: pa.Table, hit_verdicts: pa.Table) -> pa.Table:
    """Krippendorff's α for call and hit verdicts where more than two reviewers overlap.

    Returns:
        kind, reviewers (who judged a unit someone else judged too), units
        (judged by two or more), alpha; a kind is left out when at most two
        reviewers overlap (κ covers that case).
    """
    rows = []
    for kind, verdicts, unit in (("call", call_verdicts, "call_id"), ("hit", hit_verdicts, "hit_id")):
        if not verdicts.num_rows:
            continue
        shared = sql(f"""
            SELECT * FROM verdicts WHERE {unit} IN
                (SELECT {unit} FROM verdicts GROUP BY {unit} HAVING count(DISTINCT reviewer) >= 2)""",
                     verdicts=verdicts)
        reviewers = len(set(shared["reviewer"].to_pylist()))
        if reviewers <= 2:
            continue
        rows.append({"kind": kind, "reviewers": reviewers, "units": len(set(shared[unit].to_pylist())),
                     "alpha": krippendorff_alpha(shared, unit)})
    schema = pa.schema([("kind", pa.string()), ("reviewers", pa.int64()), ("units", pa.int64()),
                        ("alpha", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def rule_precision_of(chosen: pa.Table) -> pa.Table:
    """Per-rule confirmed share of reviewed hits with Wilson 95 % intervals.

    Same definition as :func:`pipeline.review.verdicts.rule_precision`, over
    any subset of chosen hit verdicts (e.g. the hits of one report period).

    Args:
        chosen: one verdict per hit (columns rule_id, verdict).

    Returns:
        rule_id, reviewed (confirmed + rejected), confirmed, rejected, unsure,
        share, ci_low, ci_high; lowest share first.
    """
    counts = sql("""
        SELECT coalesce(rule_id, '') AS rule_id,
               count(*) FILTER (WHERE verdict IN ('confirmed', 'rejected')) AS reviewed,
               count(*) FILTER (WHERE verdict = 'confirmed') AS confirmed,
               count(*) FILTER (WHERE verdict = 'rejected') AS rejected,
               count(*) FILTER (WHERE verdict = 'unsure') AS unsure
        FROM chosen GROUP BY ALL""", chosen=chosen) if chosen.num_rows else None
    if counts is None or not counts.num_rows:
        return pa.table({name: pa.array([], kind) for name, kind in (
            ("rule_id", pa.string()), ("reviewed", pa.int64()), ("confirmed", pa.int64()), ("rejected", pa.int64()),
            ("unsure", pa.int64()), ("share", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()))})
    reviewed = counts["reviewed"].to_numpy()
    confirmed = counts["confirmed"].to_numpy()
    low, high = wilson_interval(confirmed, reviewed)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(reviewed > 0, confirmed / reviewed, np.nan)
    precision = counts.append_column("share", pa.array(share, from_pandas=True)) \
        .append_column("ci_low", pa.array(low, from_pandas=True)) \
        .append_column("ci_high", pa.array(high, from_pandas=True))
    return sql("SELECT * FROM precision ORDER BY share ASC NULLS LAST, rule_id", precision=precision)


@dataclass(frozen=True)
class Agreement:
    """Every agreement table (see the module docstring)."""

    pairs: pa.Table
    system: pa.Table
    alpha: pa.Table
    rule_precision: pa.Table


def compute_agreement(inputs: ReportInputs, rule_precision: pa.Table | None = None) -> Agreement:
    """All agreement tables from report inputs.

    Args:
        inputs: features and verdicts (current per reviewer, chosen per hit).
        rule_precision: a ready per-rule table (e.g. :func:`pipeline.review.verdicts.rule_precision`);
            None = computed from ``inputs.chosen_hit_verdicts``.
    """
    calls, hits = inputs.call_verdicts, inputs.hit_verdicts
    pairs = pa.concat_tables([reviewer_pairs(calls, "call_id", "call"), reviewer_pairs(hits, "hit_id", "hit")])
    return Agreement(
        pairs=pairs, system=reviewers_vs_system(calls, inputs.features), alpha=alpha_table(calls, hits),
        rule_precision=rule_precision if rule_precision is not None else rule_precision_of(inputs.chosen_hit_verdicts),
    )
