"""An in-memory snapshot of a store's current rows, arranged for the review app.

Built once from Arrow tables (:func:`build_snapshot`, pure) or from a store
(:func:`load_snapshot`, through ``Store.read`` only: current rows), and
rebuilt when the store's table versions change (:func:`store_version`). Calls are sorted
into queue order once (:func:`priority_order`); every per-call table (hits,
utterances, segments) is sorted by that position with offsets, so a call page
is a slice and a queue page is a numpy mask: both stay fast at 100,000 calls.

The store keeps one current result per call; should a table still return
several rows for a call, the last one is used (:func:`last_per_call`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Outcomes worst first (docs/contracts.md); the queue counts and filters by them.
OUTCOMES = ("fail", "needs_review", "needs_listening", "pass")
#: Queue tiers, most urgent first: why a call sits where it does in the queue.
TIERS = ("red line", "fatal item", "failed", "classifier", "needs listening", "needs review", "pass")
#: Classifier probability at or above which a passing call is ranked as flagged by the model.
CLASSIFIER_FLAG = 0.5

CALL_COLUMNS = ["status", "path", "duration_s", "roles", "agent_id", "team", "started_at", "direction",
                "hangup_party", "codec", "source_sample_rate_hz", "source_channels", "error_message"]
FEATURE_COLUMNS = ["score", "grade", "passed", "redline", "fatal_failed", "failed_items", "failed_hit_ids",
                   "classifier_probability", "classifier_model", "classifier_decision", "scorecard_version",
                   "agent_id", "team", "started_at"]
OUTCOME_COLUMNS = ["outcome", "outcome_reasons"]
HIT_COLUMNS = ["rules_version", "detector_version", "hit_id", "rule_id", "category", "severity", "error_class",
               "role", "start_s", "end_s", "match_type", "confidence", "matched_text", "context", "detail", "suspect"]
UTTERANCE_COLUMNS = ["utterance_index", "role", "start_s", "end_s", "text", "suspect", "suspect_reason", "pii_spans"]
SEGMENT_COLUMNS = ["role", "start_s", "end_s"]
GAP_COLUMNS = ["role", "start_s", "end_s", "reason"]


@dataclass(frozen=True)
class Slices:
    """A per-call table sorted by call position, with ``offsets[p]:offsets[p + 1]`` the rows of call ``p``."""

    table: pa.Table
    offsets: np.ndarray

    def rows(self, position: int) -> list[dict[str, Any]]:
        start, end = int(self.offsets[position]), int(self.offsets[position + 1])
        return self.table.slice(start, end - start).to_pylist()

    def rows_many(self, positions: Sequence[int] | np.ndarray) -> list[list[dict[str, Any]]]:
        """The rows of several calls with one ``take`` (a queue page)."""
        starts, ends = self.offsets[np.asarray(positions, np.int64)], self.offsets[np.asarray(positions, np.int64) + 1]
        if not len(starts):
            return []
        rows = self.table.take(pa.array(np.concatenate([np.arange(a, b) for a, b in zip(starts, ends,
                                                                                        strict=True)]))).to_pylist()
        out, at = [], 0
        for a, b in zip(starts, ends, strict=True):
            out.append(rows[at:at + b - a])
            at += b - a
        return out


@dataclass(frozen=True)
class Snapshot:
    """Current rows of a store in queue order (row ``p`` of ``calls`` is queue position ``p``)."""

    calls: pa.Table
    position: dict[str, int]
    hits: Slices
    utterances: Slices
    segments: Slices
    transcripts: pa.Array
    tier: np.ndarray
    outcome: np.ndarray  # int8 index into OUTCOMES per position
    call_date: np.ndarray
    team: tuple[np.ndarray, list[str]]
    agent: tuple[np.ndarray, list[str]]
    hit_index: dict[tuple[str, str], np.ndarray]
    failed_calls: int = 0
    signature: str = ""
    build_s: float = 0.0
    extra_features: dict[str, np.ndarray] = field(default_factory=dict)
    gaps: Slices | None = None

    @property
    def size(self) -> int:
        return self.calls.num_rows

    def call(self, position: int) -> dict[str, Any]:
        return self.calls.slice(position, 1).to_pylist()[0]

    def facet(self, kind: str) -> list[str]:
        """Values a filter can take: team, agent, rule, category or severity."""
        if kind == "team":
            return self.team[1]
        if kind == "agent":
            return self.agent[1]
        return sorted(value for k, value in self.hit_index if k == kind)


def _col(table: pa.Table, name: str, kind: pa.DataType) -> pa.ChunkedArray:
    if name in table.column_names:
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        return column.cast(kind) if column.type != kind else column
    return pa.chunked_array([pa.nulls(table.num_rows, kind)])


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded to their values (joins and sorts want plain types)."""
    return pa.table({name: (col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col)
                     for name, col in zip(table.column_names, table.columns, strict=True)})


def last_per_call(table: pa.Table) -> pa.Table:
    """Keep the last row of each call_id (the store's latest analysis when several are current)."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column("_i", pa.array(np.arange(table.num_rows)))
    last = indexed.group_by("call_id").aggregate([("_i", "max")])["_i_max"]
    return table.take(pc.sort_indices(last))


def derive_outcome(features: pa.Table) -> tuple[list[str], list[list[str]]]:
    """``outcome`` and ``outcome_reasons`` per feature row; derived when the columns are absent.

    Derivation (until the scoring stage writes them): not passed -> fail; red line -> needs_review; else pass.
    """
    if "outcome" in features.column_names and features["outcome"].null_count < features.num_rows:
        outcomes = [o or "pass" for o in _col(features, "outcome", pa.string()).to_pylist()]
        reasons = features["outcome_reasons"].to_pylist() if "outcome_reasons" in features.column_names \
            else [[] for _ in outcomes]
        return outcomes, [list(r or []) for r in reasons]
    passed = _col(features, "passed", pa.bool_()).to_pylist()
    redline = _col(features, "redline", pa.bool_()).to_pylist()
    outcomes, reasons = [], []
    for ok, red in zip(passed, redline, strict=True):
        if ok is False:
            outcomes.append("fail")
            reasons.append(["redline"] if red else [])
        elif red:
            outcomes.append("needs_review")
            reasons.append(["redline"])
        elif ok is None:
            outcomes.append("needs_listening")
            reasons.append(["not_scored"])
        else:
            outcomes.append("pass")
            reasons.append([])
    return outcomes, reasons


def priority_order(redline: np.ndarray, fatal: np.ndarray, score: np.ndarray, probability: np.ndarray,
                   outcome: np.ndarray, started_at: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Queue order and tier of each call: red line, fatal item, failed (low score), classifier, listening, review.

    Within a tier: lowest score first, then highest classifier probability, then the latest call.

    Args:
        redline, fatal: booleans per call (nulls as False).
        score, probability: floats per call, NaN when unknown.
        outcome: outcome strings per call. "failed" is the outcome fail: ``passed`` is false for a
            call that needs review or listening too, which is not a failed call.
        started_at: ISO start times (text sorts in time order).

    Returns:
        (order, tier): ``order`` the call indices in queue order; ``tier`` per call (index into :data:`TIERS`).
    """
    tier = np.full(len(score), TIERS.index("pass"), np.int8)
    flagged = np.nan_to_num(probability, nan=-1.0) >= CLASSIFIER_FLAG
    for name, mask in reversed([
        ("red line", redline), ("fatal item", fatal), ("failed", outcome == "fail"),
        ("classifier", flagged),
        ("needs listening", outcome == "needs_listening"), ("needs review", outcome != "pass"),
    ]):
        tier[mask] = TIERS.index(name)
    # "latest call first": rank the start times, then sort on the negated rank
    start_rank = np.unique(np.asarray(started_at, dtype=object).astype(str), return_inverse=True)[1]
    order = np.lexsort((-start_rank, -np.nan_to_num(probability, nan=-1.0), np.nan_to_num(score, nan=101.0), tier))
    return order, tier


def _slices(table: pa.Table, positions: dict[str, int], size: int) -> Slices:
    """Sort a per-call table by (call position, start_s) and compute each call's offsets."""
    pos = np.array([positions.get(c, -1) for c in table["call_id"].to_pylist()], np.int64)
    keep = np.flatnonzero(pos >= 0)
    table, pos = table.take(pa.array(keep)), pos[keep]
    start = table["start_s"].to_numpy(zero_copy_only=False) if table.num_rows else np.zeros(0)
    order = np.lexsort((start, pos))
    table = table.take(pa.array(order)).append_column("_pos", pa.array(pos[order]))
    offsets = np.searchsorted(pos[order], np.arange(size + 1), side="left")
    return Slices(table, offsets)


def _codes(values: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    labels, codes = np.unique(np.asarray([v or "" for v in values], dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int32), [str(x) for x in labels]


def build_snapshot(calls: pa.Table, features: pa.Table, hits: pa.Table, utterances: pa.Table,
                   segments: pa.Table, extra_feature_columns: Sequence[str] = (), signature: str = "",
                   gaps: pa.Table | None = None) -> Snapshot:
    """Arrange current rows for the review app (pure: no I/O).

    Args:
        calls, features, hits, utterances, segments, gaps: current rows as ``Store.read`` returns them
            (hits: ``Store.current_hits``); any subset of the columns listed in this module (no gaps: None).
        extra_feature_columns: feature columns kept per call (scorecard feature items).
        signature: the store version the tables were read at (:func:`store_version`).
    """
    began = time.perf_counter()
    calls = last_per_call(_plain(calls))
    ok = pc.equal(_col(calls, "status", pa.string()), "ok")
    failed_calls = int(calls.num_rows - pc.sum(pc.fill_null(ok, True)).as_py()) if calls.num_rows else 0
    calls = calls.filter(pc.fill_null(ok, True))
    features = last_per_call(_plain(features))
    feature_cols = [c for c in [*FEATURE_COLUMNS, *OUTCOME_COLUMNS, *extra_feature_columns]
                    if c in features.column_names]
    f_rows = {cid: i for i, cid in enumerate(features["call_id"].to_pylist())} if features.num_rows else {}
    f_index = np.array([f_rows.get(c, -1) for c in calls["call_id"].to_pylist()], np.int64)
    has_features = f_index >= 0
    take = pa.array(np.where(has_features, f_index, 0))
    outcomes, reasons = derive_outcome(features) if features.num_rows else ([], [])

    def feature(name: str, kind: pa.DataType) -> pa.Array:
        if not features.num_rows or name not in features.column_names:
            return pa.nulls(calls.num_rows, kind)
        values = _col(features, name, kind).take(take).combine_chunks()
        return pc.if_else(pa.array(has_features), values, pa.nulls(len(values), kind))

    outcome = np.array([outcomes[i] if i >= 0 else "needs_listening" for i in f_index], dtype=object)
    outcome_reasons = [reasons[i] if i >= 0 else ["no_features"] for i in f_index]
    merged: dict[str, pa.Array] = {
        "call_id": calls["call_id"].combine_chunks(),
        "call_date": _col(calls, "call_date", pa.string()).combine_chunks(),
    }
    for name in CALL_COLUMNS:
        if name in calls.column_names:
            merged[name] = calls[name].combine_chunks()
    for name in ("config_hash", "asr_model", "rules_version"):
        if name in calls.column_names:
            merged[name] = _col(calls, name, pa.string()).combine_chunks()
    for name in ("agent_id", "team", "started_at"):  # the manifest's values, else the feature row's
        merged[name] = pc.coalesce(_col(calls, name, pa.string()).combine_chunks(), feature(name, pa.string()))
    for name in feature_cols:
        if name not in merged and name not in OUTCOME_COLUMNS:
            merged[name] = feature(name, features.schema.field(name).type)
    merged["outcome"] = pa.array(outcome.tolist(), pa.string())
    merged["outcome_reasons"] = pa.array(outcome_reasons, pa.list_(pa.string()))
    table = pa.table(merged)

    def np_bool(name: str, default: bool) -> np.ndarray:
        return np.asarray(pc.fill_null(_col(table, name, pa.bool_()), default).to_numpy(zero_copy_only=False), bool)

    def np_float(name: str) -> np.ndarray:
        return np.asarray(pc.fill_null(_col(table, name, pa.float64()), np.nan).to_numpy(zero_copy_only=False))

    order, tier = priority_order(np_bool("redline", False), np_bool("fatal_failed", False), np_float("score"),
                                 np_float("classifier_probability"), outcome, table["started_at"].to_pylist())
    table = table.take(pa.array(order)).append_column("tier", pa.array(tier[order]))
    call_ids = table["call_id"].to_pylist()
    positions = {c: i for i, c in enumerate(call_ids)}
    size = len(call_ids)
    hits = _slices(_plain(hits), positions, size)
    utterances = _slices(_plain(utterances), positions, size)
    segments = _slices(_plain(segments), positions, size)
    gap_slices = _slices(_plain(gaps), positions, size) if gaps is not None else None
    hit_index: dict[tuple[str, str], np.ndarray] = {}
    if hits.table.num_rows:
        pos = hits.table["_pos"].to_numpy()
        for kind in ("rule_id", "category", "severity"):
            values = np.asarray(hits.table[kind].to_pylist(), dtype=object)
            for value in np.unique(values.astype(str)):
                hit_index[(kind.removesuffix("_id"), str(value))] = np.unique(pos[values == value])
    return Snapshot(
        calls=table, position=positions, hits=hits, utterances=utterances, segments=segments,
        transcripts=_transcripts(utterances, size), tier=tier[order], outcome=_outcome_codes(outcome[order]),
        call_date=np.asarray(table["call_date"].to_pylist(), dtype=object).astype(str),
        team=_codes(table["team"].to_pylist()), agent=_codes(table["agent_id"].to_pylist()), hit_index=hit_index,
        failed_calls=failed_calls, signature=signature, build_s=time.perf_counter() - began,
        extra_features={c: np.asarray(pc.fill_null(_col(table, c, pa.float64()), np.nan).to_numpy(
            zero_copy_only=False)) for c in extra_feature_columns if c in table.column_names},
        gaps=gap_slices,
    )


def _outcome_codes(outcomes: np.ndarray) -> np.ndarray:
    """Outcome strings as int8 indexes into :data:`OUTCOMES`; an unknown value counts as needs_review."""
    codes = np.full(len(outcomes), OUTCOMES.index("needs_review"), np.int8)
    for index, name in enumerate(OUTCOMES):
        codes[outcomes == name] = index
    return codes


def _transcripts(utterances: Slices, size: int) -> pa.Array:
    """Each call's utterance texts joined by newlines, in call position order (for free-text search)."""
    table = utterances.table
    if not table.num_rows:
        return pa.array([""] * size, pa.large_string())
    grouped = table.select(["_pos", "text"]).group_by("_pos", use_threads=False).aggregate([("text", "list")])
    joined = pc.binary_join(grouped["text_list"], "\n").cast(pa.large_string()).to_pylist()
    texts = [""] * size
    for pos, text in zip(grouped["_pos"].to_pylist(), joined, strict=True):
        texts[pos] = text or ""
    return pa.array(texts, pa.large_string())


def _read(store: Any, name: str, wanted: Sequence[str]) -> pa.Table:
    """``Store.read`` with only the wanted columns the table has (older stores lack newer columns)."""
    from pipeline.store import table

    names = set(table(name).schema.names)
    return store.read(name, columns=[c for c in wanted if c in names])


def store_version(store_root: str | Path) -> str:
    """The store's table versions as one string: it changes whenever anything is committed."""
    from pipeline.store import Store

    return repr(sorted(Store(store_root).table_versions().items()))


def load_snapshot(store_root: str | Path, extra_feature_columns: Sequence[str] = ()) -> Snapshot:
    """Read a store's current rows (``Store.read`` only) and build the snapshot.

    Raises:
        StoreError: ``store_root`` is not a store or cannot be read.
    """
    from pipeline.store import Store

    store = Store(store_root)
    signature = repr(sorted(store.table_versions().items()))
    calls = _read(store, "calls", CALL_COLUMNS)
    features = _read(store, "features", [*FEATURE_COLUMNS, *OUTCOME_COLUMNS, *extra_feature_columns])
    hits = _read(store, "hits", HIT_COLUMNS)
    utterances = _read(store, "utterances", UTTERANCE_COLUMNS)
    segments = _read(store, "segments", SEGMENT_COLUMNS)
    gaps = _read(store, "gaps", GAP_COLUMNS)
    return build_snapshot(calls, features, hits, utterances, segments, extra_feature_columns, signature, gaps)


__all__ = ["OUTCOMES", "TIERS", "Slices", "Snapshot", "build_snapshot", "derive_outcome", "last_per_call",
           "load_snapshot", "priority_order", "store_version"]
