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

``build_features`` is pure; :func:`load` reads committed rows of a store,
and the files are plain hive-partitioned Parquet that DuckDB or Polars read
without callqa (``read_parquet('STORE/features/*/*.parquet', hive_partitioning=true)``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import AGENT, CATEGORIES, CUSTOMER, REDLINE_CATEGORIES, CallEvidence, Hit
from pipeline.store import COMMON_FIELDS, Store, register_schema

#: Version of the features table's columns; bump it when a column changes.
FEATURES_SCHEMA_VERSION = 1
_DICT = pa.dictionary(pa.int32(), pa.string())
ERROR_CLASS_KEYS = ("customer", "business", "compliance")
#: Categorical classifier inputs (one-hot encoded by the classifier).
CATEGORICAL_FEATURES = ("direction", "hangup_party")
#: Words recognised with a probability below this count as low-confidence.
LOW_CONFIDENCE_PROBABILITY = 0.5


def _f(name: str, kind: pa.DataType, group: str, doc: str) -> pa.Field:
    return pa.field(name, kind, nullable=True, metadata={"doc": doc, "group": group})


#: Typed timing columns filled from the timing detectors' feature mapping;
#: any other key of that mapping goes to ``timing_other``.
TIMING_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    **{f"{role}_rate_chars_per_min_{stat}": (pa.float32(), f"{role.capitalize()} speech rate, {text} (chars/min).")
       for role in ("agent", "customer", "mixed")
       for stat, text in (("mean", "mean over rated utterances"), ("p90", "90th percentile over utterances"),
                          ("overall", "characters / rated speech time"))},
    **{f"{role}_rated_speech_s": (pa.float32(), f"{role.capitalize()} speech time long enough to rate (s).")
       for role in ("agent", "customer", "mixed")},
    "silence_count": (pa.int32(), "Silences (nobody speaking) of at least timing.silence_min_s, holds included."),
    "silence_total_s": (pa.float32(), "Total time of those silences (s)."),
    "silence_max_s": (pa.float32(), "Longest silence (s)."),
    "dead_air_count": (pa.int32(), "Unexcused silences (not announced as a hold)."),
    "dead_air_total_s": (pa.float32(), "Total unexcused silence (s)."),
    "dead_air_max_s": (pa.float32(), "Longest unexcused silence (s)."),
    "hold_count": (pa.int32(), "Holds: silences announced by the agent (请稍等, ...)."),
    "hold_total_s": (pa.float32(), "Total hold time (s)."),
    "hold_max_s": (pa.float32(), "Longest hold (s)."),
    "answer_delay_s": (pa.float32(), "Time from call start to the agent's first words (s)."),
    "first_speech_s": (pa.float32(), "Time from call start to anyone's first speech (s)."),
    "interruptions_agent_count": (pa.int32(), "Times the agent started speaking over the customer (QA fault)."),
    "interruptions_customer_count": (pa.int32(), "Times the customer started speaking over the agent."),
    "interruptions_overlap_s": (pa.float32(), "Overlap time of those interruptions (s)."),
    "response_latency_count": (pa.int32(), "Agent replies after a customer turn."),
    "response_latency_mean_s": (pa.float32(), "Mean gap from a customer turn's end to the agent's reply (s)."),
    "response_latency_median_s": (pa.float32(), "Median agent response latency (s)."),
    "response_latency_p90_s": (pa.float32(), "90th percentile of the agent's response latency (s)."),
    "response_latency_max_s": (pa.float32(), "Longest agent response latency (s)."),
    "speech_total_s": (pa.float32(), "Speech time of all roles (s)."),
    "agent_talk_ratio": (pa.float32(), "Agent speech time / (agent + customer speech time)."),
    "overlap_total_s": (pa.float32(), "Time both roles speak at once (s)."),
    "longest_monologue_s": (pa.float32(), "Longest stretch one role speaks without the other (s)."),
    "agent_speech_level_dbfs_median": (pa.float32(), "Agent's median speech loudness (dBFS), the raised-voice "
                                                     "baseline."),
    "customer_speech_level_dbfs_median": (pa.float32(), "Customer's median speech loudness (dBFS)."),
    "agent_raised_voice_count": (pa.int32(), "Spans where the agent is timing.raised_voice_db above own median."),
    "agent_raised_voice_s": (pa.float32(), "Total agent raised-voice time (s)."),
    "customer_raised_voice_count": (pa.int32(), "Customer raised-voice spans (agitation signal)."),
    "customer_raised_voice_s": (pa.float32(), "Total customer raised-voice time (s)."),
    "agent_loudness_dbfs_mean": (pa.float32(), "Mean loudness of the agent's speech segments (dBFS)."),
    "agent_loudness_dbfs_std": (pa.float32(), "Spread of the agent's segment loudness (dB)."),
    "customer_loudness_dbfs_mean": (pa.float32(), "Mean loudness of the customer's speech segments (dBFS)."),
    "customer_loudness_dbfs_std": (pa.float32(), "Spread of the customer's segment loudness (dB)."),
    "hangup_party": (_DICT, "Who hung up first: agent, customer or unknown (metadata, else estimated)."),
    "hangup_estimated": (pa.int32(), "1 if hangup_party was estimated from the audio, 0 if from metadata."),
    "trailing_silence_s": (pa.float32(), "Silence after the last speech until the call ends (s)."),
}

_FIELDS: list[pa.Field] = [
    *COMMON_FIELDS,
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
    *[_f(name, kind, "timing", doc) for name, (kind, doc) in TIMING_COLUMNS.items()],
    _f("timing_other", pa.map_(pa.string(), pa.float64()), "timing_extra",
       "Other numeric features from the timing detectors, by name."),
    _f("utterance_count", pa.int32(), "asr", "Recognised utterances."),
    _f("agent_chars", pa.int32(), "asr", "Characters the agent said (recognised)."),
    _f("customer_chars", pa.int32(), "asr", "Characters the customer said (recognised)."),
    _f("word_count", pa.int32(), "asr", "Recognised words with timings."),
    _f("asr_word_prob_mean", pa.float32(), "asr", "Mean word probability."),
    _f("asr_word_prob_p10", pa.float32(), "asr", "10th percentile of word probability."),
    _f("asr_word_prob_min", pa.float32(), "asr", "Lowest word probability."),
    _f("asr_low_conf_word_share", pa.float32(), "asr",
       f"Share of words with probability below {LOW_CONFIDENCE_PROBABILITY}."),
    _f("asr_avg_logprob_mean", pa.float32(), "asr", "Mean Whisper avg_logprob over utterances."),
    _f("suspect_utterance_share", pa.float32(), "asr", "Share of utterances the hallucination guard distrusts."),
    _f("scorecard_version", _DICT, "score", "Scorecard version that scored the row."),
    _f("score", pa.float32(), "score", "Scorecard score 0-100 (0 when a fatal item failed)."),
    _f("grade", _DICT, "score", "Grade from the scorecard's score bands."),
    _f("passed", pa.bool_(), "score", "True if score >= pass score and no fatal item failed."),
    _f("fatal_failed", pa.bool_(), "score", "True if a fatal item failed (the call fails outright)."),
    _f("failed_items", pa.list_(pa.string()), "score", "Ids of the scorecard items that failed."),
    _f("failed_hit_ids", pa.list_(pa.string()), "score", "Hit ids that are evidence for failed items."),
    *[_f(f"copc_{c}_pass", pa.bool_(), "score", f"COPC {c} critical-error class passed.")
      for c in ERROR_CLASS_KEYS],
    _f("section_scores", pa.map_(pa.string(), pa.float32()), "score",
       "Score 0-100 per scorecard section (服务礼仪, 服务技能, ...)."),
    _f("classifier_model", _DICT, "classifier", "Promoted classifier that scored the row (name@hash)."),
    _f("classifier_probability", pa.float32(), "classifier",
       "Calibrated probability of the model's positive class (binary) or of the predicted grade (ordinal)."),
    _f("classifier_decision", _DICT, "classifier", "Label the classifier predicts at its chosen threshold."),
]

#: The features table's schema (store schema: no ``call_date``, added on read).
FEATURES_SCHEMA = pa.schema(_FIELDS, metadata={"schema_version": str(FEATURES_SCHEMA_VERSION)})
register_schema("features", FEATURES_SCHEMA)

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


def _asr_columns(evidence: CallEvidence) -> dict[str, Any]:
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
                   asr_low_conf_word_share=float((array < LOW_CONFIDENCE_PROBABILITY).mean()))
    return row


def _segment_columns(evidence: CallEvidence) -> dict[str, Any]:
    speech = {role: sum(s.duration_s for s in evidence.segments_of(role)) for role in (AGENT, CUSTOMER)}
    total = sum(s.duration_s for s in evidence.segments)
    mono = evidence.is_mono
    row: dict[str, Any] = {
        "agent_speech_s": None if mono else speech[AGENT], "customer_speech_s": None if mono else speech[CUSTOMER],
        "speech_share": total / evidence.duration_s if evidence.duration_s > 0 else None,
    }
    # Fallbacks used only when the timing detectors do not provide these keys.
    both = speech[AGENT] + speech[CUSTOMER]
    row["agent_talk_ratio"] = speech[AGENT] / both if both > 0 and not evidence.is_mono else None
    for role in (AGENT, CUSTOMER):
        mean, std = _stats([s.loudness_dbfs for s in evidence.segments_of(role) if math.isfinite(s.loudness_dbfs)])
        row[f"{role}_loudness_dbfs_mean"], row[f"{role}_loudness_dbfs_std"] = mean, std
    return row


def build_features(
    evidence: CallEvidence,
    hits: Sequence[Hit],
    timing_features: Mapping[str, float | int | str | None],
    call_facts: Mapping[str, object],
    versions: Mapping[str, str],
) -> dict[str, Any]:
    """Build one call's feature row (a dict with every :data:`FEATURES_SCHEMA` column).

    Pure: no I/O. Score and classifier columns are left empty; fill them with
    :func:`with_score` and :func:`with_prediction`.

    Args:
        evidence: the call's segments, utterances and metadata.
        hits: every hit of the text and timing detectors for this call.
        timing_features: the timing detectors' feature mapping; keys in
            :data:`TIMING_COLUMNS` get typed columns, other numeric keys go to
            ``timing_other``; these values win over the segment-based fallbacks.
        call_facts: facts from ingest: ``call_date`` (partition key, required
            to commit), ``agent_id``, ``team``, ``direction``, ``started_at``,
            ``source_sample_rate_hz``, ``codec``, ``channels`` (per-channel
            facts with ``clipping_ratio``) or ``clipping_ratio_max``. Missing
            keys fall back to ``evidence.metadata``, then to null.
        versions: ``config_hash``, ``model_id``, ``rules_version``.

    Returns:
        The row, including ``call_date`` when known.
    """
    meta: dict[str, Any] = {**dict(evidence.metadata), **{k: v for k, v in call_facts.items() if v is not None}}
    channels = meta.get("channels") or []
    clipping = [_num(c.get("clipping_ratio")) for c in channels if isinstance(c, Mapping)]
    clipping_max = _num(meta.get("clipping_ratio_max"))
    if clipping_max is None and any(v is not None for v in clipping):
        clipping_max = max(v for v in clipping if v is not None)
    row: dict[str, Any] = {f.name: None for f in FEATURES_SCHEMA}
    row.update(
        call_id=evidence.call_id, chunk_id="", schema_version=FEATURES_SCHEMA_VERSION,
        config_hash=versions.get("config_hash", "none"), model_id=versions.get("model_id", "none"),
        rules_version=versions.get("rules_version", "none"),
        agent_id=meta.get("agent_id"), team=meta.get("team"), direction=meta.get("direction"),
        started_at=None if meta.get("started_at") is None else str(meta["started_at"]),
        duration_s=evidence.duration_s, is_mono=evidence.is_mono,
        source_sample_rate_hz=meta.get("source_sample_rate_hz"), codec=meta.get("codec"),
        clipping_ratio_max=clipping_max,
    )
    row.update(_segment_columns(evidence))
    row.update(_hit_columns(hits))
    row.update(_asr_columns(evidence))
    other: dict[str, float] = {}
    for key, value in timing_features.items():
        number = _num(value)
        if key in TIMING_COLUMNS and pa.types.is_dictionary(TIMING_COLUMNS[key][0]):
            row[key] = None if value is None else str(value)
        elif key in TIMING_COLUMNS:
            if number is not None:
                row[key] = int(round(number)) if pa.types.is_integer(TIMING_COLUMNS[key][0]) else number
        elif number is not None and key not in row:
            other[key] = number
    row["timing_other"] = sorted(other.items())
    if meta.get("call_date") is not None:
        row["call_date"] = str(meta["call_date"])
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
    }


def with_prediction(row: Mapping[str, Any], model: str, probability: float | None,
                    decision: str | None) -> dict[str, Any]:
    """Return ``row`` with the classifier columns filled."""
    return {**row, "classifier_model": model, "classifier_probability": probability,
            "classifier_decision": decision}


def features_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows from :func:`build_features` as a table with :data:`FEATURES_SCHEMA`.

    A ``call_date`` column (string) is appended when the rows carry one, so
    the table looks like what :func:`load` returns.
    """
    rows = list(rows)
    table = pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
    if rows and all("call_date" in r for r in rows):
        table = table.append_column("call_date", pa.array([r["call_date"] for r in rows], pa.string()))
    return table


def load(store_root: str | Path, dates: Iterable[str] | None = None) -> pa.Table:
    """Committed, current feature rows of a store (``.to_pandas()`` for a DataFrame).

    Args:
        store_root: the store directory given to ``callqa run``.
        dates: keep only these call dates ('YYYY-MM-DD'); None = all.

    Returns:
        A table with :data:`FEATURES_SCHEMA` columns plus ``call_date``.
    """
    table = Store(store_root).read("features")
    if dates is not None:
        wanted = pa.array(sorted(set(dates)), pa.string())
        table = table.filter(pc.is_in(table["call_date"], value_set=wanted))
    return table


__all__ = ["FEATURES_SCHEMA", "FEATURES_SCHEMA_VERSION", "TIMING_COLUMNS", "build_features", "features_table",
           "load", "model_feature_columns", "with_prediction", "with_score"]
