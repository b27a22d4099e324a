"""The output store: a directory of hive-partitioned Parquet datasets.

Layout (``date`` is the call's date)::

    STORE/
      calls/date=2026-11-22/part-<chunk>.parquet      one row per call (ok or failed)
      segments/ utterances/ hits/ features/ errors/   the same partitioning
      _commits/<seq>-<chunk>.json                     one file per committed chunk
      _runs/<run_id>.json                             the calls each run planned

**Commit protocol.** A chunk of finished calls is written table by table, each
part to a temporary file in the same directory then ``os.replace``-d into
place; the chunk's ledger file in ``_commits/`` is written last, the same way.
A part whose chunk has no ledger file was never committed: readers ignore it
and :meth:`Store.recover` deletes it. So a kill at any moment loses at most
the chunk being written, and never leaves a half file or a duplicated row.

**Versions.** Every row carries ``config_hash``, ``model_id`` and
``rules_version``. For a given key (call, config, model; plus rules version
for hits) the most recent commit wins, so ``--force`` and re-scoring
supersede older rows instead of duplicating them, while results for another
model or another rules version stay queryable side by side. A commit's ledger
also lists the keys it redid (``covers``), so a call re-analysed with no hits
at all no longer shows the hits of its previous analysis.

Plain pyarrow, DuckDB or Polars can read the datasets directly; go through
:meth:`Store.read` to see committed, current rows only.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import StoreError
from pipeline.records import CallEvidence, Hit, SpeechSegment, Utterance, Word

SCHEMA_VERSION = 1
CALL_KEY = ("call_id", "config_hash", "model_id")
_DICT = pa.dictionary(pa.int32(), pa.string())


def _field(name: str, kind: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"doc": doc})


#: Columns every table starts with; together they make each row reproducible.
COMMON_FIELDS = [
    _field("call_id", pa.string(), "Stable id of the call (manifest call_id or path).", False),
    _field("chunk_id", pa.string(), "Commit chunk that wrote the row (see _commits/).", False),
    _field("schema_version", pa.int16(), "Version of this table's schema.", False),
    _field("config_hash", _DICT, "Hash of the full configuration used.", False),
    _field("model_id", _DICT, "Speech model id (name@checksum), or 'none'.", False),
    _field("rules_version", _DICT, "Version of the rule sets used.", False),
]

_FACTS = pa.struct([
    ("role", pa.string()), ("loudness_dbfs", pa.float32()), ("peak_dbfs", pa.float32()),
    ("clipping_ratio", pa.float32()), ("speech_s", pa.float32()),
])
_PII = pa.struct([("kind", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())])
_WORD = pa.struct([
    ("text", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()), ("probability", pa.float32()),
])

#: Metadata columns with a fixed place in ``calls``; others go into ``metadata``.
METADATA_COLUMNS = ("agent_id", "team", "started_at", "direction", "hangup_party")

SCHEMAS: dict[str, pa.Schema] = {
    "calls": pa.schema(COMMON_FIELDS + [
        _field("path", pa.string(), "Audio file the call was read from."),
        _field("audio_sha256", pa.string(), "SHA-256 of the audio file's bytes."),
        _field("status", _DICT, "'ok' or 'failed' (see errors/)."),
        _field("error_type", pa.string(), "Exception name when failed."),
        _field("error_message", pa.string(), "One-line reason when failed."),
        _field("duration_s", pa.float64(), "Decoded duration in seconds."),
        _field("source_sample_rate_hz", pa.int32(), "Sample rate of the source file."),
        _field("source_channels", pa.int16(), "Channels in the source file."),
        _field("codec", _DICT, "Source codec (FFmpeg name)."),
        _field("container", _DICT, "Source container (FFmpeg name)."),
        _field("roles", pa.list_(pa.string()), "Roles of the kept channels."),
        _field("channels", pa.list_(_FACTS), "Per-channel loudness, peak, clipping, speech time."),
        *[_field(name, pa.string(), f"Manifest metadata: {name}.") for name in METADATA_COLUMNS],
        _field("metadata", pa.map_(pa.string(), pa.string()), "Other manifest columns."),
        _field("callqa_version", pa.string(), "callqa version that processed the call."),
        _field("processing_s", pa.float32(), "Wall time spent on the call."),
    ]),
    "segments": pa.schema(COMMON_FIELDS + [
        _field("role", _DICT, "agent, customer or mixed."),
        _field("start_s", pa.float64(), "Speech start, seconds on the call clock."),
        _field("end_s", pa.float64(), "Speech end, seconds on the call clock."),
        _field("loudness_dbfs", pa.float32(), "RMS level of the segment in dBFS."),
    ]),
    "utterances": pa.schema(COMMON_FIELDS + [
        _field("utterance_index", pa.int32(), "Position of the utterance in the call (time order)."),
        _field("role", _DICT, "agent, customer or mixed."),
        _field("start_s", pa.float64(), "Start, seconds on the call clock."),
        _field("end_s", pa.float64(), "End, seconds on the call clock."),
        _field("text", pa.string(), "Recognised text (Simplified; masked where PII masking is on)."),
        _field("words", pa.list_(_WORD), "Words with call-clock times and probabilities."),
        _field("avg_logprob", pa.float32(), "Whisper average log-probability."),
        _field("no_speech_prob", pa.float32(), "Whisper no-speech probability."),
        _field("compression_ratio", pa.float32(), "Whisper gzip compression ratio of the text."),
        _field("suspect", pa.bool_(), "True if the hallucination guard distrusts the utterance."),
        _field("suspect_reason", pa.string(), "Why the utterance is suspect."),
        _field("pii_spans", pa.list_(_PII), "Personal data spoken in it (kind, call-clock times), found before "
               "masking; null when [pii] detect is off."),
    ]),
    "hits": pa.schema(COMMON_FIELDS + [
        _field("hit_id", pa.string(), "Stable id of the hit (same inputs, same id)."),
        _field("rule_id", _DICT, "Rule or detector that fired."),
        _field("category", _DICT, "Category key (pipeline.records.CATEGORIES)."),
        _field("severity", _DICT, "fatal, non_fatal or info."),
        _field("error_class", _DICT, "COPC class: customer, business, compliance or none."),
        _field("role", _DICT, "Role the hit is about (unknown on mono calls)."),
        _field("start_s", pa.float64(), "Evidence start, seconds on the call clock."),
        _field("end_s", pa.float64(), "Evidence end, seconds on the call clock."),
        _field("match_type", _DICT, "exact, fuzzy, regex, absence, count, model, timing or acoustic."),
        _field("confidence", pa.float32(), "0..1, from match type and ASR word probabilities."),
        _field("matched_text", pa.string(), "The text that matched (masked where configured)."),
        _field("context", pa.string(), "A short context around the match."),
        _field("suspect", pa.bool_(), "True if the evidence comes from a suspect utterance."),
        _field("detail", pa.string(), "Detector-specific detail (JSON or text)."),
    ]),
    "errors": pa.schema(COMMON_FIELDS + [
        _field("path", pa.string(), "File that failed."),
        _field("stage", _DICT, "Stage that failed: ingest, vad, transcribe, detect, score."),
        _field("error_type", pa.string(), "Exception name."),
        _field("message", pa.string(), "One-line reason."),
        _field("occurred_at", pa.timestamp("ms", tz="UTC"), "When the failure happened."),
    ]),
}

#: Extra key columns beyond CALL_KEY, per table.
# Hits of several rule-set versions stay current side by side (compare rule
# versions); a call has one current feature row, the latest analysis.
_EXTRA_KEY = {"hits": ("rules_version",)}


#: Joins the detector versions in a feature row's ``rules_version`` (see pipeline/analysis.py).
RULES_VERSION_SEP = ";"


def split_rules_version(rules_version: str) -> tuple[str, ...]:
    """The detector versions a feature row's ``rules_version`` was built from."""
    return tuple(v for v in rules_version.split(RULES_VERSION_SEP) if v)


def key_columns(table: str) -> list[str]:
    """Columns that identify one result in ``table``: the latest commit per key wins."""
    return [*CALL_KEY, *_EXTRA_KEY.get(table, ())]


def register_schema(table: str, schema: pa.Schema) -> None:
    """Let a later stage (e.g. features) own its table's schema in its own module."""
    SCHEMAS[table] = schema


def schema_of(table: str) -> pa.Schema:
    """The schema of ``table``; tables owned by later stages are registered on first use."""
    if table == "features" and table not in SCHEMAS:
        import pipeline.scoring.features  # noqa: F401 - registers FEATURES_SCHEMA
    try:
        return SCHEMAS[table]
    except KeyError:
        raise StoreError(table, f"unknown table (known: {', '.join(sorted(SCHEMAS))})") from None


def _table_from_rows(table: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema_of(table))


def common_columns(call_id: str, config_hash: str, model_id: str, rules_version: str) -> dict[str, Any]:
    """The leading columns every row carries (``chunk_id`` is filled at commit)."""
    return {
        "call_id": call_id, "chunk_id": "", "schema_version": SCHEMA_VERSION,
        "config_hash": config_hash, "model_id": model_id, "rules_version": rules_version,
    }


def segments_rows(segments: Iterable[SpeechSegment], common: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**common, **asdict(s)} for s in segments]


def utterances_rows(utterances: Iterable[Utterance], common: dict[str, Any],
                    pii_spans: Sequence[Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Rows of ``utterances``; ``pii_spans[i]`` (dataclasses with kind/start_s/end_s) goes with utterance i."""
    rows = []
    for index, u in enumerate(utterances):
        row = {**common, **asdict(u), "utterance_index": index}
        if pii_spans is not None:
            row["pii_spans"] = [asdict(p) for p in pii_spans[index]]
        row["words"] = [asdict(w) for w in u.words]
        rows.append(row)
    return rows


def hits_rows(hits: Iterable[Hit], common: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**common, **asdict(h), "hit_id": h.hit_id, "rules_version": h.rules_version} for h in hits]


class Store:
    """Read and write a callqa store directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._ledgers: dict[str, dict[str, Any]] = {}  # ledger file name -> content (files never change)

    # -- writing -----------------------------------------------------------
    def _ensure_dirs(self) -> None:
        try:
            (self.root / "_commits").mkdir(parents=True, exist_ok=True)
            (self.root / "_runs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(str(self.root), f"cannot create the store directory: {exc.strerror}") from None

    def commit(self, rows: Mapping[str, Sequence[dict[str, Any]]], kind: str = "run",
               covers: Mapping[str, Iterable[Sequence[str]]] | None = None) -> str:
        """Write one chunk atomically: every table's rows, then the ledger file.

        Args:
            rows: table name -> rows (dicts with the table's columns plus
                ``call_date`` 'YYYY-MM-DD' for partitioning).
            kind: what wrote the chunk ("run", "rescore", "score").
            covers: table name -> keys (:meth:`key_columns` values) this chunk
                redid, rows or not. A covered key's older rows stop being
                current even when this chunk has no row for it (a call that
                now has zero hits must not keep its old ones).

        Returns:
            The chunk id.

        Raises:
            StoreError: the disk is full or not writable; nothing of the
                chunk becomes visible.
        """
        self._ensure_dirs()
        chunk_id = uuid.uuid4().hex[:16]
        written: list[Path] = []
        try:
            for table, table_rows in rows.items():
                by_date: dict[str, list[dict[str, Any]]] = {}
                for row in table_rows:
                    row = {**row, "chunk_id": chunk_id}
                    by_date.setdefault(row.pop("call_date"), []).append(row)
                for date, date_rows in sorted(by_date.items()):
                    target = self.root / table / f"date={date}" / f"part-{chunk_id}.parquet"
                    _atomic_write_parquet(_table_from_rows(table, date_rows), target)
                    written.append(target)
            ledger = {
                "chunk_id": chunk_id, "kind": kind, "tables": sorted(rows),
                "committed_at": datetime.now(timezone.utc).isoformat(),
                "files": [str(p.relative_to(self.root)) for p in written],
                "covers": {table: sorted({tuple(map(str, key)) for key in keys})
                           for table, keys in (covers or {}).items()},
            }
            seq = self._next_seq()
            _atomic_write_text(self.root / "_commits" / f"{seq:012d}-{chunk_id}.json", json.dumps(ledger))
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise StoreError(str(self.root), f"cannot write results ({exc.strerror or exc}); "
                             "nothing of this chunk was kept, re-run to resume") from None
        return chunk_id

    def _next_seq(self) -> int:
        seqs = [int(p.name.split("-", 1)[0]) for p in (self.root / "_commits").glob("*.json")]
        return max(seqs, default=0) + 1

    def recover(self) -> int:
        """Delete temporary files and parts of chunks that were never committed.

        Returns:
            The number of files removed.
        """
        if not self.root.exists():
            return 0
        committed = set(self._commit_seqs())
        removed = 0
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            orphan = path.name.startswith("part-") and path.suffix == ".parquet" and \
                path.stem[len("part-"):] not in committed
            if path.name.endswith(".tmp") or orphan:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def record_run(self, run_id: str, planned: Sequence[dict[str, str]], settings: dict[str, Any]) -> None:
        """Remember which calls a run planned, for ``callqa status`` (pending = planned - done)."""
        self._ensure_dirs()
        body = {"run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat(),
                "settings": settings, "planned": list(planned)}
        _atomic_write_text(self.root / "_runs" / f"{run_id}.json", json.dumps(body, ensure_ascii=False))

    def last_run(self) -> dict[str, Any] | None:
        runs = sorted((self.root / "_runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
        return json.loads(runs[-1].read_text(encoding="utf-8")) if runs else None

    # -- reading -----------------------------------------------------------
    def _commit_seqs(self) -> dict[str, int]:
        ledger_dir = self.root / "_commits"
        if not ledger_dir.exists():
            return {}
        seqs = {}
        for path in ledger_dir.glob("*.json"):
            seq, chunk = path.stem.split("-", 1)
            seqs[chunk] = int(seq)
        return seqs

    def read(self, table: str, columns: Sequence[str] | None = None, current: bool = True) -> pa.Table:
        """Committed rows of ``table`` with a ``call_date`` column.

        Args:
            table: calls, segments, utterances, hits, features or errors.
            columns: restrict to these columns (key columns are always read).
            current: keep only the latest commit per key (call, config,
                model; plus rules version for hits and features).
        """
        schema = schema_of(table)
        seqs = self._commit_seqs()
        files = sorted(
            p for p in (self.root / table).glob("date=*/part-*.parquet") if p.stem[len("part-"):] in seqs
        )
        names = list(schema.names) if columns is None else list(dict.fromkeys(
            [*key_columns(table), "chunk_id", *columns]))
        if not files:
            empty = pa.Table.from_pylist([], schema=pa.schema([schema.field(n) for n in names]))
            return empty.append_column("call_date", pa.array([], pa.string()))
        parts = []
        for path in files:
            part = pq.read_table(path, columns=names, schema=schema)
            date = path.parent.name.split("=", 1)[1]
            parts.append(part.append_column("call_date", pa.array([date] * part.num_rows, pa.string())))
        data = pa.concat_tables(parts)
        if current and data.num_rows:
            data = _latest_per_key(data, key_columns(table), seqs, self._covers(table))
        return data

    def _covers(self, table: str) -> list[tuple[str, ...]]:
        """(key..., seq) of every key a commit declared it redid for ``table``."""
        out: list[tuple[str, ...]] = []
        for path in sorted((self.root / "_commits").glob("*.json")):
            if path.name not in self._ledgers:
                self._ledgers[path.name] = json.loads(path.read_text(encoding="utf-8"))
            seq = path.name.split("-", 1)[0]
            keys = self._ledgers[path.name].get("covers", {}).get(table, [])
            out.extend((*key, seq) for key in keys)
        return out

    def evidence(self, call_ids: Iterable[str] | None = None) -> Iterator[CallEvidence]:
        """Rebuild each ok call's :class:`CallEvidence` from the stored tables."""
        for _, evidence in self.calls_with_evidence(call_ids):
            yield evidence

    def calls_with_evidence(self, call_ids: Iterable[str] | None = None
                            ) -> Iterator[tuple[dict[str, Any], CallEvidence]]:
        """Each current ok call's ``calls`` row with its :class:`CallEvidence`, rebuilt from the store."""
        wanted = set(call_ids) if call_ids is not None else None
        calls = [c for c in self.read("calls").to_pylist() if c["status"] == "ok"
                 and (wanted is None or c["call_id"] in wanted)]
        segments = _group(self.read("segments").to_pylist())
        utterances = _group(self.read("utterances").to_pylist())
        for call in calls:
            key = tuple(call[k] for k in CALL_KEY)
            metadata = {k: call[k] for k in METADATA_COLUMNS if call.get(k)}
            metadata.update(dict(call["metadata"] or []))
            yield call, CallEvidence(
                call_id=call["call_id"], duration_s=call["duration_s"], roles=tuple(call["roles"]),
                segments=tuple(SpeechSegment(s["role"], s["start_s"], s["end_s"], s["loudness_dbfs"])
                               for s in sorted(segments.get(key, []), key=lambda s: (s["start_s"], s["role"]))),
                utterances=tuple(_utterance(u) for u in sorted(utterances.get(key, []),
                                                               key=lambda u: u["utterance_index"])),
                metadata=metadata,
            )

    def current_hits(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The hits behind each call's current feature row (those of its rules versions).

        Hits of other rule versions (e.g. before a ``callqa rescore``) stay in
        the store and in :meth:`read`, but are not the call's current result.
        Calls without a feature row keep all their current hits.
        """
        hits = self.read("hits", columns=columns)
        if not hits.num_rows:
            return hits
        features = self.read("features", columns=["rules_version"]).to_pylist()
        versions = {tuple(r[k] for k in CALL_KEY): set(split_rules_version(r["rules_version"])) for r in features}
        keep = []
        for i, row in enumerate(hits.select([*CALL_KEY, "rules_version"]).to_pylist()):
            wanted = versions.get(tuple(row[k] for k in CALL_KEY))
            if wanted is None or row["rules_version"] in wanted:
                keep.append(i)
        return hits.take(pa.array(keep, pa.int64()))

    def done_keys(self) -> dict[tuple[str, str, str, str], str]:
        """(call_id, audio_sha256, config_hash, model_id) -> status ('ok'/'failed') of every current call."""
        data = self.read("calls", columns=["audio_sha256", "status"]).to_pylist()
        return {(r["call_id"], r["audio_sha256"], r["config_hash"], r["model_id"]): r["status"] for r in data}


def _group(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[k] for k in CALL_KEY), []).append(row)
    return grouped


def _utterance(row: dict[str, Any]) -> Utterance:
    return Utterance(
        role=row["role"], start_s=row["start_s"], end_s=row["end_s"], text=row["text"],
        words=tuple(Word(w["text"], w["start_s"], w["end_s"], float(w["probability"])) for w in row["words"] or []),
        avg_logprob=row["avg_logprob"], no_speech_prob=row["no_speech_prob"],
        compression_ratio=row["compression_ratio"], suspect=row["suspect"], suspect_reason=row["suspect_reason"] or "",
    )


def _latest_per_key(data: pa.Table, key: list[str], seqs: dict[str, int],
                    covers: Sequence[tuple[str, ...]] = ()) -> pa.Table:
    seq = pa.array([seqs[c] for c in data.column("chunk_id").to_pylist()], pa.int64())
    data = data.append_column("_seq", seq)
    schema = pa.schema([pa.field(k, pa.string()) for k in key] + [pa.field("_seq", pa.int64())])
    plain = data.select(key + ["_seq"]).cast(schema)
    covered = pa.Table.from_pylist([{**dict(zip(key, c[:-1], strict=True)), "_seq": int(c[-1])}
                                    for c in covers if len(c) == len(key) + 1], schema=schema)
    everything = pa.concat_tables([plain, covered])
    latest = everything.group_by(key).aggregate([("_seq", "max")]).rename_columns(key + ["_latest"])
    joined = plain.append_column("_row", pa.array(range(data.num_rows), pa.int64())).join(latest, key)
    keep = joined.filter(pc.equal(joined["_seq"], joined["_latest"]))["_row"].combine_chunks()
    return data.take(keep.sort()).drop_columns(["_seq"])


def _atomic_write_parquet(table: pa.Table, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write_text(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def remove_store(root: str | Path) -> None:
    """Delete a whole store directory (used by tests and ``--fresh``)."""
    shutil.rmtree(root, ignore_errors=True)
