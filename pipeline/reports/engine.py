"""A DuckDB connection over the report's Arrow tables (zero-copy scans)."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pyarrow as pa

from pipeline.reports.inputs import ReportInputs, to_arrow
from pipeline.reports.periods import Period


class Engine:
    """Runs report SQL over registered Arrow tables.

    Views every report query can use:

    - ``f``: one feature row per call, ``team``/``agent_id`` never null
      ('(未填)' when the manifest had none);
    - ``ha``: every current hit of those feature rows, with the call's agent,
      team and date;
    - ``hp``: the *problems*: hits of ``ha`` with severity fatal or non_fatal
      whose evidence is not suspect (as the scorecard counts them);
    - ``calls``, ``errors``, ``hv`` (current hit verdicts), ``hvc`` (one chosen
      verdict per hit), ``cv`` (current call verdicts), ``cvc`` (one chosen
      verdict per call).
    """

    UNKNOWN = "(未填)"

    def __init__(self, inputs: ReportInputs, extra: Mapping[str, pa.Table] | None = None) -> None:
        self.con = duckdb.connect()
        for name, table in {"features_raw": inputs.features, "hits_raw": inputs.hits, "calls": inputs.calls,
                            "errors": inputs.errors, "hv": inputs.hit_verdicts, "hvc": inputs.chosen_hit_verdicts,
                            "cv": inputs.call_verdicts, "cvc": inputs.chosen_call_verdicts,
                            **(extra or {})}.items():
            self.con.register(name, table)
        unknown = f"'{self.UNKNOWN}'"
        self.con.execute(f"""
            CREATE VIEW f AS SELECT * REPLACE (coalesce(nullif(team, ''), {unknown}) AS team,
                                               coalesce(nullif(agent_id, ''), {unknown}) AS agent_id)
            FROM features_raw""")
        self.con.execute("""
            CREATE VIEW ha AS SELECT h.hit_id, h.call_id, h.rule_id, coalesce(h.category, '') AS category,
                   h.severity, coalesce(h.error_class, 'none') AS error_class, coalesce(h.suspect, false) AS suspect,
                   f.agent_id, f.team, f.call_date
            FROM hits_raw h JOIN f ON h.call_id = f.call_id
                 AND (h.config_hash IS NULL OR h.config_hash = f.config_hash)
                 AND (h.model_id IS NULL OR h.model_id = f.model_id)""")
        self.con.execute("CREATE VIEW hp AS SELECT * FROM ha WHERE severity IN ('fatal', 'non_fatal') AND NOT suspect")

    def register(self, name: str, table: pa.Table) -> None:
        """Make ``table`` visible to queries as ``name``."""
        self.con.register(name, table)

    def table(self, sql: str, params: list[object] | None = None) -> pa.Table:
        """Run ``sql`` and return its result as an Arrow table."""
        return to_arrow(self.con.sql(sql, params=params or None))

    def close(self) -> None:
        self.con.close()


def within(period: Period, column: str = "call_date") -> str:
    """SQL condition: ``column`` falls in ``period`` (ISO dates compare as text)."""
    return f"({column} >= '{period.start_text}' AND {column} < '{period.end_text}')"
