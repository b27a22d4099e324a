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

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.errors import ModelError
from pipeline.records import AGENT, MIXED, UNKNOWN, CallEvidence, Hit

RULE_ID = "model.redline_text"
CATEGORY = "redline_abuse"
MODEL_FILE = "redline_text.skops"
CARD_FILE = "redline_card.json"
#: Utterances shorter than this (characters) are not scored.
MIN_CHARS = 2


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
        """``redline_text@hash``: stored as the hits' ``rules_version``."""
        return card_version(self.card)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(abusive) per text."""
        if not texts:
            return np.zeros(0)
        return self.pipeline.predict_proba(list(texts))[:, 1]

    def save(self, out_dir: str | Path) -> Path:
        """Write ``redline_text.skops`` and ``redline_card.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, out / MODEL_FILE)
        card = {**self.card, "threshold": self.threshold, "sklearn_version": sklearn.__version__,
                "model_sha256": hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest()}
        self.card.clear()
        self.card.update(card)
        (out / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> RedlineTextModel:
        """Load a saved model directory.

        Raises:
            ModelError: missing/corrupt files, another scikit-learn version,
                or types in the skops file that are not scikit-learn/numpy.
        """
        root = Path(path)
        try:
            card = json.loads((root / CARD_FILE).read_text(encoding="utf-8"))
            blob = (root / MODEL_FILE).read_bytes()
        except (OSError, ValueError) as exc:
            raise ModelError(str(root), f"not a red-line text model directory: {exc}") from None
        if card.get("sklearn_version") != sklearn.__version__:
            raise ModelError(str(root), f"trained with scikit-learn {card.get('sklearn_version')}, running "
                             f"{sklearn.__version__}: retrain (scripts/train_redline_model.py)")
        if hashlib.sha256(blob).hexdigest() != card.get("model_sha256"):
            raise ModelError(str(root), f"{MODEL_FILE} does not match its card (changed or corrupt)")
        untrusted = sio.get_untrusted_types(data=blob)
        foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy.", "builtins."))]
        if foreign:
            raise ModelError(str(root), f"{MODEL_FILE} holds types callqa does not trust: {foreign[:3]}")
        try:
            pipeline = sio.loads(blob, trusted=untrusted)
        except Exception as exc:  # noqa: BLE001 - any skops failure means an unusable file
            raise ModelError(str(root), f"cannot load {MODEL_FILE}: {type(exc).__name__}: {exc}") from None
        return cls(pipeline, float(card["threshold"]), card)


def card_version(card: dict[str, Any]) -> str:
    """A model's version from its card alone (no need to load the estimator)."""
    return f"redline_text@{card.get('model_sha256', 'unsaved')[:12]}"


def find_redline_model(path: str | Path) -> Path | None:
    """Where the configured model lives: ``path`` as given, else relative to the checkout; None if "" or absent.

    ``[classifier] redline_model`` defaults to ``models/redline_text``, which a
    checkout has but an installed wheel does not; absent means lexicon rules only.
    """
    if not str(path):
        return None
    candidates = [Path(path)]
    if not Path(path).is_absolute():
        candidates.append(Path(__file__).resolve().parents[2] / path)
    return next((c for c in candidates if (c / CARD_FILE).exists()), None)


def score_utterances(evidence: CallEvidence, model: RedlineTextModel, threshold: float | None = None,
                     roles: Sequence[str] = (AGENT, MIXED), severity: str = "info") -> list[Hit]:
    """One hit per utterance whose abuse probability reaches ``threshold``.

    Args:
        evidence: the call's utterances.
        model: from :meth:`RedlineTextModel.load`.
        threshold: None or 0 = the model's own threshold (chosen at training).
        roles: roles whose utterances are scored (mixed = a mono call).
        severity: severity of the hits ("info": flag for review only).

    Returns:
        Hits with rule id :data:`RULE_ID`, category ``redline_abuse``, match
        type ``model``, confidence = the probability; suspect when the
        utterance is.
    """
    cut = threshold if threshold else model.threshold
    utterances = [u for u in evidence.utterances if u.role in roles and len(u.text.strip()) >= MIN_CHARS]
    probabilities = model.predict_proba([u.text for u in utterances])
    hits = []
    for utterance, probability in zip(utterances, probabilities, strict=True):
        if probability < cut:
            continue
        hits.append(Hit(
            call_id=evidence.call_id, rule_id=RULE_ID, rules_version=model.version, category=CATEGORY,
            severity=severity, error_class="customer", role=UNKNOWN if utterance.role == MIXED else utterance.role,
            start_s=utterance.start_s, end_s=utterance.end_s, match_type="model",
            confidence=float(min(1.0, max(0.0, probability))), matched_text=utterance.text,
            context=utterance.text, suspect=utterance.suspect,
            detail=json.dumps({"probability": round(float(probability), 4), "threshold": cut}),
        ))
    return hits


__all__ = ["CARD_FILE", "MODEL_FILE", "RULE_ID", "RedlineTextModel", "build_pipeline", "card_version",
           "find_redline_model", "score_utterances"]
