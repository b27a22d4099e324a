"""Feature rows: values from hits/evidence/timing, schema round-trip through the store."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.scoring.features import (
    FEATURES_SCHEMA,
    build_features,
    features_table,
    load,
    model_feature_columns,
    with_prediction,
    with_score,
)
from pipeline.records import CATEGORIES, CallEvidence, Hit, SpeechSegment, Utterance, Word
from pipeline.scoring.scorecard import load_scorecard, score_call
from pipeline.store import Store

VERSIONS = {"config_hash": "cfg1", "model_id": "whisper@x", "rules_version": "rules1"}


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
                                                "agent_rate_chars_per_min_p90": 250, "novel_metric": 3, "note": "x"}
    facts = {"call_date": "2026-11-22", "direction": "inbound",
             "channels": [{"role": "agent", "clipping_ratio": 0.01}, {"role": "customer", "clipping_ratio": 0.2}]}
    return build_features(_evidence(), hits, timing, facts, VERSIONS)


def test_counts_flags_and_stats() -> None:
    row = _row()
    assert row["hits_total"] == 3 and row["hits_fatal"] == 1 and row["hits_non_fatal"] == 2
    assert row["hits_verbal_tic"] == 2 and row["hits_redline_abuse"] == 1 and row["hits_opening"] == 0
    assert row["hits_class_customer"] == 1
    assert dict(row["rule_counts"]) == {"abuse.die": 1, "tic.a": 2}
    assert row["redline"] is True and row["redline_hits"] == 1
    assert row["asr_word_prob_mean"] == pytest.approx(0.75)
    assert row["asr_word_prob_min"] == pytest.approx(0.3)
    assert row["asr_low_conf_word_share"] == pytest.approx(0.25)
    assert row["suspect_utterance_share"] == pytest.approx(0.5)
    assert row["agent_chars"] == 4 and row["customer_chars"] == 4
    assert row["agent_speech_s"] == pytest.approx(20.0) and row["customer_speech_s"] == pytest.approx(30.0)
    assert row["agent_talk_ratio"] == pytest.approx(0.4)
    assert row["agent_loudness_dbfs_mean"] == pytest.approx(-22.0)
    assert row["clipping_ratio_max"] == pytest.approx(0.2)
    assert row["team"] == "t1" and row["direction"] == "inbound" and row["call_date"] == "2026-11-22"


def test_timing_mapping_typed_and_other() -> None:
    row = _row(timing={"silence_count": 2.0, "silence_total_s": 7.5, "agent_talk_ratio": 0.9, "novel_metric": 3,
                       "note": "text is dropped", "answer_delay_s": None})
    assert row["silence_count"] == 2 and isinstance(row["silence_count"], int)
    assert row["silence_total_s"] == 7.5
    assert row["agent_talk_ratio"] == 0.9  # the timing detector wins over the segment fallback
    assert row["answer_delay_s"] is None
    assert dict(row["timing_other"]) == {"novel_metric": 3.0}


def test_no_hits_no_redline() -> None:
    row = _row(hits=[])
    assert row["redline"] is False and row["hits_total"] == 0
    suspect = _row(hits=[_hit("abuse.die", "redline_abuse", "fatal", suspect=True)])
    assert suspect["redline"] is False and suspect["hits_redline_abuse"] == 1 and suspect["hits_suspect"] == 1
    assert all(row[f"hits_{c}"] == 0 for c in CATEGORIES)


def test_schema_round_trip_through_store(tmp_path) -> None:
    scorecard = load_scorecard()
    hits = [_hit("abuse.die", "redline_abuse", "fatal")]
    row = with_prediction(with_score(_row(hits), score_call(hits, _row(hits), scorecard)), "m@1", 0.8, "fail")
    table = features_table([row])
    assert table.schema.remove(table.schema.get_field_index("call_date")).equals(FEATURES_SCHEMA)
    Store(tmp_path).commit({"features": [row]})
    loaded = load(tmp_path)
    assert loaded.num_rows == 1
    back = loaded.to_pylist()[0]
    for name in ("call_id", "hits_total", "redline", "silence_total_s", "failed_items", "classifier_decision",
                 "score", "grade", "passed", "copc_customer_pass"):
        assert back[name] == table.column(name)[0].as_py(), name
    assert back["passed"] is False and back["score"] == 0.0 and back["failed_items"] == ["redline_abuse"]
    assert back["failed_hit_ids"] == [hits[0].hit_id]
    assert back["call_date"] == "2026-11-22"
    assert load(tmp_path, dates=["2026-01-01"]).num_rows == 0
    # plain pyarrow (no callqa) reads the same files with hive partitioning
    files = list((tmp_path / "features").glob("date=*/*.parquet"))
    assert pq.read_table(files[0]).schema.field("hits_total").type == pa.int32()


def test_every_column_documented_and_model_features_numeric() -> None:
    assert FEATURES_SCHEMA.metadata[b"schema_version"] == b"1"
    for field in FEATURES_SCHEMA:
        assert field.metadata and field.metadata.get(b"doc"), field.name
    columns = model_feature_columns()
    assert "hits_redline_abuse" in columns and "silence_total_s" in columns
    assert "score" not in columns and "classifier_probability" not in columns and "call_id" not in columns


def test_feature_docs_are_generated_from_the_schema() -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gen_feature_docs.py"
    spec = importlib.util.spec_from_file_location("gen_feature_docs", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for field in FEATURES_SCHEMA:
        assert f"| `{field.name}` |" in text
    assert module.main(["--check"]) == 0, "docs/features.md is stale: run python scripts/gen_feature_docs.py"


def test_features_from_the_timing_detectors() -> None:
    """Every key detect_timing returns lands in a typed column or in timing_other; nothing is lost."""
    detectors = pytest.importorskip("pipeline.timing.detect")
    from pipeline.config import load_config

    evidence = _evidence()
    result = detectors.detect_timing(evidence, load_config().timing, None, ["请稍等"], ["嗯"])
    row = build_features(evidence, list(result.hits), result.features, {}, VERSIONS)
    other = dict(row["timing_other"])
    for key, value in result.features.items():
        if key in ("agent_chars", "customer_chars", "agent_speech_s", "customer_speech_s"):
            continue  # computed here from the evidence (same meaning)
        if isinstance(value, str):
            assert row[key] == value, key
        elif value is not None and value == value:  # not NaN
            stored = row[key] if key in row else other[key]
            assert stored == pytest.approx(value), key
    assert row["hangup_party"] in ("agent", "customer", "unknown")
    features_table([row])  # every value fits the schema
