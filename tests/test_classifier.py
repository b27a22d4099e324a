"""Classifiers learn a known signal, are calibrated, carry a model card, refuse mismatches; registry works."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sklearn

from pipeline.scoring.classifier import (
    CARD_JSON,
    MODEL_FILE,
    load_labels,
    load_model,
    predict,
    predict_promoted,
    save_model,
)
from pipeline.scoring.evaluate import compare_models, evaluate, list_models, promote
from pipeline.scoring.train import choose_threshold, train
from pipeline.errors import ModelError
from pipeline.scoring.features import model_feature_columns


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Feature rows where failing depends on silence and forbidden phrases only; grades on the same signal."""
    rng = np.random.default_rng(seed)
    columns = model_feature_columns()
    frame = pd.DataFrame(rng.normal(size=(n, len(columns))), columns=columns)
    frame["call_id"] = [f"c{i:04d}" for i in range(n)]
    frame["direction"] = rng.choice(["inbound", "outbound"], n)
    frame["hangup_party"] = rng.choice(["agent", "customer", None], n)
    frame.loc[rng.random(n) < 0.1, "asr_word_prob_mean"] = np.nan
    signal = frame["silence_total_s"] + 1.5 * frame["hits_forbidden_phrase"]
    fail = rng.random(n) < 1 / (1 + np.exp(-4 * (signal - 1.0)))
    labels = pd.DataFrame({"call_id": frame["call_id"], "label": np.where(fail, "fail", "pass")})
    grades = pd.DataFrame({"call_id": frame["call_id"],
                           "label": np.where(signal > 1.5, "C", np.where(signal > 0, "B", "A"))})
    return frame, labels, grades


@pytest.fixture(scope="module")
def data():
    return synthetic(300, 0)


@pytest.fixture(scope="module")
def models(tmp_path_factory, data):
    frame, labels, grades = data
    root = tmp_path_factory.mktemp("models")
    hgb, report = train(frame, labels, "hgb", max_iter=40, cv=3)
    logreg, _ = train(frame, labels, "logreg", kind="logreg", target_precision=0.9, cv=3)
    ordinal, _ = train(frame, grades, "grades", ordinal=True, max_iter=40, cv=3)
    for model in (hgb, logreg, ordinal):
        save_model(model, root / model.card["name"])
    return root, report


def test_binary_model_learns_the_signal(models) -> None:
    _, report = models
    held_out = report["held_out"]["metrics"]
    assert held_out["roc_auc"] > 0.85 and held_out["pr_auc"] > 0.7
    assert held_out["f1"] > 0.6
    assert report["cv"]["metrics"]["roc_auc"] > 0.85
    matrix = np.array(report["held_out"]["confusion"]["matrix"])
    assert matrix.sum() == 75 and matrix[1].sum() == held_out["positives"]


def test_probabilities_are_calibrated(models, data) -> None:
    root, _ = models
    frame, labels, _ = synthetic(400, 7)
    model = load_model(root / "hgb")
    probabilities, decisions = predict(model, frame)
    truth = (labels["label"] == "fail").to_numpy()
    assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0
    # mean predicted probability tracks the observed failure rate; Brier beats the constant predictor
    assert abs(probabilities.mean() - truth.mean()) < 0.08
    assert np.mean((probabilities - truth) ** 2) < truth.mean() * (1 - truth.mean())
    assert set(decisions) <= {"pass", "fail"}


def test_target_precision_threshold() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert choose_threshold(y, p, target_precision=1.0) == pytest.approx(0.6)
    assert choose_threshold(y, p, target_recall=1.0) == pytest.approx(0.4)
    assert choose_threshold(y, p) == pytest.approx(0.4)  # best F1 (0.889)


def test_logreg_meets_target_precision(models, data) -> None:
    root, _ = models
    card = json.loads((root / "logreg" / CARD_JSON).read_text())
    assert card["target_precision"] == 0.9 and card["metrics"]["cv"]["precision"] >= 0.9


def test_ordinal_grades(models) -> None:
    root, _ = models
    model = load_model(root / "grades")
    frame, _, grades = synthetic(200, 3)
    probabilities, decided = predict(model, frame)
    assert model.card["classes"] == ["A", "B", "C"]
    accuracy = np.mean(np.array(decided) == grades["label"].to_numpy())
    assert accuracy > 0.75
    assert model.card["metrics"]["held_out"]["mean_abs_grade_error"] < 0.3


def test_model_card_content(models) -> None:
    root, _ = models
    card = json.loads((root / "hgb" / CARD_JSON).read_text())
    assert card["sklearn_version"] == sklearn.__version__
    assert card["label_distribution"] == {"fail": card["label_distribution"]["fail"],
                                          "pass": 300 - card["label_distribution"]["fail"]}
    assert card["n_calls"] == 300 and card["n_test"] == 75 and len(card["data_sha256"]) == 16
    assert "silence_total_s" in card["features"] and "direction" in card["features"]
    assert card["positive_label"] == "fail" and 0 < card["threshold"] < 1
    for key in ("precision", "recall", "f1", "roc_auc", "pr_auc", "brier"):
        assert key in card["metrics"]["held_out"] and key in card["metrics"]["cv"]
    markdown = (root / "hgb" / "model_card.md").read_text()
    assert "## Label distribution" in markdown and "`silence_total_s`" in markdown and card["created_at"] in markdown


def test_same_data_same_hash(data) -> None:
    frame, labels, _ = data
    a, _ = train(frame, labels, "a", kind="logreg", cv=2)
    b, _ = train(frame.sample(frac=1, random_state=1), labels, "b", kind="logreg", cv=2)
    assert a.card["data_sha256"] == b.card["data_sha256"]


def test_version_and_feature_mismatch_errors(models, tmp_path) -> None:
    root, _ = models
    import shutil
    for name, change, message in [
        ("old_sklearn", {"sklearn_version": "0.24.2"}, "scikit-learn 0.24.2"),
        ("other_features", {"features": ["not_a_feature"]}, "not_a_feature"),
        ("other_schema", {"features_schema_version": 99}, "schema 99"),
    ]:
        target = tmp_path / name
        shutil.copytree(root / "hgb", target)
        card = json.loads((target / CARD_JSON).read_text())
        card.update(change)
        (target / CARD_JSON).write_text(json.dumps(card))
        with pytest.raises(ModelError, match=message):
            load_model(target)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(root / "hgb", corrupt)
    (corrupt / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelError, match="does not match"):
        load_model(corrupt)
    with pytest.raises(ModelError, match="missing feature columns"):
        predict(load_model(root / "hgb"), pd.DataFrame({"call_id": ["x"]}))


def test_evaluate_writes_plots_and_tables(models, tmp_path) -> None:
    root, _ = models
    frame, labels, _ = synthetic(150, 5)
    report = evaluate(load_model(root / "logreg"), frame, labels, out_dir=tmp_path / "eval", cv=3)
    assert report["held_out"]["metrics"]["roc_auc"] > 0.8 and report["cv"]["metrics"]["n"] == 150
    thresholds = [row["threshold"] for row in report["held_out"]["thresholds"]]
    assert 0.05 in thresholds and 0.95 in thresholds
    for name in ("pr_curve.png", "calibration_curve.png", "evaluation.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000 or name.endswith(".json")
    assert (tmp_path / "eval" / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_registry_promote_compare(models, tmp_path) -> None:
    root, _ = models
    frame, labels, _ = synthetic(120, 9)
    assert predict_promoted(frame, root) is None  # no promoted model: the scorecard alone
    promote(root, "logreg")
    listed = {m["name"]: m for m in list_models(root)}
    assert set(listed) == {"hgb", "logreg", "grades"} and listed["logreg"]["promoted"]
    assert not listed["hgb"]["promoted"]
    version, probabilities, decisions = predict_promoted(frame, root)
    assert version.startswith("logreg@") and len(probabilities) == 120 and len(decisions) == 120
    compared = compare_models([load_model(root / "hgb"), load_model(root / "logreg")], frame, labels)
    assert len(compared) == 2 and all(m["n"] == 120 for m in compared.values())
    with pytest.raises(ModelError):
        promote(root, "missing")
    (root / "PROMOTED").unlink()


def test_load_labels_csv_and_verdict(tmp_path) -> None:
    (tmp_path / "l.csv").write_text("call_id,verdict\n1,fail\n2,pass\n")
    labels = load_labels(tmp_path / "l.csv")
    assert labels.to_dict("list") == {"call_id": ["1", "2"], "label": ["fail", "pass"]}
    (tmp_path / "bad.csv").write_text("id,x\n1,2\n")
    with pytest.raises(ModelError, match="call_id and label"):
        load_labels(tmp_path / "bad.csv")


def test_too_few_labels(data) -> None:
    frame, labels, _ = data
    with pytest.raises(ModelError, match=">= 4 calls"):
        train(frame.head(5), labels.head(5), "tiny", kind="logreg")


def _store_with_labels(tmp_path, n: int = 160):
    from pipeline.scoring.features import build_features
    from pipeline.records import CallEvidence, Hit
    from pipeline.store import Store

    rng = np.random.default_rng(4)
    rows, labels = [], []
    for i in range(n):
        call_id = f"k{i:03d}"
        silence = float(rng.exponential(10))
        hits = [Hit(call_id, "forbid.1", "r", "forbidden_phrase", "non_fatal", "none", "agent", t, t + 1, "exact")
                for t in range(int(rng.integers(0, 3)))]
        row = build_features(CallEvidence(call_id, 100.0, ("agent", "customer")), hits,
                             {"silence_total_s": silence, "answer_delay_s": float(rng.normal(2, 1))},
                             {"call_date": "2026-11-2" + str(i % 2)}, {"config_hash": "c", "model_id": "m"})
        rows.append(row)
        labels.append((call_id, "fail" if silence / 10 + len(hits) + rng.normal(0, 0.5) > 2 else "pass"))
    Store(tmp_path / "store").commit({"features": rows})
    pd.DataFrame(labels, columns=["call_id", "label"]).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path / "store", tmp_path / "labels.csv"


def test_cli_train_evaluate_list_promote_compare(tmp_path) -> None:
    from typer import Typer
    from typer.testing import CliRunner

    from pipeline.cli.models_cmd import evaluate as evaluate_command
    from pipeline.cli.models_cmd import models_app
    from pipeline.cli.models_cmd import train as train_command

    store, labels = _store_with_labels(tmp_path)
    app = Typer()
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(models_app, name="models")
    runner = CliRunner()
    models_dir = tmp_path / "models"
    for name, extra in (("lr", ["--kind", "logreg", "--target-recall", "0.8"]), ("gb", [])):
        result = runner.invoke(app, ["train", str(store), "--labels", str(labels), "--out", str(models_dir / name),
                                     *extra])
        assert result.exit_code == 0, result.output
        assert "held out" in result.output and (models_dir / name / "model.skops").exists()
    card = json.loads((models_dir / "lr" / CARD_JSON).read_text())
    assert card["target_recall"] == 0.8 and card["metrics"]["cv"]["recall"] >= 0.8
    assert card["metrics"]["held_out"]["roc_auc"] > 0.85
    result = runner.invoke(app, ["evaluate", str(models_dir / "lr"), str(store), "--labels", str(labels),
                                 "--out", str(tmp_path / "ev"), "--cv", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ev" / "pr_curve.png").exists() and "per threshold" in result.output
    result = runner.invoke(app, ["models", "promote", "gb", "--models-dir", str(models_dir)])
    assert result.exit_code == 0 and (models_dir / "PROMOTED").read_text().strip() == "gb"
    result = runner.invoke(app, ["models", "list", "--models-dir", str(models_dir)])
    assert result.exit_code == 0 and "* " in result.output or "*" in result.output
    assert "lr" in result.output and "gb" in result.output
    result = runner.invoke(app, ["models", "compare", str(models_dir / "lr"), str(models_dir / "gb"), str(store),
                                 "--labels", str(labels)])
    assert result.exit_code == 0 and "roc_auc" in result.output
    bad = runner.invoke(app, ["models", "promote", "nope", "--models-dir", str(models_dir)])
    assert bad.exit_code == 2 and "not a callqa model directory" in bad.output


def test_apply_promoted_fills_feature_rows(tmp_path, models) -> None:
    from pipeline.scoring.classifier import apply_promoted
    from pipeline.scoring.features import load

    store, _ = _store_with_labels(tmp_path, n=20)
    rows = load(store).to_pylist()
    unchanged, message = apply_promoted(rows, tmp_path / "no_models")
    assert unchanged == rows and "scorecard only" in message
    root, _ = models
    promote(root, "hgb")
    try:
        filled, version = apply_promoted(rows, root)
    finally:
        (root / "PROMOTED").unlink()
    assert version.startswith("hgb@") and all(r["classifier_model"] == version for r in filled)
    assert all(0 <= r["classifier_probability"] <= 1 and r["classifier_decision"] in ("pass", "fail") for r in filled)


class Foreign:
    """A type no callqa model contains."""


def test_untrusted_types_are_refused(models, tmp_path) -> None:
    import hashlib
    import shutil

    import skops.io as sio

    root, _ = models
    target = tmp_path / "foreign"
    shutil.copytree(root / "hgb", target)
    sio.dump({"estimator": Foreign()}, target / MODEL_FILE)
    card = json.loads((target / CARD_JSON).read_text())
    card["estimator_sha256"] = hashlib.sha256((target / MODEL_FILE).read_bytes()).hexdigest()
    (target / CARD_JSON).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not trust"):
        load_model(target)
