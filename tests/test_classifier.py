"""Classifiers learn a known signal, are calibrated, carry a model card, refuse mismatches; registry works."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sklearn

from pipeline.errors import ModelError
from pipeline.scoring.classifier import (
    CARD_JSON,
    MODEL_FILE,
    apply_model,
    card_markdown,
    load_labels,
    load_model,
    predict,
    save_model,
)
from pipeline.scoring.evaluate import evaluate
from pipeline.scoring.features import model_feature_columns
from pipeline.scoring.registry import compare_models, list_models, load_promoted, promote, promoted_name
from pipeline.scoring.train import choose_threshold, train


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


def test_model_card_content(models, data) -> None:
    root, _ = models
    _frame, labels, _ = data
    card = json.loads((root / "hgb" / CARD_JSON).read_text())
    assert card["sklearn_version"] == sklearn.__version__
    # the distribution of the labels the model was given, counted here from the labels themselves
    counted = labels["label"].value_counts().to_dict()
    assert card["label_distribution"] == counted and set(counted) == {"fail", "pass"}
    assert 30 < counted["fail"] < 270  # both classes well represented in the synthetic data
    assert card["n_calls"] == 300 and card["n_test"] == 75 and len(card["data_sha256"]) == 16
    assert "silence_total_s" in card["features"] and "direction" in card["features"]
    assert card["positive_label"] == "fail" and 0 < card["threshold"] < 1
    for key in ("precision", "recall", "f1", "roc_auc", "pr_auc", "brier"):
        assert key in card["metrics"]["held_out"] and key in card["metrics"]["cv"]
    markdown = (root / "hgb" / "model_card.md").read_text()
    assert markdown == card_markdown(card)
    assert "## Label distribution" in markdown and "`silence_total_s`" in markdown and card["created_at"] in markdown
    assert f"| fail | {counted['fail']} |" in markdown and f"| pass | {counted['pass']} |" in markdown
    assert f"sha256 {card['data_sha256']}, 300 calls (225 train, 75 held out)" in markdown


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
    import shutil

    root = tmp_path / "models"
    shutil.copytree(models[0], root)
    frame, labels, _ = synthetic(120, 9)
    assert promoted_name(root) is None and load_promoted(root) is None  # none promoted: the scorecard alone
    promote(root, "logreg")
    assert (root / "PROMOTED").read_text() == "logreg\n" and promoted_name(root) == "logreg"
    listed = {m["name"]: m for m in list_models(root)}
    assert set(listed) == {"hgb", "logreg", "grades"} and listed["logreg"]["promoted"]
    assert not listed["hgb"]["promoted"] and listed["hgb"]["n_calls"] == 300
    promoted = load_promoted(root)
    assert promoted.version.startswith("logreg@") and promoted.version == load_model(root / "logreg").version
    probabilities, decisions = predict(promoted, frame)
    assert len(probabilities) == 120 and set(decisions) <= {"pass", "fail"}
    compared = compare_models([load_model(root / "hgb"), load_model(root / "logreg")], frame, labels)
    assert list(compared) == [load_model(root / "hgb").version, promoted.version]
    assert all(m["n"] == 120 for m in compared.values())
    with pytest.raises(ModelError):
        promote(root, "missing")
    assert promoted_name(root) == "logreg"  # a refused promotion leaves the promoted model alone


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
    from conftest import scored_call

    from pipeline.records import CallEvidence, Hit
    from pipeline.store import Store

    rng = np.random.default_rng(4)
    results, labels = [], []
    for i in range(n):
        call_id = f"k{i:03d}"
        silence = float(rng.exponential(10))
        hits = [Hit(call_id, "forbid.1", "r", "forbidden_phrase", "non_fatal", "none", "agent", t, t + 1, "exact")
                for t in range(int(rng.integers(0, 3)))]
        results.append(scored_call(CallEvidence(call_id, 100.0, ("agent", "customer")), hits,
                                   call_date="2026-11-2" + str(i % 2),
                                   timing={"silence_total_s": silence, "answer_delay_s": float(rng.normal(2, 1))}))
        labels.append((call_id, "fail" if silence / 10 + len(hits) + rng.normal(0, 0.5) > 2 else "pass"))
    store = Store(tmp_path / "store", create=True)
    store.commit(results)
    pd.DataFrame(labels, columns=["call_id", "label"]).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path / "store", tmp_path / "labels.csv"


def _table_row(output: str, name: str, column: int = 1) -> list[str]:
    """The cells of the table row whose cell ``column`` is ``name`` (the table's outer border dropped);
    column 1 is the model name in `callqa models list`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) > column and cells[column] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


def test_cli_train_evaluate_list_promote_compare(cli, tmp_path) -> None:
    store, labels = _store_with_labels(tmp_path)
    models_dir = tmp_path / "models"
    for name, extra in (("lr", ["--kind", "logreg", "--target-recall", "0.8"]), ("gb", [])):
        result = cli("train", store, "--labels", labels, "--out", models_dir / name, *extra)
        assert result.exit_code == 0, result.output
        assert "held out" in result.stdout and (models_dir / name / "model.skops").exists()
    card = json.loads((models_dir / "lr" / CARD_JSON).read_text())
    assert card["target_recall"] == 0.8 and card["metrics"]["cv"]["recall"] >= 0.8
    assert card["metrics"]["held_out"]["roc_auc"] > 0.85
    result = cli("evaluate", models_dir / "lr", store, "--labels", labels, "--out", tmp_path / "ev", "--cv", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ev" / "pr_curve.png").exists() and "per threshold" in result.stdout
    result = cli("models", "promote", "gb", "--models-dir", models_dir)
    assert result.exit_code == 0 and (models_dir / "PROMOTED").read_text().strip() == "gb"
    result = cli("models", "list", "--models-dir", models_dir)
    assert result.exit_code == 0, result.output
    assert _table_row(result.stdout, "gb")[:3] == ["*", "gb", "hgb"]  # * marks the promoted model
    assert _table_row(result.stdout, "lr")[:3] == ["", "lr", "logreg"]
    assert _table_row(result.stdout, "gb")[5] == "160"  # calls it was trained on
    result = cli("models", "compare", models_dir / "lr", models_dir / "gb", store, "--labels", labels)
    assert result.exit_code == 0 and "roc_auc" in result.stdout
    assert _table_row(result.stdout, "n", column=0) == ["n", "160", "160"]  # both on the same labelled calls
    bad = cli("models", "promote", "nope", "--models-dir", models_dir)
    assert bad.exit_code == 2 and "not a model directory" in bad.stderr
    assert (models_dir / "PROMOTED").read_text().strip() == "gb"


def test_cli_train_by_name_into_the_store_with_reviewers_verdicts(cli, tmp_path) -> None:
    from pipeline.review.verdicts import connect, record_call_verdict

    store, labels = _store_with_labels(tmp_path, n=60)
    no_labels = cli("train", store, "--name", "v1")
    assert no_labels.exit_code == 1 and "no reviewers' verdicts yet" in no_labels.stderr
    conn = connect(store)
    for call_id, label in pd.read_csv(labels).itertuples(index=False):
        record_call_verdict(conn, call_id=call_id, verdict=label, reviewer="ann")
    conn.close()
    result = cli("train", store, "--name", "v1", "--kind", "logreg")
    assert result.exit_code == 0, result.output
    card = json.loads((store / "models" / "v1" / CARD_JSON).read_text())  # [classifier] models_dir = {store}/models
    assert card["n_calls"] == 60 and card["label_distribution"] == pd.read_csv(labels)["label"].value_counts().to_dict()
    assert f"callqa models promote v1 --store {store}" in result.stdout
    assert cli("train", store).exit_code == 2  # neither --name nor --out
    assert cli("train", store, "--name", "x", "--target-precision", "0.9", "--target-recall", "0.9").exit_code == 2


def test_models_list_answers_the_same_from_any_working_directory(cli, models, tmp_path, monkeypatch) -> None:
    import shutil

    from pipeline.store import Store

    store = tmp_path / "store"
    Store(store, create=True)
    shutil.copytree(models[0], store / "models")
    promote(store / "models", "hgb")
    config_dir = tmp_path / "settings"
    shutil.copytree(models[0], config_dir / "trained")
    config = config_dir / "callqa.toml"
    config.write_text('[classifier]\nmodels_dir = "trained"\n', encoding="utf-8")  # relative to this file
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "models").mkdir(parents=True)  # a decoy: a models/ folder in the working directory
    outputs = []
    for cwd in (tmp_path, elsewhere):
        monkeypatch.chdir(cwd)
        by_store = cli("models", "list", "--store", store)
        by_config = cli("models", "list", "--config", config)
        assert by_store.exit_code == 0 and by_config.exit_code == 0, by_store.output + by_config.output
        outputs.append((by_store.stdout, by_config.stdout))
    assert outputs[0] == outputs[1]
    by_store, by_config = outputs[0]
    assert by_store.splitlines()[0] == str(store / "models")
    assert _table_row(by_store, "hgb")[:2] == ["*", "hgb"] and _table_row(by_store, "logreg")[0] == ""
    assert by_config.splitlines()[0] == str(config_dir / "trained")
    assert _table_row(by_config, "hgb")[0] == "" and _table_row(by_config, "grades")[2] == "hgb"
    monkeypatch.chdir(elsewhere)
    nowhere = cli("models", "list")  # the default models_dir names the store, and none was given
    assert nowhere.exit_code == 2 and "--store" in nowhere.stderr


def test_apply_model_fills_feature_rows(tmp_path, models) -> None:
    from pipeline.store import Store

    store, _ = _store_with_labels(tmp_path, n=20)
    rows = Store(store).read("features").to_pylist()
    assert load_promoted(tmp_path / "no_models") is None
    assert apply_model(rows, None) == rows  # no promoted model: rows unchanged (scorecard only)
    model = load_model(models[0] / "hgb")
    filled = apply_model(rows, model)
    assert [r["call_id"] for r in filled] == [r["call_id"] for r in rows]
    assert all(r["classifier_model"] == model.version and model.version.startswith("hgb@") for r in filled)
    probabilities, decisions = predict(model, pd.DataFrame(rows))
    assert [r["classifier_probability"] for r in filled] == pytest.approx(list(probabilities))
    assert [r["classifier_decision"] for r in filled] == decisions
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
