"""Review status for a report period: how much people reviewed, and what they found.

Uses the verdicts registered in the :class:`~pipeline.reports.engine.Engine`
(``cv``/``cvc`` call verdicts, ``hv``/``hvc`` hit verdicts). A call counts as
reviewed when anyone gave it a call verdict or judged one of its hits.
Sampling queues (``STORE/_review/queues``) give weighted-back rates: the
reviewers' fail rate over a queue's reviewed calls, each weighted by
``1 / inclusion_probability`` (Hájek estimator Σ w·y / Σ w).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from pipeline.reports.agreement import rule_precision_of, scorecard_verdict
from pipeline.reports.engine import Engine, within
from pipeline.reports.periods import Period
from pipeline.reports.sampling import read_queue


def review_summary(engine: Engine, period: Period) -> pa.Table:
    """(metric, label, value) rows: reviewed calls and hits, reviewers' fail rate, agreement with the scorecard."""
    row = engine.table(f"""
        WITH pc AS (SELECT call_id, {scorecard_verdict("f")} AS scorecard FROM f WHERE {within(period)}),
             reviewed AS (SELECT call_id FROM cv UNION SELECT call_id FROM hv),
             chosen AS (SELECT pc.call_id, cvc.verdict, pc.scorecard FROM pc JOIN cvc USING (call_id)),
             ph AS (SELECT hit_id FROM ha WHERE {within(period)}),
             counts AS (
                SELECT (SELECT count(*) FROM pc) AS calls,
                       (SELECT count(*) FROM pc WHERE call_id IN (SELECT call_id FROM reviewed)) AS reviewed_calls,
                       (SELECT count(*) FROM chosen) AS call_verdicts,
                       (SELECT avg((verdict = 'fail')::DOUBLE) FROM chosen) AS reviewer_fail_rate,
                       (SELECT avg((verdict = scorecard)::DOUBLE) FROM chosen) AS scorecard_agreement,
                       (SELECT count(*) FROM ph) AS hits,
                       (SELECT count(*) FROM ph WHERE hit_id IN (SELECT hit_id FROM hvc)) AS reviewed_hits)
        SELECT *, reviewed_calls / nullif(calls, 0) AS reviewed_share,
               reviewed_hits / nullif(hits, 0) AS reviewed_hit_share FROM counts""").to_pylist()[0]
    labels = [
        ("calls", "本期通话 calls in period"), ("reviewed_calls", "已复核通话 reviewed calls"),
        ("reviewed_share", "复核率 reviewed share"), ("call_verdicts", "整通判定 calls with a pass/fail verdict"),
        ("reviewer_fail_rate", "复核不合格率 reviewers' fail rate (unweighted)"),
        ("scorecard_agreement", "与评分卡一致 agreement with the scorecard"),
        ("hits", "本期命中 hits in period"), ("reviewed_hits", "已复核命中 reviewed hits"),
        ("reviewed_hit_share", "命中复核率 reviewed hit share"),
    ]
    return pa.table({"metric": [k for k, _ in labels], "label": [label for _, label in labels],
                     "value": pa.array([None if row[k] is None else float(row[k]) for k, _ in labels], pa.float64())})


def period_rule_precision(engine: Engine, period: Period) -> pa.Table:
    """Per-rule confirmed share (Wilson 95 %) over the chosen verdicts on the period's hits."""
    chosen = engine.table(f"""SELECT hvc.rule_id, hvc.verdict FROM hvc
        WHERE hvc.hit_id IN (SELECT hit_id FROM ha WHERE {within(period)})""")
    return rule_precision_of(chosen)


_QUEUE_SCHEMA = pa.schema([
    ("queue", pa.string()), ("design", pa.string()), ("period", pa.string()), ("seed", pa.int64()),
    ("population", pa.int64()), ("sample", pa.int64()), ("reviewed", pa.int64()), ("reviewed_share", pa.float64()),
    ("fail_rate", pa.float64()), ("weighted_fail_rate", pa.float64()),
])


def queue_estimates(engine: Engine, queues: Sequence[Path]) -> pa.Table:
    """One row per sampling queue: its design, how much of it was reviewed, fail rate raw and weighted back.

    Returns:
        queue, design ('stratified:team', ...), period, seed, population,
        sample, reviewed, reviewed_share, fail_rate, weighted_fail_rate
        (null when the queue has no weights).
    """
    rows = []
    for path in queues:
        table, design = read_queue(path)
        engine.register("queue_rows", table)
        stats = engine.table("""
            SELECT count(*) AS reviewed, avg((c.verdict = 'fail')::DOUBLE) AS fail_rate,
                   sum(q.weight * (c.verdict = 'fail')::DOUBLE) / nullif(sum(q.weight), 0) AS weighted_fail_rate,
                   count(q.weight) = count(*) AS all_weighted
            FROM queue_rows q JOIN cvc c USING (call_id)""").to_pylist()[0]
        design = design or {}
        kind = design.get("design", "")
        rows.append({
            "queue": path.stem, "design": f"{kind}:{design['by']}" if design.get("by") else kind,
            "period": (design.get("period") or {}).get("label"), "seed": design.get("seed"),
            "population": design.get("population"), "sample": table.num_rows, "reviewed": stats["reviewed"],
            "reviewed_share": stats["reviewed"] / table.num_rows if table.num_rows else None,
            "fail_rate": stats["fail_rate"],
            "weighted_fail_rate": stats["weighted_fail_rate"] if stats["all_weighted"] else None,
        })
    return pa.Table.from_pylist(rows, schema=_QUEUE_SCHEMA)
