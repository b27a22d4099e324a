"""Build a period's QA report (日报 / 周报 / 月报) as a set of named Arrow tables.

:func:`build_report` is the one entry point the CLI, the benchmark and the
tests use: it takes :class:`~pipeline.reports.inputs.ReportInputs` (so tests
pass tables they made) and returns a :class:`Report`; rendering lives in
:mod:`pipeline.reports.render`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from pipeline.reports import health, review_status, tables
from pipeline.reports.agreement import compute_agreement
from pipeline.reports.engine import Engine
from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import Period, PeriodKind, parse_date, period_containing, periods_ending


@dataclass(frozen=True)
class ReportSettings:
    """Report knobs (config ``[reports]``; the review URL comes from the command line).

    Attributes:
        intervention_score: agents whose mean score is below this need management intervention.
        intervention_min_calls: ...with at least this many scored calls in the period.
        trend_periods: periods in the trend section, the report's included.
        common_problem_agent_share: a rule hit by at least this share of the
            period's agents is a common problem (共性问题).
        top_calls: calls listed per flagged-call table.
        review_url: base URL of the review app (links to ``/calls/{call_id}``).
        grades: grade names, best first (from the scorecard).
    """

    intervention_score: float = 70.0
    intervention_min_calls: int = 5
    trend_periods: int = 8
    common_problem_agent_share: float = 0.3
    top_calls: int = 20
    review_url: str = "http://127.0.0.1:8000"
    grades: tuple[str, ...] = ("A", "B", "C", "D")

    @classmethod
    def from_config(cls, config: Any, review_url: str, grades: Sequence[str]) -> ReportSettings:
        """Settings from a loaded :class:`pipeline.config.Config` (its ``reports`` section)."""
        section = getattr(config, "reports", None)
        values = {} if section is None else {k: getattr(section, k) for k in (
            "intervention_score", "intervention_min_calls", "trend_periods", "common_problem_agent_share",
            "top_calls") if hasattr(section, k)}
        return cls(**values, review_url=review_url, grades=tuple(grades))


@dataclass(frozen=True)
class Report:
    """A computed report: the period, its tables in section order, and headline facts."""

    period: Period
    previous: Period
    trend_periods: tuple[Period, ...]
    settings: ReportSettings
    tables: Mapping[str, pa.Table]
    facts: Mapping[str, Any]
    missing: frozenset[str] = frozenset()
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def latest_date(inputs: ReportInputs) -> str | None:
    """The latest call date in the inputs (features, else calls), or None for an empty store."""
    dates = [d for d in (inputs.features["call_date"].to_pylist() or inputs.calls["call_date"].to_pylist()) if d]
    return max(dates) if dates else None


def report_period(inputs: ReportInputs, kind: PeriodKind, date_text: str | None) -> Period:
    """The period of ``kind`` containing ``date_text`` (default: the latest call date).

    Raises:
        ValueError: the date is not YYYY-MM-DD, or the store has no calls and no date was given.
    """
    text = date_text or latest_date(inputs)
    if text is None:
        raise ValueError("the store has no calls yet (run `callqa run` first, or give --date)")
    return period_containing(parse_date(text), kind)


def build_report(inputs: ReportInputs, period: Period, settings: ReportSettings | None = None) -> Report:
    """Compute every table of the report for ``period``.

    Args:
        inputs: the store's current rows and verdicts.
        period: the report period.
        settings: thresholds and limits (defaults: :class:`ReportSettings`).

    Returns:
        The report; ``tables`` keys are the CSV/Parquet file names.
    """
    settings = settings or ReportSettings()
    previous = period.previous()
    trend_periods = tuple(periods_ending(period, settings.trend_periods))
    engine = Engine(inputs)
    try:
        agents = tables.score_summary(engine, period, previous, "agent", settings.grades)
        out: dict[str, pa.Table] = {
            "overall": tables.score_summary(engine, period, previous, "all", settings.grades),
            "teams": tables.score_summary(engine, period, previous, "team", settings.grades),
            "agents": agents,
            "problems_by_rule": tables.problems_by_rule(engine, period, previous),
            "problems_by_category": tables.problems_by_category(engine, period),
            "problems_by_severity": tables.problems_by_severity(engine, period, previous),
            "copc": tables.copc_rates(engine, period, previous),
            "common_individual": tables.common_and_individual(engine, period, settings.common_problem_agent_share),
            "trend": tables.trend(engine, trend_periods),
            "redline_calls": tables.redline_calls(engine, period, settings.top_calls, settings.review_url),
            "review_calls": tables.review_calls(engine, period, settings.top_calls, settings.review_url),
            "intervention": tables.intervention(agents, settings.intervention_score, settings.intervention_min_calls),
            "review_summary": review_status.review_summary(engine, period),
            "rule_precision": review_status.period_rule_precision(engine, period),
            "sampling_queues": review_status.queue_estimates(engine, inputs.queues),
            "health": health.health_summary(engine, period, inputs.missing),
            "failures": health.failures(engine, period),
            "versions": health.versions(engine, period),
        }
        agreement = compute_agreement(inputs)
        out.update(agreement_pairs=pa.concat_tables([agreement.pairs, agreement.system]),
                   agreement_alpha=agreement.alpha)
    finally:
        engine.close()
    # the overall summary is one row over the period's calls (zeros for an empty period)
    [overall] = out["overall"].to_pylist()
    facts = {
        **overall,
        "redline_total": overall["redline_calls"], "redline_unconfirmed_total": overall["redline_unconfirmed_calls"],
        "review_total": overall["review_calls"],
        "analyses_dropped": inputs.analyses_dropped,
    }
    return Report(period=period, previous=previous, trend_periods=trend_periods, settings=settings,
                  tables=out, facts=facts, missing=inputs.missing)
