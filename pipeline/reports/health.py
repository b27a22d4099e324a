"""Pipeline health for a report period: calls processed and failed, audio, coverage, versions."""

from __future__ import annotations

import pyarrow as pa

from pipeline.reports.engine import Engine, within
from pipeline.reports.periods import Period


def health_summary(engine: Engine, period: Period, missing: frozenset[str]) -> pa.Table:
    """Key figures as (metric, value) rows; values are numbers, or null where the store lacks the column.

    A call counts once: processed if any of its rows is ok (a call that failed
    once and succeeded on a retry is processed).

    Returns:
        metric, label, value (double; null = n/a).
    """
    coverage = {role: "NULL" if f"{role}_coverage" in missing else f"avg({role}_coverage)"
                for role in ("agent", "customer")}
    outcome = "NULL" if "outcome" in missing else "count(*) FILTER (WHERE outcome <> 'pass')"
    row = engine.table(f"""
        WITH c AS (SELECT call_id, bool_or(status = 'ok') AS ok, max(duration_s) AS duration_s
                   FROM calls WHERE {within(period)} GROUP BY call_id),
             cs AS (SELECT count(*) AS received, count(*) FILTER (WHERE ok) AS processed,
                           count(*) FILTER (WHERE NOT ok) AS failed, sum(duration_s) / 3600 AS audio_h,
                           sum(duration_s) FILTER (WHERE ok) / 3600 AS audio_ok_h FROM c),
             fs AS (SELECT count(*) AS scored, {coverage['agent']} AS agent_coverage,
                           {coverage['customer']} AS customer_coverage,
                           avg(suspect_utterance_share) AS suspect_share, {outcome} AS not_clean
                    FROM f WHERE {within(period)})
        SELECT cs.*, cs.failed / nullif(cs.received, 0) AS failed_rate, fs.* FROM cs, fs""").to_pylist()[0]
    labels = [
        ("received", "收到通话 calls received"), ("processed", "处理成功 processed"), ("failed", "处理失败 failed"),
        ("failed_rate", "失败率 failure rate"), ("audio_h", "音频时长 audio hours (all)"),
        ("audio_ok_h", "音频时长 audio hours (processed)"), ("scored", "已评分 scored calls"),
        ("agent_coverage", "坐席转写覆盖率 agent transcript coverage"),
        ("customer_coverage", "客户转写覆盖率 customer transcript coverage"),
        ("suspect_share", "可疑语句占比 suspect-utterance share"),
        ("not_clean", "非干净通过 calls not a clean pass (outcome)"),
    ]
    return pa.table({"metric": [k for k, _ in labels], "label": [label for _, label in labels],
                     "value": pa.array([None if row[k] is None else float(row[k]) for k, _ in labels], pa.float64())})


def failures(engine: Engine, period: Period) -> pa.Table:
    """Failed calls by stage and reason (exception name); a call that later succeeded is not counted.

    Returns:
        stage ('(unknown)' without an errors row), error_type, calls; most first.
    """
    return engine.table(f"""
        WITH c AS (SELECT call_id, bool_or(status = 'ok') AS ok,
                          coalesce(max(error_type) FILTER (WHERE status = 'failed'), '(unknown)') AS error_type
                   FROM calls WHERE {within(period)} GROUP BY call_id),
             e AS (SELECT call_id, max(stage) AS stage FROM errors GROUP BY call_id)
        SELECT coalesce(e.stage, '(unknown)') AS stage, c.error_type, count(*) AS calls
        FROM c LEFT JOIN e USING (call_id) WHERE NOT c.ok
        GROUP BY ALL ORDER BY calls DESC, stage, error_type""")


def versions(engine: Engine, period: Period) -> pa.Table:
    """Which speech model, rules, scorecard, config and callqa versions made the period's results.

    Returns:
        kind (model / rules / scorecard / config / callqa), version, calls.
    """
    parts = [f"""SELECT '{kind}' AS kind, coalesce({column}, '(none)') AS version,
                        count(DISTINCT call_id) AS calls
                 FROM {table} WHERE {within(period)} GROUP BY ALL"""
             for kind, column, table in (("model", "model_id", "f"), ("rules", "rules_version", "f"),
                                         ("scorecard", "scorecard_version", "f"), ("config", "config_hash", "f"),
                                         ("classifier", "classifier_model", "f"),
                                         ("callqa", "callqa_version", "calls"))]
    return engine.table(" UNION ALL ".join(parts) + " ORDER BY kind, calls DESC, version")
