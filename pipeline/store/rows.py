"""Turn analysed calls into the rows of the store's tables (and stored rows back into records).

The row functions are the only place that knows how a record becomes a row:
:func:`call_result` for an analysed call, :func:`failed_result` for a call that
could not be processed, :func:`rescored_result` and :func:`scored_result` for
new hits and features computed from stored transcripts. :func:`utterance_of`,
:func:`hit_of` and :func:`evidence_of` read them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timezone
from typing import Any

import pipeline
from pipeline.analysis import Analysis, CallAnalysis
from pipeline.records import Call, CallEvidence, Hit, SpeechSegment, Utterance, Word
from pipeline.store.delta import CallResult, new_result_id
from pipeline.store.tables import METADATA_COLUMNS
from pipeline.versions import Versions


def call_facts(call_id: str, call_date: str, path: str, audio_sha256: str, metadata: Mapping[str, str],
               call: Call | None) -> dict[str, Any]:
    """The ``calls`` columns known from the job and the decoded audio (no result pointers yet)."""
    rest = dict(metadata)
    row: dict[str, Any] = {
        "call_id": call_id, "call_date": call_date, "path": path, "audio_sha256": audio_sha256,
        "callqa_version": pipeline.__version__,
        **{name: rest.pop(name, None) for name in METADATA_COLUMNS},
        "metadata": sorted(rest.items()) or None,
    }
    if call is not None:
        row.update(duration_s=call.duration_s, source_sample_rate_hz=call.source_sample_rate_hz,
                   source_channels=call.source_channels, codec=call.codec, container=call.container,
                   roles=[c.role for c in call.channels])
    return row


def call_result(facts: Mapping[str, Any], analysed: CallAnalysis, versions: Versions,
                processing_s: float) -> CallResult:
    """Every table's rows for an analysed call (a ``run`` commit)."""
    transcript_id, analysis_id, score_id = new_result_id(), new_result_id(), new_result_id()
    key = {"call_id": facts["call_id"], "call_date": facts["call_date"], **versions.columns()}
    transcript = analysed.transcript
    speech = {role: sum(s.duration_s for s in transcript.segments if s.role == role)
              for role in {c.role for c in transcript.channels}}
    call = {
        **facts, **key, "transcript_id": transcript_id, "analysis_id": analysis_id, "score_id": score_id,
        "status": "ok", "processing_s": processing_s,
        "channels": [{**asdict(c), "speech_s": speech.get(c.role, 0.0)} for c in transcript.channels],
    }
    rows = {
        "segments": [{**key, "transcript_id": transcript_id, **asdict(s)} for s in transcript.segments],
        "utterances": utterance_rows(transcript.utterances, analysed.pii, {**key, "transcript_id": transcript_id}),
        "gaps": [{**key, "transcript_id": transcript_id, **asdict(g)} for g in transcript.gaps],
        **_analysis_rows(analysed.analysis, key, analysis_id, score_id),
    }
    return CallResult(call, rows)


def failed_result(facts: Mapping[str, Any], versions: Versions, stage: str, error: Exception,
                  reason: str) -> CallResult:
    """The ``calls`` and ``errors`` rows of a call that could not be processed."""
    analysis_id = new_result_id()
    key = {"call_id": facts["call_id"], "call_date": facts["call_date"], **versions.columns()}
    call = {**facts, **key, "transcript_id": new_result_id(), "analysis_id": analysis_id, "score_id": new_result_id(),
            "status": "failed", "error_type": type(error).__name__, "error_message": reason}
    error_row = {**key, "analysis_id": analysis_id, "path": facts.get("path"), "stage": stage,
                 "error_type": type(error).__name__, "message": reason,
                 "occurred_at": datetime.now(timezone.utc)}
    return CallResult(call, {"errors": [error_row]})


def rescored_result(stored_call: Mapping[str, Any], analysis: Analysis, versions: Versions) -> CallResult:
    """New hits and features of a stored call (a ``rescore`` commit; the transcript stays)."""
    analysis_id, score_id = new_result_id(), new_result_id()
    key = {"call_id": stored_call["call_id"], "call_date": stored_call["call_date"], **versions.columns()}
    call = {**key, "transcript_id": stored_call["transcript_id"], "analysis_id": analysis_id, "score_id": score_id}
    return CallResult(call, _analysis_rows(analysis, key, analysis_id, score_id),
                      expect=stored_call["transcript_id"])


def scored_result(stored_call: Mapping[str, Any], features: Mapping[str, Any]) -> CallResult:
    """A stored call's new features row (a ``score`` commit; hits and transcript stay)."""
    score_id = new_result_id()
    call = {"call_id": stored_call["call_id"], "call_date": stored_call["call_date"],
            "analysis_id": stored_call["analysis_id"], "score_id": score_id}
    return CallResult(call, {"features": [features_row({**features, "score_id": score_id})]},
                      expect=stored_call["analysis_id"])


def _analysis_rows(analysis: Analysis, key: Mapping[str, Any], analysis_id: str,
                   score_id: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "hits": hit_rows(analysis.hits, {**key, "analysis_id": analysis_id}),
        "features": [features_row({**analysis.features, **key, "score_id": score_id})],
    }


def features_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A feature row (:mod:`pipeline.scoring.features`) in the store's columns."""
    out = dict(row)
    if "features_schema_version" not in out:
        out["features_schema_version"] = out.pop("schema_version")
    return out


def utterance_rows(utterances: Sequence[Utterance], pii: Sequence[Sequence[Any]] | None,
                   key: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``utterances``; ``pii[i]`` (PiiTime records) goes with utterance i."""
    rows = []
    for index, u in enumerate(utterances):
        row = {**key, **asdict(u), "utterance_index": index,
               "pii_spans": None if pii is None else [asdict(p) for p in pii[index]]}
        rows.append(row)
    return rows


def hit_rows(hits: Iterable[Hit], key: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``hits`` (with their stable ``hit_id``)."""
    return [{**key, **asdict(h), "hit_id": h.hit_id} for h in hits]


# -- back into records ----------------------------------------------------------------
def utterance_of(row: Mapping[str, Any]) -> Utterance:
    """The :class:`Utterance` of an ``utterances`` row."""
    return Utterance(
        role=row["role"], start_s=row["start_s"], end_s=row["end_s"], text=row["text"],
        words=tuple(Word(w["text"], w["start_s"], w["end_s"], float(w["probability"])) for w in row["words"] or []),
        avg_logprob=row["avg_logprob"], no_speech_prob=row["no_speech_prob"],
        compression_ratio=row["compression_ratio"], suspect=row["suspect"],
        suspect_reason=row["suspect_reason"] or "",
    )


_HIT_FIELDS = [f.name for f in fields(Hit)]


def hit_of(row: Mapping[str, Any]) -> Hit:
    """The :class:`Hit` of a ``hits`` row."""
    return Hit(**{name: row[name] for name in _HIT_FIELDS})


def evidence_of(call: Mapping[str, Any], segments: Iterable[Mapping[str, Any]],
                utterances: Iterable[Mapping[str, Any]]) -> CallEvidence:
    """A stored call's :class:`CallEvidence` from its ``calls`` row and its current segment and utterance rows."""
    metadata = {k: call[k] for k in METADATA_COLUMNS if call.get(k)}
    metadata.update(dict(call.get("metadata") or []))
    return CallEvidence(
        call_id=call["call_id"], duration_s=call["duration_s"], roles=tuple(call["roles"]),
        segments=tuple(SpeechSegment(s["role"], s["start_s"], s["end_s"], s["loudness_dbfs"])
                       for s in sorted(segments, key=lambda s: (s["start_s"], s["role"]))),
        utterances=tuple(utterance_of(u) for u in sorted(utterances, key=lambda u: u["utterance_index"])),
        metadata=metadata,
    )


__all__ = ["call_facts", "call_result", "evidence_of", "failed_result", "features_row", "hit_of", "hit_rows",
           "rescored_result", "scored_result", "utterance_of", "utterance_rows"]
