"""The report's tables: scores, problems, trends and flagged calls, computed with DuckDB.

Every function takes an :class:`~pipeline.reports.engine.Engine` (the report's
Arrow tables registered as SQL views) and returns an Arrow table, so a test
can compare each number with one computed by hand. Rates are fractions
(0.25, not 25 %); ``*_change`` columns are this period minus the previous one.

Definitions (stated in the report too):

- 合格率 (pass rate): share of scored calls with ``passed``: outcome pass (score at
  least the pass score, no fatal item failed, and nothing left for a person);
- problems: hits with severity fatal or non_fatal whose evidence is not a
  suspect utterance (the hits the scorecard counts); ``info`` hits are not
  problems;
- COPC error rate of a class: share of scored calls whose ``copc_<class>_pass``
  is false; accuracy (準確率) is one minus it;
- common problem (共性问题): a rule hit by at least ``common_share`` of the
  period's active agents (and at least two agents); otherwise individual
  (个性问题), concentrated in the agents named.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import pyarrow as pa

from pipeline.records import CATEGORIES, UNCONFIRMED_REDLINE_REASONS
from pipeline.reports.engine import Engine, within
from pipeline.reports.inputs import sql
from pipeline.reports.periods import Period

COPC_CLASSES = ("customer", "business", "compliance")
#: Chinese names of the COPC critical-error classes (DOMAIN.md §3).
COPC_NAMES = {"customer": "顾客关键错误", "business": "业务关键错误", "compliance": "合规关键错误"}
SEVERITY_NAMES = {"fatal": "致命", "non_fatal": "非致命"}
#: Outcomes that ask for a person (features.outcome).
REVIEW_OUTCOMES = ("needs_review", "needs_listening")
#: SQL: the call's red line is unconfirmed (only the text model or the sound check heard it, so a person
#: confirms or rejects it; the call fails only on its other findings: :func:`pipeline.records.redline_label`).
UNCONFIRMED = ("redline AND list_has_any(coalesce(outcome_reasons, []::VARCHAR[]), ["
               + ", ".join(f"'{r}'" for r in UNCONFIRMED_REDLINE_REASONS) + "])")
#: A rule is common only if at least this many agents have it.
COMMON_MIN_AGENTS = 2
#: Agents named per problem.
NAMED_AGENTS = 5


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _score_aggregates(grades: Sequence[str]) -> str:
    grade_mix = "".join(f", avg((grade = {_quote_text(g)})::DOUBLE) AS {_quote_ident('grade_' + g)}"
                        for g in grades)
    return f"""count(*) AS calls, count(score) AS scored, avg(passed::DOUBLE) AS pass_rate,
        avg(score) AS mean_score, count(*) FILTER (WHERE fatal_failed) AS fatal_calls,
        count(*) FILTER (WHERE redline) AS redline_calls,
        count(*) FILTER (WHERE {UNCONFIRMED}) AS redline_unconfirmed_calls,
        count(*) FILTER (WHERE outcome IN {REVIEW_OUTCOMES}) AS review_calls{grade_mix}"""


def score_summary(engine: Engine, period: Period, previous: Period, by: str, grades: Sequence[str]) -> pa.Table:
    """Pass rate, mean score and grade mix per team or per agent, with the change from ``previous``.

    Args:
        engine: the report's tables.
        period: the report period.
        previous: the period compared with.
        by: "team", "agent" or "all" (one row for every call).
        grades: grade names, best first (a ``grade_<name>`` share column each).

    Returns:
        One row per group: the key column(s), calls, scored, pass_rate,
        mean_score, fatal_calls, redline_calls (every red-line flag), redline_unconfirmed_calls (of
        those, the ones no rule heard: a person confirms them), review_calls, grade_* shares,
        prev_calls, prev_pass_rate, prev_mean_score, pass_rate_change,
        mean_score_change; ordered by key.
    """
    keys = {"team": ["team"], "agent": ["agent_id"], "all": []}[by]
    select_keys = "".join(f"{k}, " for k in keys) + ("mode(team) AS team, " if by == "agent" else "")
    group = f"GROUP BY {', '.join(keys)}" if keys else ""
    join = f"LEFT JOIN prev USING ({', '.join(keys)})" if keys else "LEFT JOIN prev ON true"
    order = f"ORDER BY {', '.join(f'cur.{k}' for k in keys)}" if keys else ""
    aggregates = _score_aggregates(grades)
    return engine.table(f"""
        WITH cur AS (SELECT {select_keys}{aggregates} FROM f WHERE {within(period)} {group}),
             prev AS (SELECT {"".join(f"{k}, " for k in keys)}count(*) AS prev_calls,
                             avg(passed::DOUBLE) AS prev_pass_rate, avg(score) AS prev_mean_score
                      FROM f WHERE {within(previous)} {group})
        SELECT cur.*, coalesce(prev.prev_calls, 0) AS prev_calls, prev.prev_pass_rate, prev.prev_mean_score,
               cur.pass_rate - prev.prev_pass_rate AS pass_rate_change,
               cur.mean_score - prev.prev_mean_score AS mean_score_change
        FROM cur {join} {order}""")


def _categories_table() -> pa.Table:
    return pa.table({"category": list(CATEGORIES), "category_name": list(CATEGORIES.values())})


def problems_by_rule(engine: Engine, period: Period, previous: Period) -> pa.Table:
    """Problem hits per rule: hits, calls with the rule, share of calls, agents; change from ``previous``.

    Returns:
        rule_id, category, category_name, severity, error_class, hits, calls,
        call_rate, agents, prev_calls, prev_call_rate, call_rate_change;
        most calls first.
    """
    engine.register("categories", _categories_table())
    return engine.table(f"""
        WITH n AS (SELECT count(*) AS calls FROM f WHERE {within(period)}),
             np AS (SELECT count(*) AS calls FROM f WHERE {within(previous)}),
             cur AS (SELECT rule_id, category, severity, error_class, count(*) AS hits,
                            count(DISTINCT call_id) AS calls, count(DISTINCT agent_id) AS agents
                     FROM hp WHERE {within(period)} GROUP BY ALL),
             prev AS (SELECT rule_id, category, severity, error_class, count(DISTINCT call_id) AS prev_calls
                      FROM hp WHERE {within(previous)} GROUP BY ALL)
        SELECT cur.rule_id, cur.category, coalesce(c.category_name, cur.category) AS category_name,
               cur.severity, cur.error_class, cur.hits, cur.calls, cur.calls / n.calls AS call_rate, cur.agents,
               coalesce(prev.prev_calls, 0) AS prev_calls, coalesce(prev.prev_calls, 0) / np.calls AS prev_call_rate,
               cur.calls / n.calls - coalesce(prev.prev_calls, 0) / np.calls AS call_rate_change
        FROM cur CROSS JOIN n CROSS JOIN np
        LEFT JOIN prev USING (rule_id, category, severity, error_class)
        LEFT JOIN categories c ON c.category = cur.category
        ORDER BY cur.calls DESC, cur.hits DESC, cur.rule_id""")


def problems_by_category(engine: Engine, period: Period) -> pa.Table:
    """Problem hits per category: hits (fatal / non-fatal), calls with one, share of calls, agents.

    Returns:
        category, category_name, hits, fatal_hits, non_fatal_hits, calls,
        call_rate, agents; most calls first.
    """
    engine.register("categories", _categories_table())
    return engine.table(f"""
        WITH n AS (SELECT count(*) AS calls FROM f WHERE {within(period)})
        SELECT hp.category, coalesce(any_value(c.category_name), hp.category) AS category_name, count(*) AS hits,
               count(*) FILTER (WHERE severity = 'fatal') AS fatal_hits,
               count(*) FILTER (WHERE severity = 'non_fatal') AS non_fatal_hits,
               count(DISTINCT call_id) AS calls, count(DISTINCT call_id) / any_value(n.calls) AS call_rate,
               count(DISTINCT agent_id) AS agents
        FROM hp CROSS JOIN n LEFT JOIN categories c ON c.category = hp.category
        WHERE {within(period)} GROUP BY hp.category ORDER BY calls DESC, hits DESC, hp.category""")


def problems_by_severity(engine: Engine, period: Period, previous: Period) -> pa.Table:
    """Fatal vs non-fatal problems (致命 / 非致命): hits, calls, share of calls, with the previous period.

    Returns:
        severity, severity_name, hits, calls, call_rate, prev_call_rate,
        call_rate_change; fatal first.
    """
    engine.register("severities", pa.table({"severity": list(SEVERITY_NAMES),
                                            "severity_name": list(SEVERITY_NAMES.values())}))
    return engine.table(f"""
        WITH n AS (SELECT count(*) FILTER (WHERE {within(period)}) AS calls,
                          count(*) FILTER (WHERE {within(previous)}) AS prev_calls FROM f),
             s AS (SELECT severity, count(*) FILTER (WHERE {within(period)}) AS hits,
                          count(DISTINCT call_id) FILTER (WHERE {within(period)}) AS calls,
                          count(DISTINCT call_id) FILTER (WHERE {within(previous)}) AS prev_calls
                   FROM hp GROUP BY severity)
        SELECT v.severity, v.severity_name, coalesce(s.hits, 0) AS hits, coalesce(s.calls, 0) AS calls,
               coalesce(s.calls, 0) / n.calls AS call_rate, coalesce(s.prev_calls, 0) / n.prev_calls AS prev_call_rate,
               coalesce(s.calls, 0) / n.calls - coalesce(s.prev_calls, 0) / n.prev_calls AS call_rate_change
        FROM severities v CROSS JOIN n LEFT JOIN s USING (severity) ORDER BY v.severity""")


def copc_rates(engine: Engine, period: Period, previous: Period) -> pa.Table:
    """COPC critical-error rates per class (customer / business / compliance).

    Returns:
        error_class, class_name, scored, error_calls, error_rate, accuracy,
        hits (problem hits of that class), prev_error_rate, error_rate_change.
    """
    parts = []
    for copc in COPC_CLASSES:
        column = f"copc_{copc}_pass"
        parts.append(f"""SELECT {_quote_text(copc)} AS error_class, {_quote_text(COPC_NAMES[copc])} AS class_name,
            count({column}) FILTER (WHERE {within(period)}) AS scored,
            count(*) FILTER (WHERE {within(period)} AND NOT {column}) AS error_calls,
            avg((NOT {column})::DOUBLE) FILTER (WHERE {within(previous)}) AS prev_error_rate FROM f""")
    return engine.table(f"""
        WITH c AS ({" UNION ALL ".join(parts)}),
             h AS (SELECT error_class, count(*) AS hits FROM hp WHERE {within(period)} GROUP BY error_class)
        SELECT c.error_class, c.class_name, c.scored, c.error_calls, c.error_calls / nullif(c.scored, 0) AS error_rate,
               1 - c.error_calls / nullif(c.scored, 0) AS accuracy, coalesce(h.hits, 0) AS hits, c.prev_error_rate,
               c.error_calls / nullif(c.scored, 0) - c.prev_error_rate AS error_rate_change
        FROM c LEFT JOIN h USING (error_class)
        ORDER BY CASE c.error_class WHEN 'customer' THEN 0 WHEN 'business' THEN 1 ELSE 2 END""")


def common_and_individual(engine: Engine, period: Period, common_share: float) -> pa.Table:
    """Common (共性) vs individual (个性) problems per rule, naming the agents with the most calls.

    Args:
        engine: the report's tables.
        period: the report period.
        common_share: a rule hit by at least this share of the period's active
            agents (and by at least :data:`COMMON_MIN_AGENTS`) is common.

    Returns:
        rule_id, category_name, kind ('共性' or '个性'), agents, active_agents,
        agent_share, calls, top_agent_share (the busiest agent's share of the
        rule's calls), named_agents ('A1 (3), A2 (1)', at most
        :data:`NAMED_AGENTS`); common first, then by agents and calls.
    """
    engine.register("categories", _categories_table())
    return engine.table(f"""
        WITH active AS (SELECT count(DISTINCT agent_id) AS n FROM f WHERE {within(period)}),
             ra AS (SELECT rule_id, agent_id, count(DISTINCT call_id) AS calls, any_value(category) AS category
                    FROM hp WHERE {within(period)} GROUP BY rule_id, agent_id),
             ranked AS (SELECT *, row_number() OVER (PARTITION BY rule_id ORDER BY calls DESC, agent_id) AS rank
                        FROM ra),
             r AS (SELECT rule_id, any_value(category) AS category, count(*) AS agents,
                          sum(calls)::BIGINT AS calls, max(calls) AS top_calls,
                          string_agg(agent_id || ' (' || calls || ')', ', ' ORDER BY calls DESC, agent_id)
                              FILTER (WHERE rank <= {NAMED_AGENTS}) AS named_agents
                   FROM ranked GROUP BY rule_id)
        SELECT r.rule_id, coalesce(c.category_name, r.category) AS category_name,
               CASE WHEN r.agents >= {COMMON_MIN_AGENTS} AND r.agents / active.n >= {float(common_share)}
                    THEN '共性' ELSE '个性' END AS kind,
               r.agents, active.n AS active_agents, r.agents / active.n AS agent_share, r.calls,
               r.top_calls / r.calls AS top_agent_share, r.named_agents
        FROM r CROSS JOIN active LEFT JOIN categories c ON c.category = r.category
        ORDER BY kind = '共性' DESC, r.agents DESC, r.calls DESC, r.rule_id""")


def trend(engine: Engine, periods: Sequence[Period]) -> pa.Table:
    """Calls, pass rate, mean score, red-line and fatal shares and problems per call over ``periods``.

    Returns:
        One row per period, oldest first: period, start, calls, pass_rate,
        mean_score, redline_rate, redline_unconfirmed_rate (the share of calls whose red line
        no rule heard), fatal_rate, problems_per_call.
    """
    engine.register("periods", pa.table({
        "idx": list(range(len(periods))), "period": [p.label for p in periods],
        "start": [p.start_text for p in periods], "stop": [p.end_text for p in periods]}))
    return engine.table(f"""
        WITH fc AS (SELECT p.idx, count(f.call_id) AS calls, avg(f.passed::DOUBLE) AS pass_rate,
                           avg(f.score) AS mean_score, avg(f.redline::DOUBLE) AS redline_rate,
                           avg(({UNCONFIRMED})::DOUBLE) AS redline_unconfirmed_rate,
                           avg(f.fatal_failed::DOUBLE) AS fatal_rate
                    FROM periods p LEFT JOIN f ON f.call_date >= p.start AND f.call_date < p.stop GROUP BY p.idx),
             hc AS (SELECT p.idx, count(hp.hit_id) AS problems
                    FROM periods p LEFT JOIN hp ON hp.call_date >= p.start AND hp.call_date < p.stop GROUP BY p.idx)
        SELECT p.period, p.start, fc.calls, fc.pass_rate, fc.mean_score, fc.redline_rate,
               fc.redline_unconfirmed_rate, fc.fatal_rate,
               hc.problems / nullif(fc.calls, 0) AS problems_per_call
        FROM periods p JOIN fc USING (idx) JOIN hc USING (idx) ORDER BY p.idx""")


def _with_links(table: pa.Table, review_url: str) -> pa.Table:
    base = review_url.rstrip("/")
    links = [f"{base}/calls/{quote(call_id, safe='')}" for call_id in table["call_id"].to_pylist()]
    return table.append_column("link", pa.array(links, pa.string()))


_CALL_COLUMNS = f"""call_id, call_date, started_at, team, agent_id, score, grade, outcome,
    array_to_string(outcome_reasons, ', ') AS outcome_reasons, array_to_string(failed_items, ', ') AS failed_items,
    redline_hits, CASE WHEN {UNCONFIRMED} THEN 'unconfirmed' WHEN redline THEN 'confirmed' END AS redline_status"""


def redline_calls(engine: Engine, period: Period, limit: int, review_url: str) -> pa.Table:
    """The period's red-line calls with review-app links: confirmed ones first (a rule heard the red line;
    the call failed), then unconfirmed ones (``redline_status``; only the text model or the sound check
    heard it, so a person confirms or rejects it), each most red-line hits first, then lowest score."""
    table = engine.table(f"""SELECT {_CALL_COLUMNS} FROM f WHERE {within(period)} AND redline
        ORDER BY redline_status = 'unconfirmed', redline_hits DESC NULLS LAST, score ASC NULLS LAST, call_id
        LIMIT {int(limit)}""")
    return _with_links(table, review_url)


def review_calls(engine: Engine, period: Period, limit: int, review_url: str) -> pa.Table:
    """Calls whose outcome asks for a person (needs_review first, then needs_listening); with links."""
    table = engine.table(f"""SELECT {_CALL_COLUMNS} FROM f WHERE {within(period)} AND outcome IN {REVIEW_OUTCOMES}
        ORDER BY outcome = 'needs_review' DESC, score ASC NULLS LAST, call_id LIMIT {int(limit)}""")
    return _with_links(table, review_url)


def intervention(agents: pa.Table, threshold: float, min_calls: int) -> pa.Table:
    """Agents whose mean score is below ``threshold`` with at least ``min_calls`` scored calls, lowest first.

    Args:
        agents: :func:`score_summary` by agent.
        threshold: the management-intervention score (config ``[reports] intervention_score``).
        min_calls: fewer scored calls say too little about an agent.
    """
    return sql(f"""
        SELECT agent_id, team, scored, mean_score, pass_rate, fatal_calls, redline_calls, prev_mean_score,
               mean_score_change
        FROM agents WHERE scored >= {int(min_calls)} AND mean_score < {float(threshold)}
        ORDER BY mean_score, agent_id""", agents=agents)
