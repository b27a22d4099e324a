"""Report speed at scale: a synthetic month of calls, report tables vs a plain DuckDB aggregation.

Builds ``--calls`` feature rows over one month (20 teams, 400 agents, scores,
grades, outcomes, COPC flags) and about ``--hits-per-call`` hits each, directly
as Arrow tables (no store, no audio). Times :func:`build_report` (every table
of a monthly report, trend over 8 months included; charts and HTML not
included) against one plain DuckDB query over the same rows (pass rate and
mean score per team and agent, hits per rule) in the same run, and prints
the ratio.

    python scripts/bench/report_scale.py --calls 100000
"""

from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import parse_date, period_containing
from pipeline.reports.report import ReportSettings, build_report

RULES = [("forbidden.buqingchu", "forbidden_phrase", "non_fatal", "customer"),
         ("opening.greeting", "opening", "non_fatal", "business"),
         ("closing.script", "closing", "non_fatal", "business"),
         ("politeness.missing", "politeness", "non_fatal", "customer"),
         ("verbal_tic.zhege", "verbal_tic", "non_fatal", "customer"),
         ("timing.silence", "silence", "non_fatal", "customer"),
         ("timing.interruption", "interruption", "non_fatal", "customer"),
         ("timing.answer_delay", "answer_delay", "non_fatal", "customer"),
         ("pii.phone", "pii", "info", "compliance"),
         ("abuse.qusi", "redline_abuse", "fatal", "customer"),
         ("coldness.buyao", "redline_coldness", "fatal", "customer"),
         ("arguing.bujiangdaoli", "arguing", "fatal", "customer")]
RULE_WEIGHTS = np.array([3, 2, 2, 3, 3, 2, 1, 1, 1, 0.05, 0.05, 0.05])


def synthetic_month(calls: int, hits_per_call: float, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(features, hits) for ``calls`` calls in November 2026."""
    rng = np.random.default_rng(seed)
    call_ids = np.char.add("call", np.arange(calls).astype(str))
    days = rng.integers(1, 31, calls)
    dates = np.char.add("2026-11-", np.char.zfill(days.astype(str), 2))
    agent = rng.integers(0, 400, calls)
    team = np.char.add("售后", np.char.add((agent // 20).astype(str), "组"))
    score = np.clip(rng.normal(82, 12, calls), 0, 100).round(1)
    fatal = rng.random(calls) < 0.03
    score[fatal] = 0.0
    grade = np.select([score >= 90, score >= 80, score >= 60], ["A", "B", "C"], "D")
    outcome = np.where(fatal | (score < 80), "fail", np.where(rng.random(calls) < 0.05, "needs_review", "pass"))
    features = pa.table({
        "call_id": call_ids, "call_date": dates, "config_hash": np.full(calls, "cfg"),
        "model_id": np.full(calls, "whisper-base"), "rules_version": np.full(calls, "r1"),
        "agent_id": np.char.add("A", agent.astype(str)), "team": team,
        "started_at": np.char.add(dates, "T10:00:00+08:00"), "duration_s": rng.uniform(30, 600, calls),
        "score": score, "grade": grade, "passed": (score >= 80) & ~fatal, "fatal_failed": fatal,
        "redline": fatal & (rng.random(calls) < 0.5), "redline_hits": (fatal * 1).astype(np.int64),
        "copc_customer_pass": rng.random(calls) > 0.1, "copc_business_pass": rng.random(calls) > 0.05,
        "copc_compliance_pass": rng.random(calls) > 0.01, "suspect_utterance_share": rng.uniform(0, 0.1, calls),
        "scorecard_version": np.full(calls, "sc1"), "outcome": outcome,
        "agent_coverage": rng.uniform(0.8, 1, calls), "customer_coverage": rng.uniform(0.7, 1, calls),
    })
    per_call = rng.poisson(hits_per_call, calls)
    owner = np.repeat(np.arange(calls), per_call)
    rule = rng.choice(len(RULES), owner.size, p=RULE_WEIGHTS / RULE_WEIGHTS.sum())
    columns = list(zip(*RULES, strict=True))
    hits = pa.table({
        "hit_id": np.char.add("h", np.arange(owner.size).astype(str)), "call_id": call_ids[owner],
        "config_hash": np.full(owner.size, "cfg"), "model_id": np.full(owner.size, "whisper-base"),
        "rules_version": np.full(owner.size, "r1"),
        "rule_id": np.asarray(columns[0])[rule], "category": np.asarray(columns[1])[rule],
        "severity": np.asarray(columns[2])[rule], "error_class": np.asarray(columns[3])[rule],
        "suspect": rng.random(owner.size) < 0.02,
    })
    return features, hits


BASELINE = """
    SELECT 'team' AS level, team AS key, count(*) AS calls, avg(passed::DOUBLE) AS pass_rate, avg(score) AS mean
      FROM features GROUP BY team
    UNION ALL
    SELECT 'agent', agent_id, count(*), avg(passed::DOUBLE), avg(score) FROM features GROUP BY agent_id
    UNION ALL
    SELECT 'rule', h.rule_id, count(DISTINCT h.call_id), NULL, count(*)
      FROM hits h JOIN features f USING (call_id) GROUP BY h.rule_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--hits-per-call", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    features, hits = synthetic_month(args.calls, args.hits_per_call)
    print(f"synthetic month: {features.num_rows:,} calls, {hits.num_rows:,} hits "
          f"(built in {time.perf_counter() - start:.1f} s)")
    month = period_containing(parse_date("2026-11-30"), "month")
    settings = ReportSettings()
    report_s, baseline_s = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        inputs = ReportInputs.from_tables(features, hits)
        report = build_report(inputs, month, settings)
        report_s.append(time.perf_counter() - start)
        con = duckdb.connect()
        con.register("features", features)
        con.register("hits", hits)
        start = time.perf_counter()
        baseline = con.sql(BASELINE).fetchall()
        baseline_s.append(time.perf_counter() - start)
        con.close()
    r, b = min(report_s), min(baseline_s)
    print(f"report tables ({len(report.tables)} tables, month {month.label}): {r:.2f} s (best of {args.repeat})")
    print(f"plain DuckDB aggregation ({len(baseline)} rows: teams, agents, rules): {b:.2f} s")
    print(f"ratio report / plain aggregation: {r / b:.1f}x")
    overall = report.tables["overall"].to_pylist()[0]
    print(f"check: {overall['calls']:,} calls, pass rate {overall['pass_rate']:.1%}, "
          f"{report.tables['problems_by_rule'].num_rows} rules with problems")


if __name__ == "__main__":
    main()
