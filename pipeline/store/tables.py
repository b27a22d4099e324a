"""The tables of a store: their columns, and how a row is tied to its call's current result.

Each table is a Delta Lake table (``STORE/<name>/``) partitioned by ``call_date``.
``calls`` holds exactly one row per call: the call's facts, its status and
three *result pointers*:

- ``transcript_id``: the rows of ``segments``, ``utterances`` and ``gaps`` (speech
  without text) from the call's current decoding (``callqa run``);
- ``analysis_id``: the rows of ``hits`` and ``errors`` from its current
  analysis (``run`` or ``rescore``);
- ``score_id``: its current ``features`` row (``run``, ``rescore`` or ``score``).

The other tables only ever get rows appended, each carrying the id of the
result it belongs to. A commit appends the new rows first and then moves the
pointers in ``calls`` in one transaction, so a reader that joins a table with
``calls`` on its pointer sees a call's old result or its new one, never half
of each (see ``docs/store.md`` for the one-liners). Superseded rows stay until
``callqa compact`` removes them.

The ``features`` columns are owned by :mod:`pipeline.scoring.features`; the
others are defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.scoring.features import FEATURES_SCHEMA
from pipeline.versions import VERSION_FIELDS

#: Version of these tables' layout (bump when a column changes meaning).
SCHEMA_VERSION = 2
_DICT = pa.dictionary(pa.int32(), pa.string())
#: Metadata columns with a fixed place in ``calls``; others go into ``metadata``.
METADATA_COLUMNS = ("agent_id", "team", "started_at", "direction", "hangup_party")
#: The pointer columns of ``calls``, one per kind of result.
POINTERS = ("transcript_id", "analysis_id", "score_id")


def _field(name: str, kind: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"doc": doc})


def _key_fields(pointer: str | None) -> list[pa.Field]:
    """Leading columns of a table: the call, its date (the partition), its result, the versions."""
    fields = [_field("call_id", pa.string(), "Stable id of the call (manifest call_id or path).", False),
              _field("call_date", pa.string(), "The call's date YYYY-MM-DD (the partition column).", False)]
    if pointer is not None:
        fields.append(_field(pointer, pa.string(), f"The result this row belongs to (current when "
                                                   f"calls.{pointer} is the same).", False))
    fields.append(_field("schema_version", pa.int16(), "Version of the store's table layout.", False))
    return [*fields, *VERSION_FIELDS]


@dataclass(frozen=True)
class Table:
    """One table of the store: its name, columns and the ``calls`` pointer its rows hang on."""

    name: str
    schema: pa.Schema
    #: Column of ``calls`` naming this table's current rows; None for ``calls`` itself.
    pointer: str | None

    @property
    def storage_schema(self) -> pa.Schema:
        """The schema as written (dictionary-encoded strings are plain strings in Delta)."""
        return pa.schema([f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f for f in self.schema])


_FACTS = pa.struct([
    ("role", pa.string()), ("loudness_dbfs", pa.float32()), ("peak_dbfs", pa.float32()),
    ("clipping_ratio", pa.float32()), ("speech_s", pa.float32()),
])
_PII = pa.struct([("kind", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())])
_WORD = pa.struct([
    ("text", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()), ("probability", pa.float32()),
])

CALLS = Table("calls", pa.schema([
    *_key_fields(None),
    *[_field(p, pa.string(), f"Id of the call's current {what} (see the module docs).")
      for p, what in zip(POINTERS, ("transcript: segments, utterances", "analysis: hits, errors",
                                    "score: features"), strict=True)],
    _field("committed_at", pa.timestamp("ms", tz="UTC"), "When the call's current result was committed."),
    _field("path", pa.string(), "Audio file the call was read from."),
    _field("audio_sha256", pa.string(), "SHA-256 of the audio file's bytes."),
    _field("status", _DICT, "'ok' or 'failed' (see errors)."),
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
]), None)

SEGMENTS = Table("segments", pa.schema([
    *_key_fields("transcript_id"),
    _field("role", _DICT, "agent, customer or mixed."),
    _field("start_s", pa.float64(), "Speech start, seconds on the call clock."),
    _field("end_s", pa.float64(), "Speech end, seconds on the call clock."),
    _field("loudness_dbfs", pa.float32(), "RMS level of the segment in dBFS."),
]), "transcript_id")

UTTERANCES = Table("utterances", pa.schema([
    *_key_fields("transcript_id"),
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
]), "transcript_id")

GAPS = Table("gaps", pa.schema([
    *_key_fields("transcript_id"),
    _field("role", _DICT, "agent, customer or mixed."),
    _field("start_s", pa.float64(), "Start of speech without trusted text, seconds on the call clock."),
    _field("end_s", pa.float64(), "Its end, seconds on the call clock."),
    _field("reason", _DICT, "Why there is no text: loop, hallucination, decode_failure, crosstalk, no_text or "
           "vad_missed (pipeline.asr.coverage)."),
    _field("detail", pa.string(), "What the transcriber tried and saw (e.g. the looping phrase)."),
]), "transcript_id")

HITS = Table("hits", pa.schema([
    *_key_fields("analysis_id"),
    _field("hit_id", pa.string(), "Stable id of the hit (same inputs, same id)."),
    _field("rule_id", _DICT, "Rule or detector that fired."),
    _field("detector_version", _DICT, "Version of what raised it: the rule sets, the timing detectors or "
           "the red-line model (one of the row's version columns)."),
    _field("category", _DICT, "Category key (pipeline.records.CATEGORIES)."),
    _field("severity", _DICT, "fatal, non_fatal or info."),
    _field("error_class", _DICT, "COPC class: customer, business, compliance or none."),
    _field("role", _DICT, "Role the hit is about (unknown on mono calls)."),
    _field("start_s", pa.float64(), "Evidence start, seconds on the call clock."),
    _field("end_s", pa.float64(), "Evidence end, seconds on the call clock."),
    _field("match_type", _DICT,
           "exact, fuzzy, regex, absence, count, model, timing, acoustic or forced (the sound check)."),
    _field("confidence", pa.float32(), "0..1, from match type and ASR word probabilities."),
    _field("matched_text", pa.string(), "The text that matched (masked where configured)."),
    _field("context", pa.string(), "A short context around the match."),
    _field("suspect", pa.bool_(), "True if the evidence comes from a suspect utterance."),
    _field("detail", pa.string(), "Detector-specific detail (JSON or text)."),
]), "analysis_id")

ERRORS = Table("errors", pa.schema([
    *_key_fields("analysis_id"),
    _field("path", pa.string(), "File that failed."),
    _field("stage", _DICT, "Stage that failed: ingest, vad, transcribe, detect, score."),
    _field("error_type", pa.string(), "Exception name."),
    _field("message", pa.string(), "One-line reason."),
    _field("occurred_at", pa.timestamp("ms", tz="UTC"), "When the failure happened."),
]), "analysis_id")


def _features_table() -> Table:
    """``features`` with the store's key columns (its own columns come from scoring)."""
    own = [f for f in FEATURES_SCHEMA if f.name not in ("call_id", "call_date", "schema_version")
           and f.name not in {v.name for v in VERSION_FIELDS}]
    schema = pa.schema([*_key_fields("score_id"),
                        _field("features_schema_version", pa.int16(), "Version of the features columns.", False),
                        *own], metadata=FEATURES_SCHEMA.metadata)
    return Table("features", schema, "score_id")


FEATURES = _features_table()

#: Every table, in the order a commit writes them (``calls`` last: it is the commit point).
TABLES: tuple[Table, ...] = (SEGMENTS, UTTERANCES, GAPS, HITS, ERRORS, FEATURES, CALLS)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    """The table called ``name``.

    Raises:
        KeyError: no such table (the message lists the known ones).
    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r} (known: {', '.join(sorted(BY_NAME))})") from None


__all__ = ["BY_NAME", "CALLS", "ERRORS", "FEATURES", "GAPS", "HITS", "METADATA_COLUMNS", "POINTERS", "SCHEMA_VERSION",
           "SEGMENTS", "TABLES", "UTTERANCES", "Table", "table"]
