"""A text model for hostile agent turns: an extra red-line signal beside the lexicon rules.

Character n-grams (1-3, hashed, TF-IDF) and a logistic regression, trained by
``scripts/train_redline_model.py`` on COLD (Chinese Offensive Language Dataset),
agent turns of service dialogues (CrossWOZ) and callqa's own labelled service lines
(``lexicons/redline_train.tsv``: insult, counter-question, coldness, impatience,
shirking, arguing, contradicting and clean). It scores every agent *turn* (:mod:`pipeline.text.turns`: the
agent's consecutive utterances, not Whisper's fragments) in matching form, so ASR
punctuation does not change the score, and raises a hit with its own rule id
(:data:`RULE_ID`) when P(not clean) reaches the threshold. The hit's category is
the most likely hostile class (:data:`CATEGORY_OF_CLASS`); a binary model (classes
0/1) reports ``redline_abuse``.

Model hits have severity ``info`` by default: one that no rule of its class
confirms sends the call to review (the scorecard's ``[outcome]``; a red-line
class also sets the red-line flag), but they do not fail the scorecard on
their own (a lexicon hit or a reviewer does). Pass ``severity="fatal"`` to
change that.

The model reads the turn's characters and, for a model whose card says ``"features":
"chars+sounds"`` (:data:`CHARS_AND_SOUNDS`), the sound class of every Chinese character after
them (:func:`model_input`): Whisper writes a hostile word it heard at 8 kHz as a homophone or
near-homophone ("才聋了吧" as "还农了吧", "你是猪吗" as "你是驻买"), and the sound classes of
:mod:`pipeline.text.fuzzy` (toneless pinyin with the confusions Whisper makes merged) give the
written and the said word the same n-grams. A model without that key reads characters only.

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
from pipeline.text.fuzzy import sound_class, split_syllable, syllables
from pipeline.text.turns import group_turns, model_text, sort_utterances

RULE_ID = "model.redline_text"
CATEGORY = "redline_abuse"
MODEL_FILE = "redline_text.skops"
CARD_FILE = "redline_card.json"
FILES = ModelFiles(MODEL_FILE, CARD_FILE, "model_sha256", ("sklearn.", "numpy.", "builtins."),
                   "retrain it (scripts/train_redline_model.py)")
#: The clean class of a multi-class model (P(red line) = 1 - P(clean)).
CLEAN = "clean"
#: Hit category of each hostile class (impatience is the coldness red line of DOMAIN.md §3).
CATEGORY_OF_CLASS = {
    "abuse": "redline_abuse", "counter_question": "redline_counter_question", "coldness": "redline_coldness",
    "impatience": "redline_coldness", "shirking": "shirking", "arguing": "arguing", "contradicting": "contradicting",
    "1": "redline_abuse",
}


#: Model inputs (the card's ``features``): the turn's characters only, or its characters then the sound
#: class of each Chinese character (see the module docstring).
CHARS = "chars"
CHARS_AND_SOUNDS = "chars+sounds"
FEATURES = (CHARS, CHARS_AND_SOUNDS)
#: Initials and finals of the sound classes (toneless pinyin, :func:`pipeline.text.fuzzy.sound_class`):
#: each (initial, final) pair is one character of the Private Use Area in the model's input, so that
#: n-grams of 1-3 characters span 1-3 syllables.
_INITIALS = ("", "b", "c", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "p", "r", "s", "sh", "t", "w", "y", "z",
             "zh")
_FINALS = ("a", "ai", "an", "ang", "ao", "e", "ei", "en", "er", "i", "ia", "ian", "iang", "iao", "ie", "in", "iong",
           "iu", "m", "n", "o", "ou", "u", "ua", "uai", "uan", "uang", "ue", "ui", "un", "uo", "v", "ve")
_PRIVATE_USE = 0xE000
_PINYIN: dict[str, str] = {}  # memo of toneless pinyin per character (bounded by the character set)


def sound_code(syllable: str) -> str:
    """One Private Use Area character for a syllable's sound class; "" for what is not a syllable."""
    initial, final = split_syllable(sound_class(syllable))
    if initial not in _INITIALS or final not in _FINALS:
        return ""
    return chr(_PRIVATE_USE + _INITIALS.index(initial) * len(_FINALS) + _FINALS.index(final))


def model_input(text: str, features: str = CHARS) -> str:
    """What the estimator reads for one turn in matching form: the text, and for :data:`CHARS_AND_SOUNDS`
    a space and the sound code of every Chinese character ("你是猪吗" and "你是驻买" then share the
    codes of ni-shi-zhu-m…)."""
    if features != CHARS_AND_SOUNDS:
        return text
    hanzi = "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
    return f"{text} {''.join(sound_code(s) for s in syllables(hanzi, _PINYIN))}"


def build_pipeline(seed: int = 0, c: float = 4.0, n_features: int = 2**18,
                   class_weight: str | None = "balanced") -> Pipeline:
    """The unfitted text pipeline (hashed char 1-3-grams, TF-IDF, logistic regression).

    ``class_weight=None`` when the caller passes sample weights (the training script
    balances the classes itself and weighs each source).
    """
    return Pipeline([
        ("hash", HashingVectorizer(analyzer="char", ngram_range=(1, 3), n_features=n_features,
                                   alternate_sign=False, norm=None)),
        ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ("model", LogisticRegression(C=c, class_weight=class_weight, max_iter=2000, random_state=seed)),
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
        """P(red line) per text: P(class 1) of a binary model, 1 - P(clean) of a multi-class one."""
        return self.predict(texts)[0]

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """P(red line) and the hit category (the most likely hostile class) per text."""
        if not texts:
            return np.zeros(0), []
        features = self.card.get("features", CHARS)
        probabilities = self.pipeline.predict_proba([model_input(t, features) for t in texts])
        classes = [str(c) for c in self.pipeline.classes_]
        if CLEAN not in classes:  # binary 0/1 (COLD-only models)
            return probabilities[:, classes.index("1")], ["redline_abuse"] * len(texts)
        clean = classes.index(CLEAN)
        hostile = [i for i in range(len(classes)) if i != clean]
        best = [hostile[int(np.argmax(row[hostile]))] for row in probabilities]
        return 1.0 - probabilities[:, clean], [CATEGORY_OF_CLASS.get(classes[i], "redline_abuse") for i in best]

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
                types in the skops file that are not scikit-learn/numpy, or an
                input (the card's ``features``) this version does not know.
        """
        pipeline, card = load_model_dir(path, FILES)
        features = card.get("features", CHARS)
        if features not in FEATURES:  # fed the wrong input, a model scores garbage without an error
            raise ModelError(str(path), f"the model reads {features!r}, which this callqa does not know "
                             f"(it knows {', '.join(FEATURES)}); upgrade callqa or retrain it "
                             "(scripts/train_redline_model.py)")
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


@dataclass(frozen=True)
class TurnScore:
    """The model's view of one turn: where it was said, its text, P(red line) and category."""

    role: str
    start_s: float
    end_s: float
    text: str
    probability: float
    category: str
    suspect: bool
    utterances: tuple[int, ...]  # indices into the sorted utterances


def score_turns(evidence: CallEvidence, model: RedlineTextModel, roles: Sequence[str] = (AGENT, MIXED),
                min_chars: int = 2, max_gap_s: float = 1.5) -> list[TurnScore]:
    """Score every turn of ``roles`` with at least ``min_chars`` characters (pure).

    A turn is suspect when its red-line probability rests on suspect utterances: without
    them it is too short to score, or it scores under half the probability it has with them.
    """
    utterances = sort_utterances(evidence.utterances)
    turns = [g for g in group_turns(utterances, max_gap_s) if utterances[g[0]].role in roles]
    texts = [model_text([utterances[i].text for i in g]) for g in turns]
    chosen = [(g, t) for g, t in zip(turns, texts, strict=True) if len(t) >= min_chars]
    probabilities, categories = model.predict([t for _, t in chosen])
    trusted = {k: model_text([utterances[i].text for i in g if not utterances[i].suspect])
               for k, (g, _) in enumerate(chosen) if any(utterances[i].suspect for i in g)}
    again = dict(zip(trusted, model.predict(list(trusted.values()))[0], strict=True)) if trusted else {}
    out = []
    for k, ((group, text), probability, category) in enumerate(zip(chosen, probabilities, categories, strict=True)):
        suspect = bool(k in trusted and (len(trusted[k]) < min_chars or again[k] < probability / 2))
        out.append(TurnScore(utterances[group[0]].role, utterances[group[0]].start_s,
                             max(utterances[i].end_s for i in group), text, float(probability), category,
                             suspect, tuple(group)))
    return out


def turn_hit(call_id: str, score: TurnScore, model: RedlineTextModel, threshold: float, severity: str,
             detail: dict[str, object] | None = None) -> Hit:
    """The hit of one turn that reached ``threshold``."""
    return Hit(
        call_id=call_id, rule_id=RULE_ID, detector_version=model.version, category=score.category,
        severity=severity, error_class="customer", role=UNKNOWN if score.role == MIXED else score.role,
        start_s=round(score.start_s, 3), end_s=round(max(score.start_s, score.end_s), 3), match_type="model",
        confidence=float(min(1.0, max(0.0, score.probability))), matched_text=score.text, context=score.text,
        suspect=score.suspect,
        detail=json.dumps({"probability": round(score.probability, 4), "threshold": threshold, **(detail or {})},
                          ensure_ascii=False),
    )


def model_threshold(model: RedlineTextModel, threshold: float | str) -> float:
    """``"model"`` = the threshold chosen at training (the card's), else the number given."""
    return model.threshold if threshold == "model" else float(threshold)


def score_utterances(evidence: CallEvidence, model: RedlineTextModel, threshold: float | str = "model",
                     roles: Sequence[str] = (AGENT, MIXED), severity: str = "info", min_chars: int = 2,
                     max_gap_s: float = 1.5) -> list[Hit]:
    """One hit per turn of ``roles`` whose red-line probability reaches ``threshold``.

    Args:
        evidence: the call's utterances.
        model: from :meth:`RedlineTextModel.load`.
        threshold: ``"model"`` = the model's own threshold (chosen at training), or a probability.
        roles: roles whose turns are scored (mixed = a mono call).
        severity: severity of the hits ("info": flag for review only).
        min_chars: turns shorter than this (matching form) are not scored.
        max_gap_s: longest pause inside one turn (``[text] turn_max_gap_s``).

    Returns:
        Hits with rule id :data:`RULE_ID`, the category of the most likely hostile class,
        match type ``model``, confidence = the probability, spanning the turn; suspect as
        :func:`score_turns` says.
    """
    cut = model_threshold(model, threshold)
    return [turn_hit(evidence.call_id, score, model, cut, severity)
            for score in score_turns(evidence, model, roles, min_chars, max_gap_s) if score.probability >= cut]


__all__ = ["CARD_FILE", "CATEGORY_OF_CLASS", "CHARS", "CHARS_AND_SOUNDS", "CLEAN", "FEATURES", "FILES", "MODEL_FILE",
           "RULE_ID", "RedlineTextModel", "TurnScore", "build_pipeline", "card_version", "model_input",
           "model_threshold", "redline_model_path", "redline_version", "score_turns", "score_utterances",
           "sound_code", "turn_hit"]
