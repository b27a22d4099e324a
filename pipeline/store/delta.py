"""The store: a directory of Delta Lake tables that any engine reads, safe with many writers.

Layout::

    STORE/
      _callqa_store.json    marks the directory as a callqa store (format, created_at)
      calls/ segments/ utterances/ hits/ errors/ features/    Delta tables, partitioned by call_date
      _state/               runs (what each run planned) and the store's scoring state
      _review/ models/      the review app's database, trained classifiers

STORE is a directory, or a prefix on an object store (``s3://bucket/prefix``;
:mod:`pipeline.store.location`), with the same tables and transactions: on S3
delta-rs creates each table version's log file with a conditional PUT, so two
writers can never both commit the same version. An object store has no
``flock``, so files are only rewritten (merged, compacted) when the caller
vouches that nobody else rewrites them (:meth:`Store.maintenance_lock`).

**Transactions.** A commit appends each table's new rows (their own Delta
commits, invisible to readers: no pointer names them yet), then MERGEs the
calls' new rows into ``calls`` in one Delta transaction that moves their
result pointers (:mod:`pipeline.store.tables`). Readers that join a table with
``calls`` on its pointer therefore see every call either before or after the
commit. Two writers that touch the same calls at once are serialised by
Delta's optimistic concurrency: the loser's MERGE fails and is retried on the
new table version; appends never conflict. A kill at any moment leaves at
most unreferenced rows, which readers never see and ``compact`` removes.

Result ids start with their creation time (hex milliseconds), so ``compact``
can keep recent history and never removes rows a writer appended moments ago
and has not pointed to yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from pipeline.errors import StoreError
from pipeline.store.location import Location, reason
from pipeline.store.tables import CALLS, POINTERS, SCHEMA_VERSION, TABLES, Table, table

MARKER = "_callqa_store.json"
FORMAT = "callqa-delta"
Kind = Literal["run", "rescore", "score"]
#: Which pointers each kind of commit moves, and the pointer it expects unchanged.
MOVES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "run": (POINTERS, None),
    "rescore": (("analysis_id", "score_id"), "transcript_id"),
    "score": (("score_id",), "analysis_id"),
}
#: How long a writer may keep losing the race for the same calls before it gives up.
MAX_MERGE_WAIT_S = 120.0


def new_result_id() -> str:
    """A unique result id that starts with its creation time (12 hex digits of Unix milliseconds)."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:12]}"


def result_time_ms(result_id: str) -> int:
    """When a result id was made (Unix milliseconds)."""
    return int(result_id[:12], 16)


@dataclass
class CallResult:
    """One call's new rows: its ``calls`` row and the rows of the tables it replaces.

    ``call`` must hold the pointer(s) this kind of commit moves and ``call_id``
    and ``call_date``; each row in ``rows`` carries its table's pointer id.
    ``expect`` is the pointer value the commit requires to be still current
    (``rescore`` was computed from that transcript; ``score`` from that analysis).
    """

    call: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expect: str | None = None


@dataclass(frozen=True)
class CommitReport:
    """What one commit did."""

    calls: int
    rows: dict[str, int]
    skipped: tuple[str, ...]
    attempts: int


class Store:
    """Read and write a callqa store (see the module docstring).

    Args:
        root: the store directory, or its URI on an object store (``s3://bucket/prefix``,
            see :mod:`pipeline.store.location` and ``docs/store.md``).
        create: create an empty store if ``root`` does not exist or is empty.
        storage_options: object-store options (endpoint, region, credentials...) on top of
            the environment's; ignored for a local directory.

    Raises:
        StoreError: ``root`` is not a callqa store (or a store of callqa 0.1,
            which ``callqa store upgrade`` converts), cannot be created, or its
            object store cannot be reached (bad URI, credentials, endpoint).
    """

    def __init__(self, root: str | Path, *, create: bool = False,
                 storage_options: Mapping[str, str] | None = None) -> None:
        self.location = Location(root, storage_options)
        #: The store directory (a Path), or its URI (a str) on an object store.
        self.root: Path | str = self.location.path if self.location.path is not None else self.location.uri
        #: How messages name the store.
        self.name = self.location.name
        self._open: dict[str, DeltaTable] = {}
        #: The ``calls`` version reads are pinned to (a :meth:`snapshot`), or None for the latest.
        self.calls_version: int | None = None
        try:
            self._open_or_create(create)
        except (OSError, ValueError) as exc:  # an object store that cannot be reached: URI, credentials, endpoint
            if not self.location.remote:
                raise
            raise StoreError(self.name, f"cannot reach the store: {reason(exc)}") from None

    def _open_or_create(self, create: bool) -> None:
        local = self.location.path
        if self.location.is_file(MARKER):
            self._check_marker()
            self._add_new_tables()
        elif local is not None and (local / "_commits").is_dir():
            raise StoreError(self.name, "a store of callqa 0.1 (ledger format): convert it once with "
                             f"`callqa store upgrade {self.name}`")
        elif create and _creation_cut_short(self.location.entries()):
            self._create()
        elif self.location.entries() is None:
            raise StoreError(self.name, "no store here (run `callqa run INPUT --out STORE` first)")
        else:
            raise StoreError(self.name, f"not a callqa store (no {MARKER})")

    @property
    def remote(self) -> bool:
        """Whether the store lives on an object store (no file locks there: see :meth:`maintenance_lock`)."""
        return self.location.remote

    # -- creation ------------------------------------------------------------------
    def _check_marker(self) -> None:
        try:
            info = json.loads(self.location.read_text(MARKER))
        except (OSError, ValueError) as exc:
            raise StoreError(self.location.join(MARKER), f"unreadable store marker: {exc}") from None
        if info.get("format") != FORMAT or int(info.get("schema_version", 0)) > SCHEMA_VERSION:
            raise StoreError(self.name, f"store format {info.get('format')} v{info.get('schema_version')} is "
                             f"newer than this callqa understands ({FORMAT} v{SCHEMA_VERSION}): upgrade callqa")

    def _create(self) -> None:
        try:
            if self.location.path is not None:
                self.location.path.mkdir(parents=True, exist_ok=True)
            for spec in TABLES:
                self._ensure_table(spec)
            self.location.write_json(MARKER, {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                                              "created_at": _now().isoformat()})
        except OSError as exc:
            raise StoreError(self.name, f"cannot create the store: {exc.strerror or reason(exc)}") from None

    def _add_new_tables(self) -> None:
        """Create the tables a later callqa added (e.g. ``gaps``); a read-only store is left as it is."""
        for spec in TABLES:
            if not self._is_table(spec.name):
                try:
                    self._ensure_table(spec)
                except (StoreError, OSError, DeltaError):
                    pass  # reading that table says it is missing; writing fails with the reason

    def _is_table(self, name: str) -> bool:
        return DeltaTable.is_deltatable(self.path(name), storage_options=self.location.delta_options)

    def _ensure_table(self, spec: Table) -> None:
        path = self.path(spec.name)
        if self._is_table(spec.name):
            return
        try:
            DeltaTable.create(path, spec.storage_schema, partition_by=["call_date"], mode="ignore",
                              configuration={"delta.checkpointInterval": "50"},
                              storage_options=self.location.delta_options)
        except DeltaError as exc:  # another writer created it first
            if not self._is_table(spec.name):
                raise StoreError(path, f"cannot create table: {exc}") from None

    def path(self, name: str) -> str:
        """Directory (or URI) of table ``name``."""
        return self.location.join(name)

    def delta(self, name: str) -> DeltaTable:
        """The Delta table ``name`` at its latest version (opened once, then refreshed incrementally).

        Raises:
            StoreError: the table is missing or unreadable.
        """
        try:
            cached = self._open.get(name)
            if cached is not None:
                cached.update_incremental()
                return cached
            self._open[name] = DeltaTable(self.path(name), storage_options=self.location.delta_options)
            return self._open[name]
        except TableNotFoundError:
            raise StoreError(self.path(name), "table missing from the store") from None
        except (DeltaError, OSError) as exc:
            raise StoreError(self.path(name), f"cannot read table: {exc}") from None

    # -- writing -------------------------------------------------------------------
    def commit(self, results: Sequence[CallResult], kind: Kind = "run",
               metadata: Mapping[str, Any] | None = None) -> CommitReport:
        """Replace the given calls' results in every table, atomically for readers.

        Args:
            results: one :class:`CallResult` per call (each call at most once).
            kind: ``run`` (a new decoding: every pointer moves), ``rescore`` (new
                hits and features from the stored transcript) or ``score`` (new
                features from the stored hits).
            metadata: recorded in the Delta commit of ``calls`` (e.g. the run id).

        Returns:
            What was committed; ``skipped`` lists calls whose ``expect``ed pointer
            had moved meanwhile (another writer redid them first).

        Raises:
            StoreError: the disk is full or not writable, or other writers kept
                winning for :data:`MAX_MERGE_WAIT_S`. Nothing of this commit is
                visible then; what was committed before stays.
        """
        if not results:
            return CommitReport(0, {}, (), 0)
        moves, expected = MOVES[kind]
        calls = [dict(r.call) for r in results]
        if expected is not None:
            for call, result in zip(calls, results, strict=True):
                call[expected] = result.expect
        tables = {spec.name: pa.Table.from_pylist([row for r in results for row in r.rows.get(spec.name, ())],
                                                  schema=spec.storage_schema)
                  for spec in TABLES if spec is not CALLS and spec.pointer in moves}
        return self.commit_tables(pa.Table.from_pylist(calls, schema=CALLS.storage_schema), tables, kind, metadata)

    def commit_tables(self, calls: pa.Table, tables: Mapping[str, pa.Table], kind: Kind = "run",
                      metadata: Mapping[str, Any] | None = None) -> CommitReport:
        """:meth:`commit` for rows already in Arrow tables (the columnar path; same guarantees).

        ``calls`` has the ``calls`` columns (for ``rescore``/``score`` at least
        ``call_id``, ``call_date``, the pointers that move and the expected one).
        """
        ids = calls["call_id"].to_pylist()
        if len(set(ids)) != len(ids):
            raise ValueError("a commit may hold each call once")
        moves, expected = MOVES[kind]
        counts: dict[str, int] = {}
        try:
            for spec in TABLES:
                data = tables.get(spec.name)
                if spec is CALLS or data is None or not data.num_rows:
                    continue
                if spec.pointer not in moves:
                    raise ValueError(f"a {kind} commit does not replace {spec.name}")
                self._append(spec, data)
                counts[spec.name] = data.num_rows
            attempts = self._merge_calls(self._stamped(calls), kind, moves, expected, dict(metadata or {}))
        except OSError as exc:
            raise StoreError(self.name, f"cannot write results ({exc.strerror or exc}); nothing of this "
                             "commit became visible, re-run to resume") from None
        except DeltaError as exc:
            if _is_disk_error(exc):
                raise StoreError(self.name, f"cannot write results ({exc}); nothing of this commit became "
                                 "visible, re-run to resume") from None
            raise
        skipped: tuple[str, ...] = ()
        if expected is not None:
            current = self.read("calls", columns=[expected], call_ids=ids)
            now_pointing = dict(zip(current["call_id"].to_pylist(), current[expected].to_pylist(), strict=True))
            skipped = tuple(c for c, e in zip(ids, calls[expected].to_pylist(), strict=True)
                            if now_pointing.get(c) != e)
        counts["calls"] = len(ids) - len(skipped)
        return CommitReport(len(ids) - len(skipped), counts, skipped, attempts)

    @staticmethod
    def _stamped(calls: pa.Table) -> pa.Table:
        """``calls`` with this commit's time and the store's schema version."""
        n = calls.num_rows
        now = pa.array([_now()] * n, CALLS.storage_schema.field("committed_at").type)
        version = pa.array([SCHEMA_VERSION] * n, pa.int16())
        for name, column in (("committed_at", now), ("schema_version", version)):
            if name in calls.column_names:
                calls = calls.set_column(calls.column_names.index(name), name, column)
            else:
                calls = calls.append_column(name, column)
        return calls

    def _append(self, spec: Table, data: pa.Table) -> None:
        """Append rows (invisible until the pointers move); retried when ``compact`` rewrote the table meanwhile.

        delta-rs treats an append as having read the table, so a concurrent
        delete (``compact``) fails it; the rows are simply written again (the
        files of the failed attempt are never referenced and vacuum removes them).
        """
        version = pa.array([SCHEMA_VERSION] * data.num_rows, pa.int16())
        data = data.set_column(data.column_names.index("schema_version"), "schema_version", version)
        data = data.cast(spec.storage_schema)
        deadline = time.monotonic() + MAX_MERGE_WAIT_S
        attempt = 0
        while True:
            attempt += 1
            try:
                # schema_mode="merge": columns added by a later callqa (e.g. coverage features) join the table
                write_deltalake(self.path(spec.name), data, mode="append", partition_by=["call_date"],
                                schema_mode="merge", commit_properties=CommitProperties(max_commit_retries=100),
                                storage_options=self.location.delta_options)
                return
            except CommitFailedError as exc:
                if time.monotonic() > deadline:
                    raise StoreError(self.path(spec.name), f"cannot append: other writers kept changing the "
                                     f"table for {MAX_MERGE_WAIT_S:.0f} s ({exc})") from None
                time.sleep(min(1.0, 0.02 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))

    def _merge_calls(self, source: pa.Table, kind: str, moves: tuple[str, ...], expected: str | None,
                     metadata: dict[str, Any]) -> int:
        """MERGE the calls rows (the commit point), retrying while other writers win the race."""
        if kind != "run":  # only the pointers, the versions they carry and the commit time change
            keep = ["call_id", "call_date", *moves, "committed_at", *self._version_columns(kind)]
            if expected is not None:
                keep.append(expected)
            source = source.select(list(dict.fromkeys(keep)))
        ids = source["call_id"].to_pylist()
        dates = set(source["call_date"].to_pylist()) | set(self._dates_of(ids))
        date_list = ", ".join(_sql_string(d) for d in sorted(dates))
        predicate = f"t.call_id = s.call_id AND t.call_date IN ({date_list})"
        deadline = time.monotonic() + MAX_MERGE_WAIT_S
        attempt = 0
        while True:
            attempt += 1
            merger = self.delta("calls").merge(
                source, predicate, source_alias="s", target_alias="t",
                commit_properties=CommitProperties(custom_metadata={"callqa_kind": kind, **metadata}))
            if kind == "run":
                merger = merger.when_matched_update_all().when_not_matched_insert_all()
            else:
                updates = {c: f"s.{c}" for c in source.column_names if c not in ("call_id", "call_date", expected)}
                merger = merger.when_matched_update(updates, predicate=f"t.{expected} = s.{expected}")
            try:
                merger.execute()
                return attempt
            except CommitFailedError as exc:
                if time.monotonic() > deadline:
                    raise StoreError(self.name, f"other writers kept committing to the same calls for "
                                     f"{MAX_MERGE_WAIT_S:.0f} s ({exc}); nothing of this commit is visible, "
                                     "run again to resume") from None
                time.sleep(min(2.0, 0.02 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.5))

    @staticmethod
    def _version_columns(kind: str) -> tuple[str, ...]:
        return ("rules_version", "redline_model") if kind == "rescore" else ()

    def _dates_of(self, call_ids: Sequence[str]) -> list[str]:
        """The partitions the current rows of ``call_ids`` live in."""
        found = self.read("calls", columns=[], call_ids=call_ids)
        return found["call_date"].to_pylist()

    # -- reading -------------------------------------------------------------------
    def read(self, name: str, columns: Sequence[str] | None = None, *, call_ids: Iterable[str] | None = None,
             dates: Iterable[str] | None = None) -> pa.Table:
        """The current rows of table ``name``.

        Args:
            name: calls, segments, utterances, hits, errors or features.
            columns: these columns (``call_id`` and ``call_date`` always come too).
            call_ids: only these calls.
            dates: only these call dates (YYYY-MM-DD).

        Raises:
            StoreError: the table is missing or unreadable; KeyError for an unknown table.
        """
        spec = table(name)
        for attempt in range(3):  # a file compacted away under us: read the new version
            try:
                return self._read(spec, columns, call_ids, dates)
            except (FileNotFoundError, OSError) as exc:
                if attempt == 2:
                    raise StoreError(self.path(name), f"cannot read: {exc}") from None
        raise AssertionError("unreachable")

    def _read(self, spec: Table, columns: Sequence[str] | None, call_ids: Iterable[str] | None,
              dates: Iterable[str] | None) -> pa.Table:
        wanted = None if columns is None else list(dict.fromkeys(["call_id", "call_date", *columns]))
        ids = None if call_ids is None else pa.array(sorted(set(call_ids)), pa.string())
        by_date = None if dates is None else ds.field("call_date").isin(pa.array(sorted(set(dates)), pa.string()))
        calls = _scan(self._calls(), None if spec is CALLS else ["call_id", spec.pointer], by_date,
                      location=self.location)
        if ids is not None:
            calls = calls.filter(pc.is_in(calls["call_id"], value_set=ids))
        if spec is CALLS:
            return calls if wanted is None else calls.select(wanted)
        assert spec.pointer is not None
        scan_columns = None if wanted is None else list(dict.fromkeys([*wanted, spec.pointer]))
        pointers = calls[spec.pointer].drop_null()
        delta = self.delta(spec.name)
        data = _scan(delta, scan_columns, by_date, _files_holding(delta, spec.pointer, pointers), self.location)
        current = pc.is_in(data[spec.pointer], value_set=pointers)
        if not pc.all(current).as_py():  # superseded or unfinished rows: leave them out (skip the copy otherwise)
            data = data.filter(current)
        return data if wanted is None else data.select(wanted)

    def optimize(self, dates: Iterable[str] | None = None, attempts: int = 5, *, exclusive: bool = False) -> list[str]:
        """Merge each table's small files (one commit writes a few) into large ones, in ``dates`` or everywhere.

        Readers and writers go on meanwhile; a table other writers keep changing
        is left for the next time. On an object store, where no lock serialises
        rewrites (see :meth:`maintenance_lock`), nothing is merged unless
        ``exclusive`` says no other process rewrites the store's files meanwhile.

        Returns:
            The tables left as they were because of other writers (every table when nothing was merged).
        """
        filters = None if dates is None else [("call_date", "in", sorted(set(dates)))]
        with self.maintenance_lock(wait=False, exclusive=exclusive) as held:
            if not held:  # another process is merging or compacting: its merge covers these files too
                return [spec.name for spec in TABLES]
            busy = []
            for spec in TABLES:
                for _attempt in range(attempts):
                    try:
                        self.delta(spec.name).optimize.compact(partition_filters=filters)
                        break
                    except CommitFailedError:
                        time.sleep(0.2)
                else:
                    busy.append(spec.name)
            return busy

    @contextlib.contextmanager
    def maintenance_lock(self, wait: bool = True, exclusive: bool = False) -> Iterator[bool]:
        """Hold the store's lock for rewriting files (merging, compaction); yields whether it is held.

        Delta's optimistic concurrency lets two rewrites that change no data
        both commit: delta-rs 1.6 accepts two concurrent ``optimize.compact``
        runs that each remove the same small files and add their own merged
        copy, so every row in them appears twice (three runs that ended at
        once left every call with three current feature rows). Rewrites are
        therefore serialised by an advisory lock (``flock``) on
        ``_state/maintenance.lock``; appends and pointer moves do not take it.
        With ``wait=False`` a held lock yields False at once.

        An object store has no ``flock``. There the lock yields ``exclusive``:
        the caller's word that no other process rewrites this store's files
        meanwhile (``callqa compact --exclusive``). Without it no rewrite is
        made: runs, ``rescore`` and ``score`` leave their small files for such
        a compaction, and ``compact`` refuses.
        """
        if self.location.path is None:
            yield exclusive
            return
        path = self.location.path / "_state" / "maintenance.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
        except OSError:  # a full or read-only disk: no rewrite can be made safe, so none is made
            yield False
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def snapshot(self) -> Store:
        """A view of the store as it is now: every read through it sees the same commits.

        One :meth:`read` is always consistent; reading several tables (a call's
        hits and its features, a report) through a snapshot keeps them consistent
        with each other while writers go on. A snapshot stays valid until
        ``compact`` removes the rows it points to (never within ``MIN_AGE_S``).
        """
        view = Store.__new__(Store)
        view.location, view.root, view.name, view._open = self.location, self.root, self.name, {}
        view.calls_version = self.delta("calls").version()
        return view

    def _calls(self) -> DeltaTable:
        if self.calls_version is None:
            return self.delta("calls")
        pinned = self._open.get("calls@pinned")
        if pinned is None:
            pinned = self._open["calls@pinned"] = DeltaTable(self.path("calls"), version=self.calls_version,
                                                             storage_options=self.location.delta_options)
        return pinned

    def table_versions(self) -> dict[str, int]:
        """Each table's Delta version (changes whenever anything is committed)."""
        return {spec.name: self.delta(spec.name).version() for spec in TABLES}


def _files_holding(delta: DeltaTable, pointer: str, current: pa.Array) -> list[str] | None:
    """The table's current files whose ``pointer`` statistics (min..max) can hold a current result id.

    Result ids start with their creation time, so the files of superseded
    results (older ids) and of other calls' commits are skipped without being
    opened: reading one call, or a table after a rescore, touches few files.
    None when the table has no statistics (read every file).
    """
    if delta.protocol().min_reader_version != 1:
        return None
    actions = pa.table(delta.get_add_actions(flatten=True))
    low, high = f"min.{pointer}", f"max.{pointer}"
    if low not in actions.column_names or high not in actions.column_names:
        return None
    ids = np.sort(np.asarray(current.to_numpy(zero_copy_only=False), dtype=str))
    root = delta.table_uri.removeprefix("file://")
    files = []
    for path, first, last in zip(actions["path"].to_pylist(), actions[low].to_pylist(), actions[high].to_pylist(),
                                 strict=True):
        if first is None or last is None:
            files.append(path)
            continue
        at = int(np.searchsorted(ids, first, side="left"))
        if at < len(ids) and ids[at] <= last:
            files.append(path)
    return [os.path.join(root, unquote(path)) for path in files]


def _scan(delta: DeltaTable, columns: Sequence[str] | None, partition_filter: ds.Expression | None,
          files: list[str] | None = None, location: Location | None = None) -> pa.Table:
    """Read a Delta table's current files, pruning only by partition.

    The files of the current version are read as a hive-partitioned Parquet
    dataset, the same way a plain Parquet dataset is read; this holds for the
    tables callqa writes (no deletion vectors, no column mapping: reader
    protocol 1). Any other table goes through ``to_pyarrow_dataset``. Filters
    on other columns are applied by the caller with ``pyarrow.compute``: files
    written by delta-rs's own engine carry ``string_view`` statistics that
    pyarrow's dataset filter cannot compare with ``string``. A store on an
    object store is read through its ``location``'s pyarrow file system (the
    same endpoint and credentials as delta-rs's).
    """
    wanted = None if columns is None else list(columns)
    if delta.protocol().min_reader_version == 1:
        schema = _arrow_schema(delta)
        files = delta.file_uris() if files is None else files
        if not files:
            return schema.empty_table() if wanted is None else schema.empty_table().select(wanted)
        base, file_system = delta.table_uri, None
        if location is not None and location.remote:
            base, file_system = location.arrow_path(base), location.file_system
            files = [location.arrow_path(f) for f in files]
        data = ds.dataset(files, schema=schema, format="parquet", filesystem=file_system, partition_base_dir=base,
                          partitioning=ds.partitioning(pa.schema([schema.field("call_date")]), flavor="hive"))
    else:
        data = delta.to_pyarrow_dataset()
    table = data.to_table(columns=wanted, filter=partition_filter)
    return table.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                                 for f in table.schema]))


def _arrow_schema(delta: DeltaTable) -> pa.Schema:
    """The table's schema as Arrow (strings as ``string``), cached per table version."""
    key = (delta.table_uri, delta.version())
    schema = _SCHEMAS.get(key)
    if schema is None:
        fields = [pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) or pa.types.is_large_string(f.type)
                           else f.type, f.nullable)
                  for f in pa.schema(delta.schema().to_arrow())]
        schema = _SCHEMAS[key] = pa.schema(fields)
    return schema


_SCHEMAS: dict[tuple[str, int], pa.Schema] = {}


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _is_disk_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("no space left", "read-only file system", "permission denied", "disk quota"))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _creation_cut_short(entries: set[str] | None) -> bool:
    """Nothing there, or only some of a store's tables and no marker yet (a run killed while creating it)."""
    if entries is None:
        return True
    left = {name for name in entries if not name.startswith(f".{MARKER}.")}  # a marker's tmp file
    return left <= {spec.name for spec in TABLES}


def is_store(root: str | Path, storage_options: Mapping[str, str] | None = None) -> bool:
    """Whether ``root`` holds a callqa store of this format."""
    return Location(root, storage_options).is_file(MARKER)


__all__ = ["MARKER", "CallResult", "CommitReport", "Kind", "Store", "is_store", "new_result_id", "result_time_ms"]
