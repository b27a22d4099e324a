"""The classifier registry: which trained models exist, and which one is promoted.

A models directory (``[classifier] models_dir``, by default ``STORE/models``)
holds one directory per model (``callqa train``) and a ``PROMOTED`` file
naming the model the pipeline applies to every call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.scoring.classifier import CARD_JSON, TrainedModel, load_model, predict_proba, training_data
from pipeline.scoring.evaluate import evaluate_predictions

PROMOTED_FILE = "PROMOTED"


def promoted_name(models_dir: str | Path) -> str | None:
    """The promoted model's name (``models_dir/PROMOTED``), or None."""
    path = Path(models_dir) / PROMOTED_FILE
    if not path.exists():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def load_promoted(models_dir: str | Path) -> TrainedModel | None:
    """Load the promoted model once per worker; None when none is promoted (scorecard only).

    Raises:
        ModelError: the promoted model is missing or incompatible.
    """
    name = promoted_name(models_dir)
    return None if name is None else load_model(Path(models_dir) / name)


def list_models(models_dir: str | Path) -> list[dict[str, Any]]:
    """One summary per model directory: name, kind, target, created, metrics, promoted."""
    root = Path(models_dir)
    promoted = promoted_name(root)
    out = []
    for card_path in sorted(root.glob(f"*/{CARD_JSON}")):
        card = json.loads(card_path.read_text(encoding="utf-8"))
        out.append({"name": card_path.parent.name, "kind": card["kind"], "target": card["target"],
                    "created_at": card["created_at"], "n_calls": card["n_calls"],
                    "held_out": card.get("metrics", {}).get("held_out", {}),
                    "promoted": card_path.parent.name == promoted})
    return out


def promote(models_dir: str | Path, name: str) -> None:
    """Make ``name`` the model the pipeline applies (writes ``models_dir/PROMOTED``).

    Raises:
        ModelError: the model cannot be loaded by this callqa.
    """
    root = Path(models_dir)
    load_model(root / name)  # refuse to promote what the pipeline could not load
    tmp = root / f".{PROMOTED_FILE}.tmp"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, root / PROMOTED_FILE)


def compare_models(models: Sequence[TrainedModel], features: pa.Table | pd.DataFrame,
                   labels: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each model's metrics on the same labelled rows: model version -> metrics."""
    X, y = training_data(features, labels)  # noqa: N806
    return {m.version: evaluate_predictions(y.to_numpy(), predict_proba(m, X), m.card)["metrics"] for m in models}




__all__ = ["PROMOTED_FILE", "compare_models", "list_models", "load_promoted", "promote", "promoted_name"]
