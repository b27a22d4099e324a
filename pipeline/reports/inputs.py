"""The rows a report is computed from, as Arrow tables with fixed columns.

:func:`read_inputs` reads a store's current rows through
:class:`pipeline.store.Store` (never by globbing Parquet files) and the review
database through :mod:`pipeline.review.verdicts`. :meth:`ReportInputs.from_tables`
builds the same thing from tables a test or a benchmark made, so every report
function can be checked without a store.

Columns that a store does not have yet (``outcome``, ``outcome_reasons``,
``agent_coverage``, ``customer_coverage``) are added as nulls and listed as
missing, so the report shows "n/a" instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

_S, _F, _B, _I = pa.string(), pa.float64(), pa.bool_(), pa.int64()
_LIST = pa.list_(pa.string())

#: Feature columns the report uses, with the type they get here.
FEATURE_COLUMNS: Mapping[str, pa.DataType] = {
    "call_id": _S, "config_hash": _S, "model_id": _S, "rules_version": _S, "call_date": _S,
    "agent_id": _S, "team": _S, "started_at": _S, "duration_s": _F,
    "score": _F, "grade": _S, "passed": _B, "fatal_failed": _B, "failed_items": _LIST,
    "redline": _B, "redline_hits": _I, "hits_total": _I,
    "copc_customer_pass": _B, "copc_business_pass": _B, "copc_compliance_pass": _B,
    "suspect_utterance_share": _F, "scorecard_version": _S,
    "classifier_model": _S, "classifier_decision": _S,
    "outcome": _S, "outcome_reasons": _LIST, "agent_coverage": _F, "customer_coverage": _F,
}
#: Feature columns that older stores lack; the report says "n/a" for them.
OPTIONAL_FEATURES = ("outcome", "outcome_reasons", "agent_coverage", "customer_coverage", "classifier_decision",
                     "classifier_model")
HIT_COLUMNS: Mapping[str, pa.DataType] = {
    "call_id": _S, "config_hash": _S, "model_id": _S, "rules_version": _S, "hit_id": _S, "rule_id": _S,
    "category": _S, "severity": _S, "error_class": _S, "suspect": _B,
}
CALL_COLUMNS: Mapping[str, pa.DataType] = {
    "call_id": _S, "call_date": _S, "status": _S, "error_type": _S, "duration_s": _F, "callqa_version": _S,
}
ERROR_COLUMNS: Mapping[str, pa.DataType] = {"call_id": _S, "call_date": _S, "stage": _S, "error_type": _S}
HIT_VERDICT_COLUMNS: Mapping[str, pa.DataType] = {
    "call_id": _S, "hit_id": _S, "rule_id": _S, "verdict": _S, "reviewer": _S, "created_at": _S,
}
CALL_VERDICT_COLUMNS: Mapping[str, pa.DataType] = {
    "call_id": _S, "verdict": _S, "grade": _S, "reviewer": _S, "created_at": _S,
}
CHOSEN_CALL_COLUMNS: Mapping[str, pa.DataType] = {**CALL_VERDICT_COLUMNS, "reviewer_role": _S}


def to_arrow(relation: duckdb.DuckDBPyRelation | None) -> pa.Table:
    """A relation's rows as an Arrow table (``to_arrow_table`` in DuckDB >= 1.4)."""
    if relation is None:
        return pa.table({})
    convert = getattr(relation, "to_arrow_table", None) or relation.arrow
    return convert()


def sql(query: str, **tables: pa.Table) -> pa.Table:
    """Run ``query`` over the named Arrow tables in a private DuckDB connection."""
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            con.register(name, table)
        return to_arrow(con.sql(query))
    finally:
        con.close()


def conform(table: pa.Table | None, columns: Mapping[str, pa.DataType]) -> pa.Table:
    """``table`` with exactly ``columns`` (cast; absent ones filled with nulls)."""
    rows = 0 if table is None else table.num_rows
    arrays = []
    for name, kind in columns.items():
        if table is not None and name in table.column_names:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            arrays.append(column.cast(kind))
        else:
            arrays.append(pa.nulls(rows, kind))
    return pa.table(arrays, names=list(columns))


def one_analysis_per_call(features: pa.Table) -> pa.Table:
    """Keep one feature row per call when several models or configs analysed it.

    The store keeps results of other models side by side (a comparison run);
    a report counts each call once. Rows of the store's most common model win,
    then the highest (config_hash, model_id), so the choice is deterministic.
    """
    if features.num_rows == 0:
        return features
    return sql("""
        WITH top AS (SELECT mode(model_id) AS model FROM features)
        SELECT features.* FROM features, top
        QUALIFY row_number() OVER (PARTITION BY call_id ORDER BY (model_id = top.model) DESC,
                                   config_hash DESC, model_id DESC) = 1
    """, features=features).select(features.column_names)


@dataclass(frozen=True)
class ReportInputs:
    """Current rows for a report: features, hits, calls, errors and verdicts."""

    features: pa.Table
    hits: pa.Table
    calls: pa.Table
    errors: pa.Table
    hit_verdicts: pa.Table
    chosen_hit_verdicts: pa.Table
    call_verdicts: pa.Table
    chosen_call_verdicts: pa.Table
    missing: frozenset[str] = frozenset()
    analyses_dropped: int = 0
    queues: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def from_tables(cls, features: pa.Table, hits: pa.Table | None = None, calls: pa.Table | None = None,
                    errors: pa.Table | None = None, hit_verdicts: pa.Table | None = None,
                    chosen_hit_verdicts: pa.Table | None = None, call_verdicts: pa.Table | None = None,
                    chosen_call_verdicts: pa.Table | None = None,
                    queues: tuple[Path, ...] = ()) -> ReportInputs:
        """Conform raw tables (any subset of columns) into report inputs.

        ``chosen_*`` default to the current verdicts (one reviewer per call/hit
        is enough for tests); ``calls`` defaults to one ok row per feature row.
        """
        missing = frozenset(c for c in OPTIONAL_FEATURES if c not in features.column_names)
        conformed = conform(features, FEATURE_COLUMNS)
        unique = one_analysis_per_call(conformed)
        if calls is None:
            calls = pa.table({"call_id": conformed["call_id"], "call_date": conformed["call_date"],
                              "status": pa.array(["ok"] * conformed.num_rows, _S),
                              "duration_s": conformed["duration_s"]})
        hit_verdicts = conform(hit_verdicts, HIT_VERDICT_COLUMNS)
        call_verdicts = conform(call_verdicts, CALL_VERDICT_COLUMNS)
        return cls(
            features=unique, hits=conform(hits, HIT_COLUMNS), calls=conform(calls, CALL_COLUMNS),
            errors=conform(errors, ERROR_COLUMNS), hit_verdicts=hit_verdicts,
            chosen_hit_verdicts=conform(chosen_hit_verdicts, HIT_VERDICT_COLUMNS) if chosen_hit_verdicts is not None
            else hit_verdicts,
            call_verdicts=call_verdicts,
            chosen_call_verdicts=conform(chosen_call_verdicts if chosen_call_verdicts is not None else call_verdicts,
                                         CHOSEN_CALL_COLUMNS),
            missing=missing, analyses_dropped=conformed.num_rows - unique.num_rows, queues=tuple(queues),
        )


def _read(store: Any, table: str, columns: list[str]) -> pa.Table:
    """``store.read`` of these columns, or of all columns when the store lacks one of them."""
    try:
        return store.read(table, columns=columns)
    except (KeyError, ValueError, pa.ArrowInvalid):
        return store.read(table)


def read_inputs(store_root: str | Path, storage_options: Mapping[str, str] | None = None) -> ReportInputs:
    """Read a store's current rows and its review verdicts.

    Args:
        store_root: a store written by ``callqa run`` (a directory or an object-store URI).
        storage_options: object-store options (see :class:`pipeline.store.Store`).

    Returns:
        The report inputs (empty tables where the store has nothing). A store on an
        object store has no review database (``callqa review`` needs a local store):
        its verdicts and queues are empty.
    """
    from pipeline.review import verdicts
    from pipeline.scoring.features import FEATURES_SCHEMA
    from pipeline.store import Store

    store = Store(store_root, storage_options=storage_options)
    stored = set(FEATURES_SCHEMA.names)
    features = _read(store, "features", [c for c in FEATURE_COLUMNS if c in stored and c != "call_date"])
    # The ledger store keeps several rule versions' hits (current_hits picks the call's);
    # the Delta store's read() already returns only the current result's hits.
    hit_columns = [c for c in HIT_COLUMNS if c != "call_id"]
    hits = store.current_hits(columns=hit_columns) if hasattr(store, "current_hits") else \
        _read(store, "hits", hit_columns)
    calls = _read(store, "calls", [c for c in CALL_COLUMNS if c not in ("call_id", "call_date")])
    errors = _read(store, "errors", ["stage", "error_type"])
    if store.remote:
        return ReportInputs.from_tables(features, hits, calls, errors)
    queue_dir = Path(store_root) / "_review" / "queues"
    queues = tuple(sorted(queue_dir.glob("*.csv"))) if queue_dir.is_dir() else ()
    return ReportInputs.from_tables(
        features, hits, calls, errors,
        hit_verdicts=verdicts.current_hit_verdicts(store_root),
        chosen_hit_verdicts=verdicts.chosen_hit_verdicts(store_root),
        call_verdicts=verdicts.current_call_verdicts(store_root),
        chosen_call_verdicts=verdicts.chosen_call_verdicts(store_root),
        queues=queues,
    )
