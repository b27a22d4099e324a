"""Train, persist and apply classifiers that predict reviewers' verdicts.

A model learns from feature rows (:mod:`pipeline.scoring.features`) joined with
labels (``call_id,label``: a verdict such as pass/fail, or a grade). It is a
scikit-learn ``Pipeline`` (``ColumnTransformer`` + HistGradientBoosting by
default, or LogisticRegression as an interpretable baseline) with balanced
class weights, wrapped in ``CalibratedClassifierCV`` so probabilities mean
what they say. Binary models get a decision threshold picked on
out-of-fold predictions for a target precision or recall (default: best F1;
training is in :mod:`pipeline.scoring.train`).
Ordered grades are learned as cumulative binary models
(:class:`CumulativeOrdinalClassifier`, P(grade worse than k) per cut).

``models/NAME/`` holds ``model.skops`` (inspectable, no bare pickle) and a
model card (``model_card.json`` + ``.md``). Loading a model whose features
or scikit-learn version differ from the running callqa raises
:class:`~pipeline.errors.ModelError`. Evaluation, plots and the registry
(list / compare / promote) live in :mod:`pipeline.scoring.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.errors import ModelError
from pipeline.model_files import ModelFiles, load_model_dir, read_card, save_model_dir
from pipeline.scoring.features import (
    CATEGORICAL_FEATURES,
    FEATURES_SCHEMA_VERSION,
    features_table,
    model_feature_columns,
    with_prediction,
)

KINDS = ("hgb", "logreg")
MODEL_FILE = "model.skops"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
FILES = ModelFiles(MODEL_FILE, CARD_JSON, "estimator_sha256",
                   ("sklearn.", "numpy.", "pipeline.scoring.classifier.", "builtins.", "collections."),
                   "retrain it (callqa train)")


class FillEmptyColumns(TransformerMixin, BaseEstimator):
    """Set columns that were entirely missing at fit time to 0; keep NaN elsewhere.

    HistGradientBoosting handles NaN natively but cannot bin a column with no
    value at all (e.g. a timing feature no call had yet).
    """

    def fit(self, X: Any, y: Any = None) -> FillEmptyColumns:  # noqa: N803
        self.empty_ = np.all(np.isnan(np.asarray(X, dtype=np.float64)), axis=0)
        self.n_features_in_ = int(self.empty_.size)
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        data = np.array(X, dtype=np.float64)
        data[:, self.empty_] = 0.0
        return data

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features if input_features is not None else
                          [f"x{i}" for i in range(self.n_features_in_)], dtype=object)


class CumulativeOrdinalClassifier(ClassifierMixin, BaseEstimator):
    """Ordinal classifier from K-1 cumulative binary models (Frank & Hall).

    Model k estimates P(y is later than ``classes[k]`` in ``order``); class
    probabilities are the differences of these (made non-increasing first).

    Args:
        estimator: a binary classifier with ``predict_proba`` (cloned per cut).
        order: the grades from best to worst (or any fixed order).
    """

    def __init__(self, estimator: Any = None, order: Sequence[str] = ()) -> None:
        self.estimator = estimator
        self.order = order

    def fit(self, X: pd.DataFrame, y: Sequence[Any]) -> CumulativeOrdinalClassifier:  # noqa: N803
        order = [str(c) for c in self.order]
        index = np.array([order.index(str(v)) for v in y])
        self.classes_ = np.array(order, dtype=object)
        self.estimators_ = [clone(self.estimator).fit(X, (index > k).astype(int)) for k in range(len(order) - 1)]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        later = np.column_stack([m.predict_proba(X)[:, 1] for m in self.estimators_])
        later = np.minimum.accumulate(later, axis=1)  # P(y > k) cannot grow with k
        cumulative = np.hstack([np.ones((len(later), 1)), later, np.zeros((len(later), 1))])
        probabilities = np.clip(cumulative[:, :-1] - cumulative[:, 1:], 0.0, 1.0)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted estimator with its model card (a JSON-able dict)."""

    estimator: Any
    card: dict[str, Any]

    @property
    def version(self) -> str:
        """``name@hash``: what feature rows record as ``classifier_model``."""
        return f"{self.card['name']}@{self.card.get('estimator_sha256', 'unsaved')[:12]}"

    @property
    def ordinal(self) -> bool:
        return self.card["target"] == "ordinal"


def load_labels(path: str | Path) -> pd.DataFrame:
    """Read ``call_id,label`` from CSV or Parquet (a review export's ``verdict`` column also works).

    Raises:
        ModelError: unreadable file or no call_id/label columns.
    """
    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise ModelError(str(path), f"cannot read labels: {exc}") from None
    if "label" not in frame.columns and "verdict" in frame.columns:
        frame = frame.rename(columns={"verdict": "label"})
    if not {"call_id", "label"} <= set(frame.columns):
        raise ModelError(str(path), f"labels need call_id and label columns, found {list(frame.columns)}")
    frame = frame.dropna(subset=["call_id", "label"])
    return frame.assign(call_id=frame["call_id"].astype(str), label=frame["label"].astype(str))[["call_id", "label"]]


def _to_float(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def feature_frame(features: pa.Table | pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The classifier inputs of a features table: numeric as float (NaN = missing), categoricals as text.

    Raises:
        ModelError: a needed column is missing (features of another schema).
    """
    frame = features.to_pandas() if isinstance(features, pa.Table) else features
    numeric = [c for c in (columns or model_feature_columns()) if c not in CATEGORICAL_FEATURES]
    categorical = [c for c in (columns or CATEGORICAL_FEATURES) if c in CATEGORICAL_FEATURES]
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise ModelError("features", f"missing feature columns {missing[:5]} (trained on another schema?)")
    out = pd.DataFrame(index=frame.index)
    for name in numeric:
        out[name] = pd.to_numeric(frame[name].astype(object).map(_to_float), errors="coerce").astype("float64")
    for name in categorical:
        out[name] = frame[name].astype(object).where(frame[name].notna(), "missing").astype(str)
    return out


def training_data(features: pa.Table | pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Join feature rows with labels on ``call_id`` (the last row per call wins)."""
    frame = features.to_pandas() if isinstance(features, pa.Table) else features
    frame = frame.drop_duplicates("call_id", keep="last")
    joined = frame.merge(labels.drop_duplicates("call_id", keep="last"), on="call_id", how="inner")
    if joined.empty:
        raise ModelError("labels", "no labelled call_id matches a feature row")
    joined = joined.sort_values("call_id").reset_index(drop=True)
    return feature_frame(joined), joined["label"].astype(str).rename("label")


def build_estimator(kind: str, columns: Sequence[str], seed: int = 0, max_iter: int = 200,
                    calibration_cv: int = 3) -> Any:
    """An unfitted calibrated Pipeline for binary targets.

    Args:
        kind: "hgb" (HistGradientBoosting, default) or "logreg" (baseline).
        columns: input columns (numeric plus :data:`CATEGORICAL_FEATURES`).
        seed: random state.
        max_iter: boosting iterations / solver iterations.
        calibration_cv: folds of ``CalibratedClassifierCV``.
    """
    numeric = [c for c in columns if c not in CATEGORICAL_FEATURES]
    categorical = [c for c in columns if c in CATEGORICAL_FEATURES]
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    if kind == "hgb":
        numeric_step: Any = FillEmptyColumns()  # other NaN are handled natively
        model: Any = HistGradientBoostingClassifier(max_iter=max_iter, class_weight="balanced", random_state=seed)
    elif kind == "logreg":
        numeric_step = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                 ("scale", StandardScaler())])
        model = LogisticRegression(class_weight="balanced", max_iter=max(max_iter, 1000))
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
    prepare = ColumnTransformer([("numeric", numeric_step, numeric), ("categorical", onehot, categorical)])
    pipeline = Pipeline([("prepare", prepare), ("model", model)])
    return CalibratedClassifierCV(pipeline, method="sigmoid", cv=calibration_cv)


def out_of_fold_proba(estimator: Any, X: pd.DataFrame, y: pd.Series, splitter: Any) -> np.ndarray:  # noqa: N803
    """``predict_proba`` of clones fitted on the other folds (labels passed through unchanged,
    unlike ``cross_val_predict``, which re-encodes them)."""
    result: np.ndarray | None = None
    for fit_rows, test_rows in splitter.split(X, y):
        fitted = clone(estimator).fit(X.iloc[fit_rows], y.iloc[fit_rows])
        probabilities = fitted.predict_proba(X.iloc[test_rows])
        if result is None:
            result = np.zeros((len(y), probabilities.shape[1]))
        result[test_rows] = probabilities
    assert result is not None
    return result


def predict_proba(model: TrainedModel, features: pa.Table | pd.DataFrame) -> np.ndarray:
    """P(positive label) per row for binary models; per-grade probabilities (rows x grades) for ordinal ones."""
    X = feature_frame(features, model.card["features"])  # noqa: N806
    probabilities = model.estimator.predict_proba(X)
    return probabilities if model.ordinal else probabilities[:, 1]


def predict(model: TrainedModel, features: pa.Table | pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(probability, decision) per row: P(positive) and the label at the card's threshold (binary),
    or the probability of the most likely grade and that grade (ordinal)."""
    probabilities = predict_proba(model, features)
    classes = model.card["classes"]
    if model.ordinal:
        best = probabilities.argmax(axis=1)
        return probabilities.max(axis=1), [classes[i] for i in best]
    return probabilities, [classes[1] if p >= model.card["threshold"] else classes[0] for p in probabilities]


def save_model(model: TrainedModel, out_dir: str | Path) -> Path:
    """Write ``model.skops`` and the model card (JSON + Markdown) into ``out_dir``."""
    out = Path(out_dir)
    saved = save_model_dir(model.estimator, {**model.card, "name": out.name}, out, FILES)
    model.card.clear()
    model.card.update(saved)
    (out / CARD_MD).write_text(card_markdown(model.card), encoding="utf-8")
    return out


def load_model(model_dir: str | Path) -> TrainedModel:
    """Load a saved model after checking it fits the running callqa.

    Raises:
        ModelError: files missing or corrupt, another scikit-learn version,
            another features schema version, feature columns this callqa
            does not produce, or untrusted types inside the skops file.
    """
    path = Path(model_dir)
    card = read_card(path, FILES)
    if card.get("features_schema_version") != FEATURES_SCHEMA_VERSION:
        raise ModelError(str(path), f"trained on features schema {card.get('features_schema_version')}, "
                         f"this callqa writes {FEATURES_SCHEMA_VERSION}: retrain it")
    known = set(model_feature_columns()) | set(CATEGORICAL_FEATURES)
    unknown = [c for c in card.get("features", []) if c not in known]
    if unknown:
        raise ModelError(str(path), f"trained with features this callqa does not produce: {unknown[:5]}")
    estimator, card = load_model_dir(path, FILES)
    return TrainedModel(estimator, card)


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown (written next to ``model_card.json``)."""
    lines = [f"# Model card: {card['name']}", "",
             f"- Created: {card['created_at']}", f"- Kind: {card['kind']} (calibrated: {card['calibration']})",
             f"- Target: {card['target']}, classes {card['classes']}, positive label {card.get('positive_label')}",
             f"- Decision threshold: {card.get('threshold')} (target precision {card.get('target_precision')}, "
             f"target recall {card.get('target_recall')})",
             f"- scikit-learn {card['sklearn_version']}, features schema {card['features_schema_version']}",
             f"- Training data: sha256 {card['data_sha256']}, {card['n_calls']} calls "
             f"({card['n_train']} train, {card['n_test']} held out), seed {card['seed']}",
             "", "## Label distribution", "", "| label | calls |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["label_distribution"].items()]
    for part in ("cv", "held_out"):
        metrics = card.get("metrics", {}).get(part, {})
        lines += ["", f"## Metrics ({part})", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Features", "", ", ".join(f"`{c}`" for c in card["features"]), ""]
    return "\n".join(lines)


def apply_model(rows: Sequence[dict[str, Any]], model: TrainedModel | None) -> list[dict[str, Any]]:
    """Fill the classifier columns of feature rows (unchanged when ``model`` is None)."""
    if model is None or not rows:
        return list(rows)
    probabilities, decisions = predict(model, features_table(rows))
    return [with_prediction(row, model.version, float(p), d)
            for row, p, d in zip(rows, probabilities, decisions, strict=True)]


__all__ = [
    "CumulativeOrdinalClassifier", "FillEmptyColumns", "TrainedModel", "apply_model", "build_estimator",
    "card_markdown", "feature_frame", "load_labels", "load_model", "out_of_fold_proba", "predict",
    "predict_proba", "save_model", "training_data",
]
