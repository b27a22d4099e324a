"""Read a store written by callqa 0.1 (the ledger format), to convert it (``callqa store upgrade``).

That format kept hive-partitioned Parquet parts per table and a ledger file per
committed chunk in ``_commits/``; which row was current lived only in the
ledger's sequence numbers and ``covers`` lists. :class:`LegacyStore` reproduces
0.1's reading rules exactly (latest commit per call, config and speech model;
hits of the rules versions behind the current feature row) and nothing else:
it never writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import StoreError

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

# The 0.1 schemas as 0.1 wrote them, frozen on purpose: many columns look like
# store/tables.py's, but these must never follow a change there (they describe
# files already on disk), so they are written out here, not imported.
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


def schema_of(table: str) -> pa.Schema | None:
    """0.1's schema of ``table`` (None for ``features``: its files carry their own schema)."""
    if table == "features":
        return None
    try:
        return SCHEMAS[table]
    except KeyError:
        raise StoreError(table, f"unknown table (known: {', '.join(sorted(SCHEMAS))}, features)") from None


class LegacyStore:
    """Read a callqa 0.1 store (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._ledgers: dict[str, dict[str, Any]] = {}  # ledger file name -> content (files never change)

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
        if not files:
            return pa.table({"call_id": pa.array([], pa.string()), "call_date": pa.array([], pa.string())})
        if schema is None:
            schema = pq.read_schema(files[0])
        names = list(schema.names) if columns is None else list(dict.fromkeys(
            [*key_columns(table), "chunk_id", *columns]))
        parts = []
        for path in files:
            part = pq.read_table(path, columns=names, schema=schema)
            date = path.parent.name.split("=", 1)[1]
            parts.append(part.append_column("call_date", pa.array([date] * part.num_rows, pa.string())))
        data = pa.concat_tables(parts, promote_options="default")
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
