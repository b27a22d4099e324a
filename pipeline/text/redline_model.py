"""A text model for abusive / insulting utterances: an extra red-line signal.

Character n-grams (1-3, hashed, TF-IDF) and a logistic regression, trained by
``scripts/train_redline_model.py`` on COLD (Chinese Offensive Language
Dataset). It complements the lexicon rules: it scores every agent utterance
and raises a hit with its own rule id (:data:`RULE_ID`) in category
``redline_abuse`` when the probability reaches the threshold.

Model hits have severity ``info`` by default: they set the red-line flag and
send the call to review, but do not fail the scorecard on their own (a
lexicon hit or a reviewer does). Pass ``severity="fatal"`` to change that.

The model is loaded once (:meth:`RedlineTextModel.load`) and passed in;
:func:`score_utterances` is pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.errors import ModelError
from pipeline.model_files import ModelFiles, load_model_dir, read_card, save_model_dir
from pipeline.paths import resolve
from pipeline.records import AGENT, MIXED, UNKNOWN, CallEvidence, Hit

RULE_ID = "model.redline_text"
CATEGORY = "redline_abuse"
MODEL_FILE = "redline_text.skops"
CARD_FILE = "redline_card.json"
FILES = ModelFiles(MODEL_FILE, CARD_FILE, "model_sha256", ("sklearn.", "numpy.", "builtins."),
                   "retrain it (scripts/train_redline_model.py)")


def build_pipeline(seed: int = 0, c: float = 4.0, n_features: int = 2**18) -> Pipeline:
    """The unfitted text pipeline (hashed char 1-3-grams, TF-IDF, balanced logistic regression)."""
    return Pipeline([
        ("hash", HashingVectorizer(analyzer="char", ngram_range=(1, 3), n_features=n_features,
                                   alternate_sign=False, norm=None)),
        ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ("model", LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)),
    ])


@dataclass(frozen=True)
class RedlineTextModel:
    """A fitted text pipeline with its default threshold and card."""

    pipeline: Any
    threshold: float
    card: dict[str, Any]

    @property
    def version(self) -> str:
        """``redline_text@hash``: stored as the hits' ``detector_version``."""
        return card_version(self.card)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(abusive) per text."""
        if not texts:
            return np.zeros(0)
        return self.pipeline.predict_proba(list(texts))[:, 1]

    def save(self, out_dir: str | Path) -> Path:
        """Write ``redline_text.skops`` and ``redline_card.json`` into ``out_dir``."""
        saved = save_model_dir(self.pipeline, {**self.card, "threshold": self.threshold}, out_dir, FILES)
        self.card.clear()
        self.card.update(saved)
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | Path) -> RedlineTextModel:
        """Load a saved model directory (see :func:`pipeline.model_files.load_model_dir`).

        Raises:
            ModelError: missing/corrupt files, another scikit-learn version,
                or types in the skops file that are not scikit-learn/numpy.
        """
        pipeline, card = load_model_dir(path, FILES)
        return cls(pipeline, float(card["threshold"]), card)


def card_version(card: dict[str, Any]) -> str:
    """A model's version from its card alone (no need to load the estimator)."""
    return f"redline_text@{card.get('model_sha256', 'unsaved')[:12]}"


def redline_model_path(value: str) -> Path | None:
    """Where ``[classifier] redline_model`` points: None for ``"off"``, else the directory.

    Raises:
        ModelError: the directory does not hold a red-line model (a wrong path
            must not silently turn the model off).
    """
    if value == "off":
        return None
    path = resolve(value)
    if not (path / CARD_FILE).is_file():
        raise ModelError(value, f"no red-line text model here ({CARD_FILE} not found); set [classifier] "
                         "redline_model to \"callqa:models/redline_text\", a model directory, or \"off\"")
    return path


def redline_version(value: str) -> str | None:
    """The configured model's version from its card, without loading it (None when off).

    Raises:
        ModelError: as :func:`redline_model_path`, or an unreadable card.
    """
    path = redline_model_path(value)
    return None if path is None else card_version(read_card(path, FILES))


def score_utterances(evidence: CallEvidence, model: RedlineTextModel, threshold: float | str = "model",
                     roles: Sequence[str] = (AGENT, MIXED), severity: str = "info", min_chars: int = 2) -> list[Hit]:
    """One hit per utterance whose abuse probability reaches ``threshold``.

    Args:
        evidence: the call's utterances.
        model: from :meth:`RedlineTextModel.load`.
        threshold: ``"model"`` = the model's own threshold (chosen at training), or a probability.
        roles: roles whose utterances are scored (mixed = a mono call).
        severity: severity of the hits ("info": flag for review only).
        min_chars: utterances shorter than this are not scored.

    Returns:
        Hits with rule id :data:`RULE_ID`, category ``redline_abuse``, match
        type ``model``, confidence = the probability; suspect when the
        utterance is.
    """
    cut = model.threshold if threshold == "model" else float(threshold)
    utterances = [u for u in evidence.utterances if u.role in roles and len(u.text.strip()) >= min_chars]
    probabilities = model.predict_proba([u.text for u in utterances])
    hits = []
    for utterance, probability in zip(utterances, probabilities, strict=True):
        if probability < cut:
            continue
        hits.append(Hit(
            call_id=evidence.call_id, rule_id=RULE_ID, detector_version=model.version, category=CATEGORY,
            severity=severity, error_class="customer", role=UNKNOWN if utterance.role == MIXED else utterance.role,
            start_s=utterance.start_s, end_s=utterance.end_s, match_type="model",
            confidence=float(min(1.0, max(0.0, probability))), matched_text=utterance.text,
            context=utterance.text, suspect=utterance.suspect,
            detail=json.dumps({"probability": round(float(probability), 4), "threshold": cut}),
        ))
    return hits


__all__ = ["CARD_FILE", "FILES", "MODEL_FILE", "RULE_ID", "RedlineTextModel", "build_pipeline", "card_version",
           "redline_model_path", "redline_version", "score_utterances"]
