"""Red-line text model: hits from utterances, persistence, version checks, the shipped model on COLD dev."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.text.redline_model import (
    CARD_FILE,
    RULE_ID,
    RedlineTextModel,
    build_pipeline,
    find_redline_model,
    score_utterances,
)
from pipeline.errors import ModelError
from pipeline.records import CallEvidence, Utterance

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "redline_text"
COLD_DEV = REPO.parent / "shared" / "data" / "text" / "cold" / "dev.csv"

ABUSIVE = ["你去死吧", "神经病啊你", "你才聋了", "滚你的蛋", "你是白痴吗", "蠢货闭嘴", "去死吧混蛋", "你个神经病"]
POLITE = ["您好请问有什么可以帮您", "感谢您的来电", "请您稍等一下", "这个问题我帮您查询",
          "非常抱歉给您带来不便", "还有其他问题吗", "祝您生活愉快", "我帮您登记一下"]


@pytest.fixture(scope="module")
def model() -> RedlineTextModel:
    texts, labels = ABUSIVE * 3 + POLITE * 3, [1] * 24 + [0] * 24
    pipeline = build_pipeline(seed=0, n_features=2**12).fit(texts, labels)
    return RedlineTextModel(pipeline, 0.5, {"name": "tiny"})


def _evidence() -> CallEvidence:
    return CallEvidence("c9", 30.0, ("agent", "customer"), utterances=(
        Utterance("agent", 1.0, 3.0, "您好请问有什么可以帮您"),
        Utterance("agent", 5.0, 6.5, "你去死吧神经病"),
        Utterance("customer", 7.0, 8.0, "你去死吧"),  # customers are not scored by default
        Utterance("agent", 9.0, 10.0, "蠢货闭嘴", suspect=True, suspect_reason="low overlap"),
        Utterance("agent", 11.0, 11.2, "滚"),  # too short
    ))


def test_hits_for_abusive_agent_utterances(model) -> None:
    hits = score_utterances(_evidence(), model)
    assert [(h.start_s, h.role) for h in hits] == [(5.0, "agent"), (9.0, "agent")]
    first = hits[0]
    assert first.rule_id == RULE_ID and first.category == "redline_abuse" and first.match_type == "model"
    assert first.severity == "info" and first.error_class == "customer" and first.end_s == 6.5
    assert first.confidence >= 0.5 and json.loads(first.detail)["probability"] == pytest.approx(first.confidence,
                                                                                                abs=1e-3)
    assert hits[1].suspect and not first.suspect


def test_threshold_roles_and_severity(model) -> None:
    assert score_utterances(_evidence(), model, threshold=1.01) == []
    assert len(score_utterances(_evidence(), model, threshold=0.0)) == 2  # 0 = the model's own threshold
    hits = score_utterances(_evidence(), model, roles=("customer",), severity="fatal")
    assert [h.start_s for h in hits] == [7.0] and hits[0].severity == "fatal"
    mono = CallEvidence("m", 5.0, ("mixed",), utterances=(Utterance("mixed", 0, 2, "你去死吧"),))
    assert [h.role for h in score_utterances(mono, model)] == ["unknown"]


def test_find_model(tmp_path) -> None:
    assert find_redline_model("") is None
    assert find_redline_model(tmp_path / "absent") is None
    if SHIPPED.exists():
        assert find_redline_model("models/redline_text") is not None


def test_save_load_round_trip_and_mismatch(model, tmp_path) -> None:
    model.save(tmp_path / "m")
    loaded = RedlineTextModel.load(tmp_path / "m")
    texts = ABUSIVE + POLITE
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts))
    assert loaded.threshold == 0.5 and loaded.version.startswith("redline_text@")
    card = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    card["sklearn_version"] = "1.0.0"
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="scikit-learn 1.0.0"):
        RedlineTextModel.load(tmp_path / "m")
    with pytest.raises(ModelError, match="not a red-line text model"):
        RedlineTextModel.load(tmp_path / "missing")


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped model in models/redline_text")
def test_shipped_model_on_cold_dev(tmp_path) -> None:
    if not COLD_DEV.exists():
        pytest.skip("COLD dev split not available (needs ../shared/data/text/cold)")
    shutil.copytree(SHIPPED, tmp_path / "m")
    loaded = RedlineTextModel.load(tmp_path / "m")
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 20e6
    dev = pd.read_csv(COLD_DEV).sample(1000, random_state=0)
    flagged = loaded.predict_proba(dev["TEXT"].tolist()) >= loaded.threshold
    truth = dev["label"].to_numpy() == 1
    precision = (flagged & truth).sum() / flagged.sum()
    recall = (flagged & truth).sum() / truth.sum()
    assert precision > 0.85 and recall > 0.8
    results = loaded.card["dev_results"]
    assert results["model_only"]["f1"] > results["lexicon_only"]["f1"]


def test_model_hits_flag_red_line_without_failing_the_scorecard(model) -> None:
    from pipeline.scoring.features import build_features
    from pipeline.scoring.scorecard import load_scorecard, score_call

    hits = [h for h in score_utterances(_evidence(), model) if not h.suspect]
    row = build_features(_evidence(), hits, {}, {}, {})
    assert row["redline"] is True and dict(row["rule_counts"]) == {RULE_ID: 1}
    result = score_call(hits, row, load_scorecard())
    assert result.redline and not result.fatal and result.passed
    fatal_hits = score_utterances(_evidence(), model, severity="fatal")
    assert score_call(fatal_hits, row, load_scorecard()).fatal
