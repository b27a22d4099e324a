"""Red-line text model: hits from utterances, persistence, version checks, the shipped model on COLD dev."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ModelError
from pipeline.records import CallEvidence, Utterance
from pipeline.text.redline_model import (
    CARD_FILE,
    RULE_ID,
    RedlineTextModel,
    build_pipeline,
    redline_model_path,
    redline_version,
    score_utterances,
)
from pipeline.versions import Versions

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
    assert len(score_utterances(_evidence(), model, threshold="model")) == 2  # the model's own threshold
    # 0 is a threshold like any other now (callqa 0.1 read it as "the model's own"): every agent
    # utterance of at least min_chars characters is a hit
    assert [h.start_s for h in score_utterances(_evidence(), model, threshold=0.0)] == [1.0, 5.0, 9.0]
    assert [h.start_s for h in score_utterances(_evidence(), model, threshold=0.0, min_chars=1)] == [
        1.0, 5.0, 9.0, 11.0]
    hits = score_utterances(_evidence(), model, roles=("customer",), severity="fatal")
    assert [h.start_s for h in hits] == [7.0] and hits[0].severity == "fatal"
    mono = CallEvidence("m", 5.0, ("mixed",), utterances=(Utterance("mixed", 0, 2, "你去死吧"),))
    assert [h.role for h in score_utterances(mono, model)] == ["unknown"]


def test_model_path_and_version_from_the_config_value(tmp_path) -> None:
    assert redline_model_path("off") is None and redline_version("off") is None
    with pytest.raises(ModelError, match="no red-line text model here"):
        redline_model_path(str(tmp_path / "absent"))  # a wrong path never silently turns the model off
    shipped = redline_model_path("callqa:models/redline_text")
    assert (shipped / CARD_FILE).is_file() and shipped.resolve() == SHIPPED.resolve()
    card = json.loads((SHIPPED / CARD_FILE).read_text(encoding="utf-8"))
    assert redline_version("callqa:models/redline_text") == "redline_text@" + card["model_sha256"][:12]


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
    with pytest.raises(ModelError, match=f"not a model directory \\({CARD_FILE}"):
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


def test_model_hits_flag_red_line_for_review_without_failing_the_scorecard(model) -> None:
    from pipeline.scoring.features import build_features
    from pipeline.scoring.scorecard import load_scorecard, score_call

    hits = [h for h in score_utterances(_evidence(), model) if not h.suspect]
    versions = Versions("c", "a", "m", "r", "timing-1", model.version)
    row = build_features(_evidence(), hits, {}, {}, versions, 0.5)
    assert row["redline"] is True and dict(row["rule_counts"]) == {RULE_ID: 1}
    result = score_call(hits, row, load_scorecard())
    assert result.redline and not result.fatal and result.score == 100.0
    # A red line only the model saw is never a pass (callqa 0.1 passed it): a reviewer decides.
    assert (result.outcome, result.outcome_reasons, result.passed) == ("needs_review", ("redline_model_only",), False)
    fatal_hits = score_utterances(_evidence(), model, severity="fatal")
    assert score_call(fatal_hits, row, load_scorecard()).fatal


def test_the_configured_model_is_what_the_analysis_applies(tmp_path, model) -> None:
    from pipeline.analysis import Resources, text_hits
    from pipeline.config import load_config

    config = load_config()
    shipped = Resources.load(config, transcriber=None, text=True)
    assert shipped.redline.version == redline_version("callqa:models/redline_text") == shipped.versions.redline_model
    model.save(tmp_path / "tiny")
    tiny = Resources.load(config.with_overrides({"classifier": {"redline_model": str(tmp_path / "tiny")}}),
                          transcriber=None, text=True)
    found = [h for h in text_hits(_evidence(), tiny) if h.rule_id == RULE_ID]
    version = tiny.redline.version
    assert [(h.start_s, h.detector_version) for h in found] == [(5.0, version), (9.0, version)]
    off = Resources.load(config.with_overrides({"classifier": {"redline_model": "off"}}), transcriber=None, text=True)
    assert off.redline is None and off.versions.redline_model == "none"
    assert not [h for h in text_hits(_evidence(), off) if h.rule_id == RULE_ID]
