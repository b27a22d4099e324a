"""Save and load scikit-learn models as inspectable skops files with a JSON card.

Both kinds of model callqa applies, the red-line text model
(:mod:`pipeline.text.redline_model`) and the call classifiers
(:mod:`pipeline.scoring.classifier`), are a directory with an estimator file
(skops, never a bare pickle) and a card (JSON) that records the scikit-learn
version and the estimator file's SHA-256. :func:`load_model_dir` is the one
place that checks all of that before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn
import skops.io as sio

from pipeline.errors import ModelError


@dataclass(frozen=True)
class ModelFiles:
    """Names and trust rules of one kind of model directory.

    Attributes:
        model_file: the skops file's name.
        card_file: the JSON card's name.
        sha_key: the card key holding the skops file's SHA-256.
        trusted_prefixes: module prefixes of the types the skops file may hold.
        retrain: how to make a new model, for error messages.
    """

    model_file: str
    card_file: str
    sha_key: str
    trusted_prefixes: tuple[str, ...]
    retrain: str


def save_model_dir(estimator: Any, card: dict[str, Any], out_dir: str | Path, kind: ModelFiles) -> dict[str, Any]:
    """Write the estimator (skops) and its card; return the card with version and checksum added."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sio.dump(estimator, out / kind.model_file)
    saved = {**card, "sklearn_version": sklearn.__version__,
             kind.sha_key: hashlib.sha256((out / kind.model_file).read_bytes()).hexdigest()}
    (out / kind.card_file).write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    return saved


def read_card(path: str | Path, kind: ModelFiles) -> dict[str, Any]:
    """A model directory's card without loading the estimator.

    Raises:
        ModelError: the card is missing or not JSON.
    """
    try:
        card = json.loads((Path(path) / kind.card_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(str(path), f"not a model directory ({kind.card_file}: {exc})") from None
    if not isinstance(card, dict):
        raise ModelError(str(path), f"{kind.card_file} is not a JSON object")
    return card


def load_model_dir(path: str | Path, kind: ModelFiles) -> tuple[Any, dict[str, Any]]:
    """Load ``(estimator, card)`` after checking the directory can be trusted and used.

    Raises:
        ModelError: files missing or corrupt, another scikit-learn version, a
            checksum that does not match the card, or types in the skops file
            outside ``kind.trusted_prefixes``.
    """
    root = Path(path)
    card = read_card(root, kind)
    try:
        blob = (root / kind.model_file).read_bytes()
    except OSError as exc:
        raise ModelError(str(root), f"cannot read {kind.model_file}: {exc.strerror or exc}") from None
    if card.get("sklearn_version") != sklearn.__version__:
        raise ModelError(str(root), f"trained with scikit-learn {card.get('sklearn_version')}, running "
                         f"{sklearn.__version__}: {kind.retrain}")
    if hashlib.sha256(blob).hexdigest() != card.get(kind.sha_key):
        raise ModelError(str(root), f"{kind.model_file} does not match its card (changed or corrupt)")
    untrusted = sio.get_untrusted_types(data=blob)
    foreign = [t for t in untrusted if not t.startswith(kind.trusted_prefixes)]
    if foreign:
        raise ModelError(str(root), f"{kind.model_file} holds types callqa does not trust: {foreign[:3]}")
    try:
        estimator = sio.loads(blob, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001 - any skops failure means an unusable file
        raise ModelError(str(root), f"cannot load {kind.model_file}: {type(exc).__name__}: {exc}") from None
    return estimator, card


__all__ = ["ModelFiles", "load_model_dir", "read_card", "save_model_dir"]
