"""Feature rows: values from hits/evidence/timing, schema round-trip through the store, generated docs."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.config import load_config
from pipeline.records import CATEGORIES, CallEvidence, Hit, SpeechSegment, Utterance, Word
from pipeline.scoring.features import (
    FEATURES_SCHEMA,
    FEATURES_SCHEMA_VERSION,
    build_features,
    features_table,
    model_feature_columns,
    with_prediction,
    with_score,
)
from pipeline.scoring.scorecard import load_scorecard, score_call
from pipeline.store import CallResult, Store, new_result_id
from pipeline.store.rows import features_row
from pipeline.timing.detect import TIMING_FEATURES, detect_timing
from pipeline.versions import Versions

VERSIONS = Versions("cfg1", "2026.11.3", "whisper@x", "rules1", "timing-1", "none")
REPO = Path(__file__).resolve().parents[1]


def _hit(rule: str, category: str, severity: str = "non_fatal", start_s: float = 1.0, suspect: bool = False,
         error_class: str = "none") -> Hit:
    return Hit("c1", rule, "rules1", category, severity, error_class, "agent", start_s, start_s + 1, "exact",
               suspect=suspect)


def _evidence() -> CallEvidence:
    return CallEvidence(
        call_id="c1", duration_s=40.0, roles=("agent", "customer"),
        segments=(SpeechSegment("agent", 0, 10, -20), SpeechSegment("customer", 10, 40, -30),
                  SpeechSegment("agent", 20, 30, -24)),
        utterances=(
            Utterance("agent", 0, 4, "您好请问", words=(Word("您好", 0, 1, 0.9), Word("请问", 1, 2, 0.3))),
            Utterance("customer", 10, 12, "我要退款", words=(Word("我要", 10, 11, 0.8), Word("退款", 11, 12, 1.0)),
                      suspect=True, suspect_reason="low overlap"),
        ),
        metadata={"team": "t1", "agent_id": "a7"},
    )


def _row(hits: list[Hit] | None = None, timing: dict | None = None) -> dict:
    hits = hits if hits is not None else [
        _hit("abuse.die", "redline_abuse", "fatal", error_class="customer"),
        _hit("tic.a", "verbal_tic", start_s=2), _hit("tic.a", "verbal_tic", start_s=5),
    ]
    timing = timing if timing is not None else {"silence_total_s": 7.5, "silence_count": 2.0,
                                                "agent_rate_chars_per_min_p90": 250}
    facts = {"call_date": "2026-11-22", "direction": "inbound",
             "channels": [{"role": "agent", "clipping_ratio": 0.01}, {"role": "customer", "clipping_ratio": 0.2}]}
    return build_features(_evidence(), hits, timing, facts, VERSIONS, 0.5)


def test_counts_flags_and_stats() -> None:
    row = _row()
    assert row["hits_total"] == 3 and row["hits_fatal"] == 1 and row["hits_non_fatal"] == 2
    assert row["hits_verbal_tic"] == 2 and row["hits_redline_abuse"] == 1 and row["hits_opening"] == 0
    assert row["hits_class_customer"] == 1
    assert dict(row["rule_counts"]) == {"abuse.die": 1, "tic.a": 2}
    assert row["redline"] is True and row["redline_hits"] == 1
    assert row["asr_word_prob_mean"] == pytest.approx(0.75)
    assert row["asr_word_prob_min"] == pytest.approx(0.3)
    assert row["asr_low_conf_word_share"] == pytest.approx(0.25)  # 1 of 4 words below 0.5
    assert row["suspect_utterance_share"] == pytest.approx(0.5)
    assert row["agent_chars"] == 4 and row["customer_chars"] == 4
    assert row["agent_speech_s"] == pytest.approx(20.0) and row["customer_speech_s"] == pytest.approx(30.0)
    assert row["speech_share"] == pytest.approx(50.0 / 40.0)  # speech of all roles (overlap counted per role)
    assert row["clipping_ratio_max"] == pytest.approx(0.2)
    assert row["team"] == "t1" and row["direction"] == "inbound" and row["call_date"] == "2026-11-22"
    assert {k: row[k] for k in VERSIONS.columns()} == VERSIONS.columns()
    assert row["schema_version"] == FEATURES_SCHEMA_VERSION == 3
    assert row["score"] is None and row["classifier_model"] is None  # filled later by with_score / with_prediction


def test_low_confidence_threshold_comes_from_the_caller() -> None:
    strict = build_features(_evidence(), [], {}, {}, VERSIONS, 0.85)
    assert strict["asr_low_conf_word_share"] == pytest.approx(0.5)  # 0.3 and 0.8 are below 0.85


def test_timing_values_are_typed_and_undeclared_names_refused() -> None:
    row = _row(timing={"silence_count": 2.0, "silence_total_s": 7.5, "agent_talk_ratio": 0.9,
                       "answer_delay_s": None, "hangup_party": "agent", "hangup_estimated": 1.0})
    assert row["silence_count"] == 2 and isinstance(row["silence_count"], int)
    assert row["silence_total_s"] == 7.5 and row["agent_talk_ratio"] == 0.9
    assert row["answer_delay_s"] is None and row["hangup_party"] == "agent" and row["hangup_estimated"] == 1
    assert row["dead_air_count"] is None  # not given: missing, not 0
    nan = _row(timing={"response_latency_median_s": math.nan})
    assert nan["response_latency_median_s"] is None  # NaN (nothing measured) is stored as null
    # callqa 0.1 put unknown keys into a timing_other map; a detector emitting an undeclared name is a bug now
    assert "timing_other" not in row
    with pytest.raises(ValueError, match=r"undeclared timing features \['novel_metric'\]"):
        _row(timing={"novel_metric": 3})


def test_no_hits_no_redline() -> None:
    row = _row(hits=[])
    assert row["redline"] is False and row["hits_total"] == 0
    assert all(row[f"hits_{c}"] == 0 for c in CATEGORIES)
    suspect = _row(hits=[_hit("abuse.die", "redline_abuse", "fatal", suspect=True)])
    assert suspect["redline"] is False and suspect["hits_redline_abuse"] == 1 and suspect["hits_suspect"] == 1


def test_schema_round_trip_through_store(tmp_path) -> None:
    scorecard = load_scorecard()
    hits = [_hit("abuse.die", "redline_abuse", "fatal")]
    row = with_prediction(with_score(_row(hits), score_call(hits, _row(hits), scorecard)), "m@1", 0.8, "fail")
    table = features_table([row])
    assert table.schema.equals(FEATURES_SCHEMA)
    store = Store(tmp_path / "store", create=True)
    score_id = new_result_id()
    key = {"call_id": "c1", "call_date": "2026-11-22"}
    call = {**key, **VERSIONS.columns(), "transcript_id": new_result_id(), "analysis_id": new_result_id(),
            "score_id": score_id, "status": "ok"}
    store.commit([CallResult(call, {"features": [features_row({**row, "score_id": score_id})]})])
    [back] = store.read("features").to_pylist()
    for name in ("call_id", "hits_total", "redline", "silence_total_s", "failed_items", "classifier_decision",
                 "classifier_model", "score", "grade", "passed", "copc_customer_pass", "outcome", "outcome_reasons",
                 "config_hash", "asr_model", "rules_version"):
        assert back[name] == pytest.approx(table.column(name)[0].as_py()), name
    assert back["passed"] is False and back["score"] == 0.0 and back["failed_items"] == ["redline_abuse"]
    assert back["outcome"] == "fail" and back["failed_hit_ids"] == [hits[0].hit_id]
    assert back["call_date"] == "2026-11-22" and back["features_schema_version"] == 3
    assert back["classifier_probability"] == pytest.approx(0.8)
    assert store.read("features", dates=["2026-01-01"]).num_rows == 0
    assert store.read("features", dates=["2026-11-22"]).num_rows == 1
    # the store's features table takes its own columns from the features schema
    stored = store.read("features").schema
    for field in FEATURES_SCHEMA:
        if field.name not in ("schema_version",):
            assert field.name in stored.names, field.name
    assert stored.field("hits_total").type == pa.int32()


def test_every_column_documented_and_model_features_numeric() -> None:
    assert FEATURES_SCHEMA.metadata[b"schema_version"] == b"3"
    for field in FEATURES_SCHEMA:
        assert field.metadata and field.metadata.get(b"doc"), field.name
    columns = model_feature_columns()
    assert "hits_redline_abuse" in columns and "silence_total_s" in columns and "agent_talk_ratio" in columns
    assert "score" not in columns and "classifier_probability" not in columns and "call_id" not in columns
    assert "hangup_party" not in columns  # categorical: one-hot encoded by the classifier, not a number
    # every timing feature has exactly one typed column, declared by its detector
    timing = [f.name for f in FEATURES_SCHEMA if (f.metadata or {}).get(b"group") == b"timing"]
    assert timing == [f.name for f in TIMING_FEATURES]


def _docs_script():
    spec = importlib.util.spec_from_file_location("gen_feature_docs", REPO / "scripts" / "gen_feature_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_feature_docs_render_every_column() -> None:
    text = _docs_script().render()
    for field in FEATURES_SCHEMA:
        assert f"| `{field.name}` |" in text


def test_feature_docs_are_up_to_date() -> None:
    assert _docs_script().main(["--check"]) == 0, "docs/features.md is stale: run python scripts/gen_feature_docs.py"


def test_features_from_the_timing_detectors() -> None:
    """Every key detect_timing returns lands in its typed column; nothing is lost or renamed."""
    evidence = _evidence()
    result = detect_timing(evidence, load_config().timing, None, ["请稍等"], ["嗯"])
    row = build_features(evidence, list(result.hits), result.features, {}, VERSIONS, 0.5)
    assert set(result.features) == {f.name for f in TIMING_FEATURES}
    for key, value in result.features.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            assert row[key] is None, key
        elif isinstance(value, str):
            assert row[key] == value, key
        else:
            assert row[key] == pytest.approx(value), key
    # values measured from the evidence by the detectors (agent 0-10 s and 20-30 s, customer 10-40 s)
    assert row["agent_talk_ratio"] == pytest.approx(20.0 / 50.0)
    assert row["agent_loudness_dbfs_mean"] == pytest.approx(-22.0)
    assert row["hangup_party"] in ("agent", "customer", "unknown")
    features_table([row])  # every value fits the schema
