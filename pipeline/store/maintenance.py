"""Keep a store small and current: ``callqa compact`` and ``callqa store upgrade``.

:func:`compact` removes the rows no current result points to (superseded by
``--force``, ``rescore`` or ``score``, or left by a killed writer), keeping
those younger than ``keep_history_days``, rewrites small files into large ones
and deletes the files no table version within the history needs. It is a Delta
transaction per partition: readers keep reading, writers keep writing (a
partition a writer changed meanwhile is redone). Rows younger than
:data:`MIN_AGE_S` are never removed: a writer may have appended them and not yet
moved its pointers.

:func:`upgrade_store` converts a store written by callqa 0.1 (ledger format)
in place, keeping the old files beside it.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from pipeline.errors import StoreError
from pipeline.store.delta import CallResult, Store, new_result_id, result_time_ms
from pipeline.store.legacy import CALL_KEY, LegacyStore, split_rules_version
from pipeline.store.location import Location, is_uri
from pipeline.store.rows import features_row
from pipeline.store.tables import CALLS, FEATURES, TABLES, Table
from pipeline.versions import NONE, Versions

#: Rows younger than this are never compacted away (a writer may not have moved its pointers yet).
MIN_AGE_S = 600.0


@dataclass(frozen=True)
class CompactReport:
    """Bytes and rows before and after ``compact``."""

    bytes_before: int
    bytes_after: int
    rows_before: dict[str, int]
    rows_after: dict[str, int]


def store_bytes(store: Store | str | Path) -> int:
    """Bytes of every file of the store's tables (``store`` or the store at that path)."""
    location = store.location if isinstance(store, Store) else Location(store)
    return sum(location.bytes_under(spec.name) for spec in TABLES)


def compact(store: Store, keep_history_days: float = 0.0, progress: Callable[[str], None] | None = None,
            min_age_s: float = MIN_AGE_S, exclusive: bool = False) -> CompactReport:
    """Rewrite every table to its current rows plus the history younger than ``keep_history_days``.

    Args:
        store: the store.
        keep_history_days: keep superseded results (and the files of table
            versions) younger than this.
        progress: told what each rewritten partition lost.
        min_age_s: never remove rows younger than this (a writer may not have
            moved its pointers to them yet); lower only when no writer runs.
        exclusive: the caller's word that no other process rewrites the store's
            files meanwhile; needed on an object store, which has no lock for it
            (see :meth:`Store.maintenance_lock`).

    Raises:
        StoreError: the store cannot be written, or it is on an object store and ``exclusive`` is not set.
    """
    if store.remote and not exclusive:
        raise StoreError(store.name, "an object store has no lock to keep two compactions apart (two at once "
                         "would duplicate rows): make sure no other `callqa compact` runs on this store and "
                         "give --exclusive")
    say = progress or (lambda _message: None)
    keep_after_ms = int((time.time() - max(keep_history_days * 86400.0, min_age_s)) * 1000)
    before = store_bytes(store)
    rows_before: dict[str, int] = {}
    rows_after: dict[str, int] = {}
    with store.maintenance_lock(exclusive=exclusive):  # one rewrite at a time (see Store.maintenance_lock)
        for spec in TABLES:
            if spec is CALLS:
                continue
            rows_before[spec.name], rows_after[spec.name] = _compact_table(store, spec, keep_after_ms, say)
    for name in store.optimize(exclusive=exclusive):
        say(f"{name}: busy with other writers, small files left for the next compact")
    rows_before["calls"] = rows_after["calls"] = store.read("calls", columns=[]).num_rows
    # Files a compaction or a commit removed stay on disk at least min_age_s, so a
    # snapshot a reader took just before (``Store.snapshot``) can still be read.
    retention_h = math.ceil(max(keep_history_days * 86400.0, min_age_s) / 3600.0)
    for spec in TABLES:
        table = store.delta(spec.name)
        table.vacuum(retention_hours=retention_h, dry_run=False, enforce_retention_duration=False)
        table.cleanup_metadata()
    return CompactReport(before, store_bytes(store), rows_before, rows_after)


def _compact_table(store: Store, spec: Table, keep_after_ms: int, say: Callable[[str], None]) -> tuple[int, int]:
    """Delete one table's rows that no current result points to; (rows before, rows after).

    Only rows named by their result id are deleted (``DELETE ... WHERE id IN
    (...)``), never "everything but the current": a writer appending meanwhile
    adds rows with new ids, which a delete of other ids cannot touch.
    """
    assert spec.pointer is not None
    pointer = spec.pointer
    data = store.delta(spec.name).to_pyarrow_dataset().to_table(columns=["call_date", pointer])
    data = data.cast(_plain(data.schema))
    rows_before = data.num_rows
    current = store.read("calls", columns=[pointer])[pointer].drop_null()
    dead = data.filter(pc.invert(pc.is_in(data[pointer], value_set=current)))
    removed = 0
    for date in sorted(set(dead["call_date"].to_pylist())):
        ids = sorted({i for i in dead.filter(pc.equal(dead["call_date"], date))[pointer].to_pylist()
                      if result_time_ms(i) < keep_after_ms})
        for start in range(0, len(ids), 2000):  # predicate size stays reasonable
            chunk = ids[start:start + 2000]
            in_list = ", ".join(f"'{i}'" for i in chunk)
            for _attempt in range(20):
                try:
                    metrics = store.delta(spec.name).delete(f"call_date = '{date}' AND {pointer} IN ({in_list})")
                    removed += int(metrics.get("num_deleted_rows", 0))
                    break
                except CommitFailedError:
                    continue  # another writer rewrote these files meanwhile: delete again on the new version
            else:
                raise StoreError(str(store.path(spec.name)), f"partition {date} kept changing; compact again later")
        say(f"{spec.name} {date}: {len(ids)} superseded results removed")
    return rows_before, rows_before - removed


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in schema])


# -- upgrade from callqa 0.1 ---------------------------------------------------------------
def upgrade_store(root: str | Path, progress: Callable[[str], None] | None = None) -> Path:
    """Convert a callqa 0.1 store in place; the old files are kept in ``ROOT.v1-backup``.

    The current rows (as callqa 0.1 read them: the latest commit per call; the
    hits behind each call's current feature row) become the new store's rows,
    with the typed version columns filled from 0.1's joined ``rules_version``
    and ``analysis_version`` ``0.1``. Stored scores are kept; their
    ``outcome`` is ``pass`` or ``fail`` from ``passed`` (``callqa score``
    recomputes outcomes with the scorecard's current rules).

    Returns:
        Where the old store was moved.

    Raises:
        StoreError: ``root`` is not a 0.1 store, or the new store cannot be written.
    """
    say = progress or (lambda _message: None)
    if is_uri(root):
        raise StoreError(str(root), "callqa 0.1 wrote stores to local directories only: upgrade one there")
    source = Path(root)
    if not (source / "_commits").is_dir():
        raise StoreError(str(source), "not a callqa 0.1 store (no _commits/ folder)")
    target = source.with_name(source.name + ".upgrading")
    backup = source.with_name(source.name + ".v1-backup")
    if backup.exists():
        raise StoreError(str(backup), "already exists: move it away first")
    shutil.rmtree(target, ignore_errors=True)
    legacy = LegacyStore(source)
    results = _legacy_results(legacy)
    store = Store(target, create=True)
    for start in range(0, len(results), 500):
        store.commit(results[start:start + 500], kind="run", metadata={"upgraded_from": "callqa-0.1"})
        say(f"converted {min(start + 500, len(results))}/{len(results)} calls")
    for extra in ("_review", "models"):
        if (source / extra).exists():
            shutil.copytree(source / extra, target / extra)
    source.rename(backup)
    target.rename(source)
    return backup


def _split_versions(joined: str | None, model_id: str, config_hash: str) -> Versions:
    parts = split_rules_version(joined or "")
    timing = next((p for p in parts if p.startswith("timing-")), NONE)
    redline = next((p for p in parts if p.startswith("redline_text@")), NONE)
    rules = next((p for p in parts if p not in (timing, redline)), NONE)
    return Versions(config_hash=config_hash, analysis_version="0.1", asr_model=model_id, rules_version=rules,
                    timing_version=timing, redline_model=redline)


def _legacy_results(legacy: LegacyStore) -> list[CallResult]:
    """One :class:`CallResult` per call: 0.1's current rows of its latest commit."""
    seqs = legacy._commit_seqs()
    calls = legacy.read("calls").to_pylist()
    latest: dict[str, dict[str, Any]] = {}
    for row in calls:
        if row["call_id"] not in latest or seqs[row["chunk_id"]] > seqs[latest[row["call_id"]]["chunk_id"]]:
            latest[row["call_id"]] = row

    def grouped(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(tuple(r[k] for k in CALL_KEY), []).append(r)
        return out

    tables = {name: grouped(legacy.read(name).to_pylist()) for name in ("segments", "utterances", "features",
                                                                         "errors")}
    hits = grouped(legacy.current_hits().to_pylist())
    results = []
    for call in latest.values():
        key = tuple(call[k] for k in CALL_KEY)
        features = tables["features"].get(key, [])
        versions = _split_versions(features[0]["rules_version"] if features else call["rules_version"],
                                   call["model_id"], call["config_hash"])
        ids = {"transcript_id": new_result_id(), "analysis_id": new_result_id(), "score_id": new_result_id()}
        base = {"call_id": call["call_id"], "call_date": call["call_date"], **versions.columns()}
        drop = {"chunk_id", "schema_version", "model_id", "rules_version"}
        new_call = {**{k: v for k, v in call.items() if k not in drop}, **base, **ids}
        rows: dict[str, list[dict[str, Any]]] = {
            "segments": [{**_without(r, drop), **base, "transcript_id": ids["transcript_id"]}
                         for r in tables["segments"].get(key, [])],
            "utterances": [{**_without(r, drop), **base, "transcript_id": ids["transcript_id"]}
                           for r in tables["utterances"].get(key, [])],
            "hits": [{**_without(r, drop), **base, "analysis_id": ids["analysis_id"],
                      "detector_version": r["rules_version"]} for r in hits.get(key, [])],
            "errors": [{**_without(r, drop), **base, "analysis_id": ids["analysis_id"]}
                       for r in tables["errors"].get(key, [])],
            "features": [_upgraded_features(f, base, ids["score_id"]) for f in features[-1:]],
        }
        results.append(CallResult(new_call, rows))
    return results


def _without(row: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in drop}


def _upgraded_features(row: dict[str, Any], base: dict[str, Any], score_id: str) -> dict[str, Any]:
    """A 0.1 feature row in today's columns (columns 0.1 did not have are null)."""
    names = set(FEATURES.schema.names)
    out = {k: v for k, v in row.items() if k in names and k not in ("schema_version",)}
    passed = bool(row.get("passed"))
    out.update(base, score_id=score_id, features_schema_version=1,
               outcome="pass" if passed else "fail", outcome_reasons=[] if passed else ["scorecard_fail"])
    return features_row(out)


__all__ = ["MIN_AGE_S", "CompactReport", "compact", "store_bytes", "upgrade_store"]
