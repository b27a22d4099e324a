"""Evaluate classifiers, draw their plots, and keep the model registry.

- :func:`evaluate_predictions`: metrics from labels and probabilities
  (binary: precision, recall, F1, ROC-AUC, PR-AUC, Brier, confusion matrix,
  per-threshold table; ordinal: accuracy, macro F1, mean grade error,
  confusion matrix).
- :func:`evaluate`: a saved model on labelled feature rows, as a held-out
  set, plus cross-validation of the same model configuration on them, with
  PR and calibration curves saved as PNG.
The registry (list, compare, promote) is :mod:`pipeline.scoring.registry`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from pipeline.scoring.classifier import TrainedModel, out_of_fold_proba, predict_proba, training_data

THRESHOLD_GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def _safe(metric: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        value = float(metric(*args, **kwargs))
    except ValueError:  # e.g. only one class present
        return None
    return None if np.isnan(value) else round(value, 4)


def evaluate_predictions(y_true: Sequence[str], probabilities: np.ndarray, card: dict[str, Any]) -> dict[str, Any]:
    """Metrics for labels ``y_true`` and model probabilities, using the card's classes and threshold.

    Returns:
        ``{"metrics": {...}, "thresholds": [...], "confusion": {"labels": [...], "matrix": [[...]]}}``.
    """
    truth_labels = np.asarray([str(v) for v in y_true])
    classes = card["classes"]
    if card["target"] == "ordinal":
        predicted = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
        index = {c: i for i, c in enumerate(classes)}
        errors = [abs(index[a] - index[b]) for a, b in zip(truth_labels, predicted, strict=True)]
        metrics = {"n": int(len(truth_labels)), "accuracy": round(float(accuracy_score(truth_labels, predicted)), 4),
                   "macro_f1": round(float(f1_score(truth_labels, predicted, labels=classes, average="macro",
                                                    zero_division=0)), 4),
                   "mean_abs_grade_error": round(float(np.mean(errors)), 4),
                   "roc_auc_ovr": _safe(roc_auc_score, truth_labels, probabilities, multi_class="ovr", labels=classes)}
        matrix = confusion_matrix(truth_labels, predicted, labels=classes)
        return {"metrics": metrics, "thresholds": [],
                "confusion": {"labels": classes, "matrix": matrix.tolist()}}
    positive, threshold = card["positive_label"], card["threshold"]
    truth = (truth_labels == positive).astype(int)
    decided = (probabilities >= threshold).astype(int)
    metrics = {
        "n": int(len(truth)), "positives": int(truth.sum()), "threshold": round(float(threshold), 4),
        "precision": round(float(precision_score(truth, decided, zero_division=0)), 4),
        "recall": round(float(recall_score(truth, decided, zero_division=0)), 4),
        "f1": round(float(f1_score(truth, decided, zero_division=0)), 4),
        "roc_auc": _safe(roc_auc_score, truth, probabilities),
        "pr_auc": _safe(average_precision_score, truth, probabilities),
        "brier": round(float(brier_score_loss(truth, probabilities)), 4),
    }
    table = []
    for t in sorted({*THRESHOLD_GRID, round(float(threshold), 4)}):
        flagged = probabilities >= t
        table.append({"threshold": t, "flagged_share": round(float(flagged.mean()), 4),
                      "precision": round(float(precision_score(truth, flagged, zero_division=0)), 4),
                      "recall": round(float(recall_score(truth, flagged, zero_division=0)), 4),
                      "f1": round(float(f1_score(truth, flagged, zero_division=0)), 4)})
    matrix = confusion_matrix(truth, decided, labels=[0, 1])
    return {"metrics": metrics, "thresholds": table, "confusion": {"labels": classes, "matrix": matrix.tolist()}}


def save_plots(y_true: Sequence[str], probabilities: np.ndarray, card: dict[str, Any], out_dir: str | Path,
               prefix: str = "") -> list[Path]:
    """PR curve and calibration curve PNGs (binary; for ordinal, of the worst grade vs the rest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth_labels = np.asarray([str(v) for v in y_true])
    if card["target"] == "ordinal":
        positive, score = card["classes"][-1], probabilities[:, -1]
    else:
        positive, score = card["positive_label"], probabilities
    truth = (truth_labels == positive).astype(int)
    paths = []
    precision, recall, _ = precision_recall_curve(truth, score)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title=f"PR curve: {card['name']} ({positive})")
    paths.append(out / f"{prefix}pr_curve.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    bins = max(2, min(10, len(truth) // 10))
    observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot(predicted, observed, marker="o")
    ax.set(xlabel="predicted probability", ylabel="observed share", title=f"Calibration: {card['name']}")
    paths.append(out / f"{prefix}calibration_curve.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def evaluate(model: TrainedModel, features: pa.Table | pd.DataFrame, labels: pd.DataFrame,
             out_dir: str | Path | None = None, cv: int = 5, seed: int = 0,
             threads: int | None = 1) -> dict[str, Any]:
    """Evaluate ``model`` on labelled feature rows.

    ``held_out``: the saved model scores the rows (give calls it was not
    trained on). ``cv``: a fresh copy of the same configuration is
    cross-validated on the rows. With ``out_dir``, PR and calibration PNGs
    and ``evaluation.json`` are written there.
    """
    with threadpool_limits(threads):
        return _evaluate(model, features, labels, out_dir, cv, seed)


def _evaluate(model: TrainedModel, features: pa.Table | pd.DataFrame, labels: pd.DataFrame,
              out_dir: str | Path | None, cv: int, seed: int) -> dict[str, Any]:
    X, y = training_data(features, labels)  # noqa: N806
    card = model.card
    report: dict[str, Any] = {"model": model.version}
    probabilities = predict_proba(model, X)
    report["held_out"] = evaluate_predictions(y.to_numpy(), probabilities, card)
    folds = int(min(cv, y.value_counts().min()))
    if folds >= 2:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        if model.ordinal:
            oof = out_of_fold_proba(model.estimator, X, y, splitter)
        else:
            target = (y == card["positive_label"]).astype(int)
            oof = out_of_fold_proba(model.estimator, X, target, splitter)[:, 1]
        report["cv"] = evaluate_predictions(y.to_numpy(), oof, card)
    if out_dir is not None:
        report["plots"] = [str(p) for p in save_plots(y.to_numpy(), probabilities, card, out_dir)]
        Path(out_dir, "evaluation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                                    encoding="utf-8")
    return report


__all__ = ["evaluate", "evaluate_predictions", "save_plots"]
