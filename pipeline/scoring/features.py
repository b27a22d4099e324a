"""One documented feature row per call: the table data scientists train on.

:data:`FEATURES_SCHEMA` is the single owner of the ``features/`` table's
columns. Each field carries its description (``doc``) and its ``group`` in
the field metadata, so ``docs/features.md`` is generated from the schema
(``scripts/gen_feature_docs.py``) and cannot drift. Groups:

- ``key``/``meta``/``audio``: who, when and what was processed;
- ``hits``: counts per category (fixed columns) and per rule (a map);
- ``timing``/``asr``: measurements from the timing detectors and the ASR;
- ``score``: the scorecard result (:func:`with_score`);
- ``classifier``: the promoted model's output (:func:`with_prediction`).

Columns of groups ``hits``, ``timing``, ``asr`` and ``audio`` with a numeric
type are the classifier's inputs (:func:`model_feature_columns`).

``build_features`` is pure. Stored rows are read with
``pipeline.store.Store(root).read("features")`` (see ``docs/store.md`` for
DuckDB, Polars and pyarrow without callqa).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.records import AGENT, CATEGORIES, CUSTOMER, REDLINE_CATEGORIES, CallEvidence, Hit
from pipeline.timing.detect import TIMING_FEATURES
from pipeline.versions import VERSION_FIELDS, Versions

#: Version of the features table's columns; bump it when a column changes.
FEATURES_SCHEMA_VERSION = 3
_DICT = pa.dictionary(pa.int32(), pa.string())
ERROR_CLASS_KEYS = ("customer", "business", "compliance")
#: Categorical classifier inputs (one-hot encoded by the classifier).
CATEGORICAL_FEATURES = ("direction", "hangup_party")


def _f(name: str, kind: pa.DataType, group: str, doc: str) -> pa.Field:
    return pa.field(name, kind, nullable=True, metadata={"doc": doc, "group": group})


_ARROW_KINDS: dict[str, pa.DataType] = {"float": pa.float32(), "int": pa.int32(), "category": _DICT}


_FIELDS: list[pa.Field] = [
    pa.field("call_id", pa.string(), nullable=False, metadata={"doc": "Stable id of the call.", "group": "key"}),
    pa.field("schema_version", pa.int16(), nullable=False,
             metadata={"doc": "Version of this table's columns.", "group": "key"}),
    *VERSION_FIELDS,
    _f("call_date", pa.string(), "meta", "The call's date (YYYY-MM-DD), from started_at or the file time."),
    _f("agent_id", pa.string(), "meta", "Agent id from the manifest (hash it upstream if needed)."),
    _f("team", _DICT, "meta", "Team / ACD group from the manifest."),
    _f("direction", _DICT, "meta", "inbound or outbound, from the manifest."),
    _f("started_at", pa.string(), "meta", "Call start time from the manifest (ISO 8601 text)."),
    _f("duration_s", pa.float32(), "audio", "Call duration (s)."),
    _f("is_mono", pa.bool_(), "meta", "True when the call has one mixed channel (no role separation)."),
    _f("source_sample_rate_hz", pa.int32(), "meta", "Sample rate of the source file."),
    _f("codec", _DICT, "meta", "Source codec."),
    _f("clipping_ratio_max", pa.float32(), "audio", "Largest share of clipped samples over channels."),
    _f("agent_speech_s", pa.float32(), "audio", "Agent speech time from VAD segments (s)."),
    _f("customer_speech_s", pa.float32(), "audio", "Customer speech time from VAD segments (s)."),
    _f("speech_share", pa.float32(), "audio", "Speech time of all roles / duration."),
    _f("hits_total", pa.int32(), "hits", "All hits on the call."),
    _f("hits_fatal", pa.int32(), "hits", "Hits with severity fatal."),
    _f("hits_non_fatal", pa.int32(), "hits", "Hits with severity non_fatal."),
    _f("hits_suspect", pa.int32(), "hits", "Hits whose evidence is a suspect (distrusted) utterance."),
    *[_f(f"hits_class_{c}", pa.int32(), "hits", f"Hits with COPC error class {c}.") for c in ERROR_CLASS_KEYS],
    *[_f(f"hits_{key}", pa.int32(), "hits", f"Hits in category {key} ({name}).")
      for key, name in CATEGORIES.items()],
    _f("rule_counts", pa.map_(pa.string(), pa.int32()), "rules", "Hits per rule id (rule ids vary by rule set)."),
    _f("redline", pa.bool_(), "hits", "True if any non-suspect hit is in a red-line category (辱骂/反问/冷漠)."),
    _f("redline_hits", pa.int32(), "hits", "Non-suspect hits in red-line categories."),
    *[_f(f.name, _ARROW_KINDS[f.kind], "timing", f.doc) for f in TIMING_FEATURES],
    _f("utterance_count", pa.int32(), "asr", "Recognised utterances."),
    _f("agent_chars", pa.int32(), "asr", "Characters the agent said (recognised)."),
    _f("customer_chars", pa.int32(), "asr", "Characters the customer said (recognised)."),
    _f("word_count", pa.int32(), "asr", "Recognised words with timings."),
    _f("asr_word_prob_mean", pa.float32(), "asr", "Mean word probability."),
    _f("asr_word_prob_p10", pa.float32(), "asr", "10th percentile of word probability."),
    _f("asr_word_prob_min", pa.float32(), "asr", "Lowest word probability."),
    _f("asr_low_conf_word_share", pa.float32(), "asr",
       "Share of words with probability below [features] low_confidence_word_probability."),
    _f("asr_avg_logprob_mean", pa.float32(), "asr", "Mean Whisper avg_logprob over utterances."),
    _f("suspect_utterance_share", pa.float32(), "asr", "Share of utterances the hallucination guard distrusts."),
    _f("agent_coverage", pa.float32(), "asr", "Share (0..1) of the agent's VAD speech covered by trusted words "
       "([asr] coverage_word_margin_s); null without agent speech or without a transcript."),
    _f("customer_coverage", pa.float32(), "asr", "Share (0..1) of the customer's VAD speech covered by trusted "
       "words; null without customer speech or without a transcript."),
    _f("mixed_coverage", pa.float32(), "asr", "Share (0..1) of a mono call's VAD speech covered by trusted words; "
       "null on stereo calls."),
    _f("untranscribed_s", pa.float32(), "asr", "Speech without trusted text, in gaps of at least [asr] gap_min_s, "
       "all roles (s); crosstalk left out (see the gaps table)."),
    _f("gap_count", pa.int32(), "asr",
       "Stretches of speech without trusted text (the gaps table, crosstalk left out)."),
    _f("scorecard_version", _DICT, "score", "Scorecard version that scored the row."),
    _f("score", pa.float32(), "score", "Scorecard score 0-100 (0 when a fatal item failed)."),
    _f("grade", _DICT, "score", "Grade from the scorecard's score bands."),
    _f("passed", pa.bool_(), "score", "True exactly when the outcome is pass: score >= pass score, no fatal item "
       "failed, and nothing left for a person (a call that needs review or listening is not passed)."),
    _f("fatal_failed", pa.bool_(), "score", "True if a fatal item failed (the call fails outright)."),
    _f("failed_items", pa.list_(pa.string()), "score", "Ids of the scorecard items that failed."),
    _f("failed_hit_ids", pa.list_(pa.string()), "score", "Hit ids that are evidence for failed items."),
    *[_f(f"copc_{c}_pass", pa.bool_(), "score", f"COPC {c} critical-error class passed.")
      for c in ERROR_CLASS_KEYS],
    _f("section_scores", pa.map_(pa.string(), pa.float32()), "score",
       "Score 0-100 per scorecard section (服务礼仪, 服务技能, ...)."),
    _f("outcome", _DICT, "score", "fail, needs_review, needs_listening or pass: what a QA lead does with the call "
       "(a call is only 'pass' when nothing asks for a person; see the scorecard's [outcome])."),
    _f("outcome_reasons", pa.list_(pa.string()), "score",
       "Why the outcome is not a plain pass (e.g. scorecard_fail, redline_model_only, no_speech)."),
    _f("classifier_model", _DICT, "classifier", "Promoted classifier that scored the row (name@hash)."),
    _f("classifier_probability", pa.float32(), "classifier",
       "Calibrated probability of the model's positive class (binary) or of the predicted grade (ordinal)."),
    _f("classifier_decision", _DICT, "classifier", "Label the classifier predicts at its chosen threshold."),
]

#: The features table's schema (store schema: no ``call_date``, added on read).
FEATURES_SCHEMA = pa.schema(_FIELDS, metadata={"schema_version": str(FEATURES_SCHEMA_VERSION)})
_TIMING_NAMES = frozenset(f.name for f in TIMING_FEATURES)
_COVERAGE_NAMES = frozenset(("agent_coverage", "customer_coverage", "mixed_coverage", "untranscribed_s", "gap_count"))

_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)


def field_group(field: pa.Field) -> str:
    """The documentation group of a features column ('key' for the common columns)."""
    return (field.metadata or {}).get(b"group", b"key").decode()


def model_feature_columns() -> list[str]:
    """Numeric columns the classifier may use (groups audio, hits, timing, asr)."""
    return [f.name for f in FEATURES_SCHEMA
            if field_group(f) in ("audio", "hits", "timing", "asr")
            and any(test(f.type) for test in _NUMERIC)]


def _num(value: object) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _stats(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


def _hit_columns(hits: Sequence[Hit]) -> dict[str, Any]:
    categories = Counter(h.category for h in hits)
    severities = Counter(h.severity for h in hits)
    classes = Counter(h.error_class for h in hits)
    # Like the scorecard, distrusted (suspect) evidence does not make a red-line call.
    redline_hits = sum(1 for h in hits if h.category in REDLINE_CATEGORIES and not h.suspect)
    row: dict[str, Any] = {
        "hits_total": len(hits), "hits_fatal": severities["fatal"], "hits_non_fatal": severities["non_fatal"],
        "hits_suspect": sum(h.suspect for h in hits),
        **{f"hits_class_{c}": classes[c] for c in ERROR_CLASS_KEYS},
        **{f"hits_{key}": categories[key] for key in CATEGORIES},
        "rule_counts": sorted(Counter(h.rule_id for h in hits).items()),
        "redline": redline_hits > 0, "redline_hits": redline_hits,
    }
    return row


def _asr_columns(evidence: CallEvidence, low_confidence_probability: float) -> dict[str, Any]:
    utterances = evidence.utterances
    probabilities = [w.probability for u in utterances for w in u.words]
    chars = {role: sum(len(u.text) for u in utterances if u.role == role) for role in (AGENT, CUSTOMER)}
    row: dict[str, Any] = {
        "utterance_count": len(utterances), "agent_chars": chars[AGENT], "customer_chars": chars[CUSTOMER],
        "word_count": len(probabilities),
        "asr_word_prob_mean": None, "asr_word_prob_p10": None, "asr_word_prob_min": None,
        "asr_low_conf_word_share": None,
        "asr_avg_logprob_mean": float(np.mean([u.avg_logprob for u in utterances])) if utterances else None,
        "suspect_utterance_share": (sum(u.suspect for u in utterances) / len(utterances)) if utterances else None,
    }
    if probabilities:
        array = np.asarray(probabilities, dtype=np.float64)
        row.update(asr_word_prob_mean=float(array.mean()), asr_word_prob_p10=float(np.percentile(array, 10)),
                   asr_word_prob_min=float(array.min()),
                   asr_low_conf_word_share=float((array < low_confidence_probability).mean()))
    return row


def _segment_columns(evidence: CallEvidence) -> dict[str, Any]:
    speech = {role: sum(s.duration_s for s in evidence.segments_of(role)) for role in (AGENT, CUSTOMER)}
    total = sum(s.duration_s for s in evidence.segments)
    mono = evidence.is_mono
    return {
        "agent_speech_s": None if mono else speech[AGENT], "customer_speech_s": None if mono else speech[CUSTOMER],
        "speech_share": total / evidence.duration_s if evidence.duration_s > 0 else None,
    }


def build_features(
    evidence: CallEvidence,
    hits: Sequence[Hit],
    timing_features: Mapping[str, float | int | str | None],
    call_facts: Mapping[str, object],
    versions: Versions,
    low_confidence_probability: float,
    *,
    coverage: Mapping[str, float | int | None] | None = None,
) -> dict[str, Any]:
    """Build one call's feature row (a dict with every :data:`FEATURES_SCHEMA` column).

    Pure: no I/O. Score and classifier columns are left empty; fill them with
    :func:`with_score` and :func:`with_prediction`.

    Args:
        evidence: the call's segments, utterances and metadata.
        hits: every hit of the text and timing detectors for this call.
        timing_features: the timing detectors' features (:data:`TIMING_FEATURES`).
        call_facts: facts from ingest: ``call_date``, ``agent_id``, ``team``,
            ``direction``, ``started_at``, ``source_sample_rate_hz``, ``codec``,
            ``channels`` (per-channel facts with ``clipping_ratio``). Missing
            keys fall back to ``evidence.metadata``, then to null.
        versions: what the analysis depended on.
        low_confidence_probability: ``[features] low_confidence_word_probability``.
        coverage: the coverage columns (:func:`pipeline.asr.coverage.coverage_columns`); None
            when the call was not transcribed (the columns stay null).

    Raises:
        ValueError: ``timing_features`` holds a name not declared in :data:`TIMING_FEATURES`.
    """
    unknown = set(timing_features) - _TIMING_NAMES
    if unknown:
        raise ValueError(f"undeclared timing features {sorted(unknown)}")
    meta: dict[str, Any] = {**dict(evidence.metadata), **{k: v for k, v in call_facts.items() if v is not None}}
    channels = meta.get("channels") or []
    clipping = [_num(c.get("clipping_ratio")) for c in channels if isinstance(c, Mapping)]
    known_clipping = [v for v in clipping if v is not None]
    row: dict[str, Any] = {f.name: None for f in FEATURES_SCHEMA}
    row.update(
        call_id=evidence.call_id, schema_version=FEATURES_SCHEMA_VERSION, **versions.columns(),
        call_date=None if meta.get("call_date") is None else str(meta["call_date"]),
        agent_id=meta.get("agent_id"), team=meta.get("team"), direction=meta.get("direction"),
        started_at=None if meta.get("started_at") is None else str(meta["started_at"]),
        duration_s=evidence.duration_s, is_mono=evidence.is_mono,
        source_sample_rate_hz=meta.get("source_sample_rate_hz"), codec=meta.get("codec"),
        clipping_ratio_max=max(known_clipping) if known_clipping else None,
    )
    row.update(_segment_columns(evidence))
    row.update(_hit_columns(hits))
    row.update(_asr_columns(evidence, low_confidence_probability))
    row.update({k: v for k, v in (coverage or {}).items() if k in _COVERAGE_NAMES})
    for feature in TIMING_FEATURES:
        value = timing_features.get(feature.name)
        if feature.kind == "category":
            row[feature.name] = None if value is None else str(value)
        else:
            number = _num(value)
            row[feature.name] = None if number is None else (
                int(round(number)) if feature.kind == "int" else number)
    return row


def with_score(row: Mapping[str, Any], result: Any) -> dict[str, Any]:
    """Return ``row`` with the score columns filled from a ``pipeline.scoring.scorecard.ScoreResult``."""
    return {
        **row, "scorecard_version": result.scorecard_version, "score": result.score, "grade": result.grade,
        "passed": result.passed, "fatal_failed": result.fatal,
        "failed_items": [item.item_id for item in result.failed_items],
        "failed_hit_ids": sorted({h for item in result.failed_items for h in item.hit_ids}),
        **{f"copc_{c}_pass": result.copc.get(c, True) for c in ERROR_CLASS_KEYS},
        "section_scores": sorted(result.section_scores.items()),
        "outcome": result.outcome, "outcome_reasons": list(result.outcome_reasons),
    }


def with_prediction(row: Mapping[str, Any], model: str, probability: float | None,
                    decision: str | None) -> dict[str, Any]:
    """Return ``row`` with the classifier columns filled."""
    return {**row, "classifier_model": model, "classifier_probability": probability,
            "classifier_decision": decision}


def features_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows from :func:`build_features` as a table with :data:`FEATURES_SCHEMA`."""
    return pa.Table.from_pylist(list(rows), schema=FEATURES_SCHEMA)


__all__ = ["FEATURES_SCHEMA", "FEATURES_SCHEMA_VERSION", "build_features", "features_table",
           "field_group", "model_feature_columns", "with_prediction", "with_score"]
