"""Train a classifier on feature rows and labels, and measure it while doing so.

:func:`train` joins feature rows with ``call_id,label``, holds out a
stratified share of the calls, picks the binary decision threshold on
out-of-fold probabilities (for a target precision or recall, default best
F1), fits the calibrated estimator of :func:`pipeline.scoring.classifier.build_estimator`
(or cumulative ordinal models for grades), and writes the evaluation into
the model card. Persisting is :func:`pipeline.scoring.classifier.save_model`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from pipeline.errors import ModelError
from pipeline.scoring.classifier import (
    CumulativeOrdinalClassifier,
    TrainedModel,
    build_estimator,
    out_of_fold_proba,
    predict_proba,
    training_data,
)
from pipeline.scoring.evaluate import evaluate_predictions
from pipeline.scoring.features import FEATURES_SCHEMA_VERSION


def positive_label(labels: Sequence[str]) -> str:
    """The label a binary model predicts the probability of: fail/1/true if present, else the rarer one."""
    values = pd.Series(list(labels)).value_counts()
    for candidate in ("fail", "failed", "1", "true", "yes", "bad"):
        if candidate in values.index:
            return candidate
    return str(values.index[-1])


def choose_threshold(y_true: np.ndarray, probability: np.ndarray, target_precision: float | None = None,
                     target_recall: float | None = None) -> float:
    """Decision threshold on out-of-fold probabilities.

    Target precision: the lowest threshold reaching it (most recall).
    Target recall: the highest threshold still reaching it (most precision).
    Neither: the threshold with the best F1. Unreachable targets fall back
    to the closest achievable value.
    """
    candidates = np.unique(np.round(probability, 6))
    rows = []
    for t in candidates:
        predicted = probability >= t
        tp = float(np.sum(predicted & (y_true == 1)))
        precision = tp / max(predicted.sum(), 1)
        recall = tp / max((y_true == 1).sum(), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((float(t), precision, recall, f1))
    if target_precision is not None:
        ok = [r for r in rows if r[1] >= target_precision]
        return min(ok)[0] if ok else max(rows, key=lambda r: (r[1], r[0]))[0]
    if target_recall is not None:
        ok = [r for r in rows if r[2] >= target_recall]
        return max(ok)[0] if ok else min(rows)[0]
    return max(rows, key=lambda r: (r[3], -r[0]))[0]


def _data_hash(X: pd.DataFrame, y: pd.Series) -> str:  # noqa: N803
    hashed = pd.util.hash_pandas_object(pd.concat([X, y], axis=1), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def train(features: pa.Table | pd.DataFrame, labels: pd.DataFrame, name: str, kind: str = "hgb",
          target_precision: float | None = None, target_recall: float | None = None, ordinal: bool = False,
          grade_order: Sequence[str] | None = None, test_size: float = 0.25, cv: int = 5, seed: int = 0,
          max_iter: int = 200, threads: int | None = 1) -> tuple[TrainedModel, dict[str, Any]]:
    """Train a calibrated classifier and measure it (cross-validation and held-out).

    Args:
        features: feature rows (``Store(root).read("features")``).
        labels: ``call_id,label`` (:func:`load_labels`).
        name: model name (the directory name under ``models_dir``).
        kind: "hgb" or "logreg".
        target_precision / target_recall: choose the binary threshold for it.
        ordinal: treat labels as ordered grades (cumulative binary models).
        grade_order: grade order, best first; default: sorted labels (A, B, C).
        test_size: share of calls held out for the card's held-out metrics.
        cv: folds for the out-of-fold metrics and threshold.
        seed: random state for splits and models.
        max_iter: boosting iterations.
        threads: OpenMP/BLAS threads (None = all). Feature tables are small:
            one thread is fastest and does not fight other work on the machine.

    Returns:
        The fitted model (fitted on the non-held-out part) and its evaluation report.

    Raises:
        ModelError: too few labelled calls per class.
    """
    with threadpool_limits(threads):
        return _train(features, labels, name, kind, target_precision, target_recall, ordinal, grade_order,
                      test_size, cv, seed, max_iter)


def _train(features: pa.Table | pd.DataFrame, labels: pd.DataFrame, name: str, kind: str,
           target_precision: float | None, target_recall: float | None, ordinal: bool,
           grade_order: Sequence[str] | None, test_size: float, cv: int, seed: int,
           max_iter: int) -> tuple[TrainedModel, dict[str, Any]]:
    if target_precision is not None and target_recall is not None:
        raise ValueError("give a target precision or a target recall, not both")
    X, y = training_data(features, labels)  # noqa: N806
    classes = sorted(y.unique())
    counts = y.value_counts()
    if len(classes) < 2 or counts.min() < 4:
        raise ModelError("labels", f"need >= 2 classes with >= 4 calls each, got {counts.to_dict()}")
    columns = list(X.columns)
    X_train, X_test, y_train, y_test = train_test_split(  # noqa: N806
        X, y, test_size=test_size, stratify=y, random_state=seed)
    folds = int(min(cv, y_train.value_counts().min()))
    calibration_cv = int(min(3, max(2, y_train.value_counts().min() // 2)))
    binary = build_estimator(kind, columns, seed, max_iter, calibration_cv)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    card: dict[str, Any] = {
        "name": name, "kind": kind, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sklearn_version": sklearn.__version__, "features_schema_version": FEATURES_SCHEMA_VERSION,
        "features": columns, "data_sha256": _data_hash(X, y), "n_calls": int(len(y)),
        "n_train": int(len(y_train)), "n_test": int(len(y_test)),
        "label_distribution": {str(k): int(v) for k, v in counts.sort_index().items()},
        "seed": seed, "cv_folds": folds, "calibration": f"sigmoid, {calibration_cv}-fold CalibratedClassifierCV",
    }
    if ordinal:
        if target_precision is not None or target_recall is not None:
            raise ValueError("target precision/recall applies to binary labels, not ordinal grades")
        order = [str(g) for g in (grade_order or classes)]
        if set(order) != set(classes):
            raise ModelError("labels", f"grade order {order} does not match the labels {classes}")
        estimator: Any = CumulativeOrdinalClassifier(binary, order)
        oof = out_of_fold_proba(estimator, X_train, y_train, splitter)
        estimator.fit(X_train, y_train)
        card.update(target="ordinal", classes=order, positive_label=None, threshold=None)
        cv_report = evaluate_predictions(y_train.to_numpy(), oof, card)
    else:
        if len(classes) != 2:
            raise ModelError("labels", f"binary training needs 2 labels, got {classes}; use --ordinal for grades")
        positive = positive_label(y.tolist())
        oof = out_of_fold_proba(binary, X_train, (y_train == positive).astype(int), splitter)[:, 1]
        threshold = choose_threshold((y_train == positive).to_numpy().astype(int), oof,
                                     target_precision, target_recall)
        estimator = binary.fit(X_train, (y_train == positive).astype(int))
        negative = next(c for c in classes if c != positive)
        card.update(target="binary", classes=[negative, positive], positive_label=positive, threshold=threshold,
                    target_precision=target_precision, target_recall=target_recall)
        cv_report = evaluate_predictions(y_train.to_numpy(), oof, card)
    model = TrainedModel(estimator, card)
    held_out = evaluate_predictions(y_test.to_numpy(), predict_proba(model, X_test), card)
    card["metrics"] = {"cv": cv_report["metrics"], "held_out": held_out["metrics"]}
    return model, {"cv": cv_report, "held_out": held_out}


__all__ = ["choose_threshold", "positive_label", "train"]
