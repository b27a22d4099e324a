"""State a store keeps besides its tables: what each run planned, and how the store is scored.

``STORE/_state/runs/<run_id>.json``: the calls a run planned (``callqa status``
shows the ones still pending). ``STORE/_state/scoring.json``: the scorecard the
store is scored with (its text is kept in ``_state/scorecards/<version>.toml``,
so any stored score can be recomputed) and the classifier last applied.
``callqa score --scorecard`` changes it; ``run``, ``rescore`` and ``score``
all use it, so they never undo each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.scoring.scorecard import Scorecard, parse_scorecard
from pipeline.store.delta import Store, write_json_atomic


def _state_dir(store: Store) -> Path:
    return store.root / "_state"


def new_run_id() -> str:
    """A run id that sorts by time."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def record_run(store: Store, run_id: str, planned: Sequence[dict[str, str]], settings: dict[str, Any]) -> None:
    """Remember which calls a run planned, for ``callqa status`` (pending = planned - done).

    Raises:
        StoreError: the store cannot be written (full disk, read-only).
    """
    body = {"run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat(), "settings": settings,
            "planned": list(planned)}
    try:
        write_json_atomic(_state_dir(store) / "runs" / f"{run_id}.json", body)
    except OSError as exc:
        raise StoreError(str(store.root), f"cannot record the run ({exc.strerror or exc})") from None


def last_run(store: Store) -> dict[str, Any] | None:
    """The most recent run record, or None."""
    runs = sorted((_state_dir(store) / "runs").glob("*.json"))
    if not runs:
        return None
    try:
        return dict(json.loads(runs[-1].read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise StoreError(str(runs[-1]), f"unreadable run record: {exc}") from None


@dataclass(frozen=True)
class ScoringState:
    """How a store is scored: its scorecard (text and version) and the classifier last applied."""

    scorecard_version: str
    scorecard_text: str
    scorecard_source: str
    classifier: str | None

    @property
    def scorecard(self) -> Scorecard:
        return parse_scorecard(self.scorecard_text, self.scorecard_source)


def scoring_state(store: Store) -> ScoringState | None:
    """The store's scoring state, or None before its first run."""
    path = _state_dir(store) / "scoring.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        text = (_state_dir(store) / "scorecards" / data["scorecard_file"]).read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(str(path), f"unreadable scoring state: {exc}") from None
    return ScoringState(data["scorecard_version"], text, data["scorecard_source"], data.get("classifier"))


def save_scoring_state(store: Store, scorecard: Scorecard, text: str, source: str, classifier: str | None) -> None:
    """Record the scorecard (its text) and classifier the store is now scored with.

    Raises:
        StoreError: the store cannot be written.
    """
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in scorecard.version) + ".toml"
    try:
        target = _state_dir(store) / "scorecards" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        write_json_atomic(_state_dir(store) / "scoring.json", {
            "scorecard_version": scorecard.version, "scorecard_file": name, "scorecard_source": source,
            "classifier": classifier, "updated_at": datetime.now(timezone.utc).isoformat()})
    except OSError as exc:
        raise StoreError(str(store.root), f"cannot record the scoring state ({exc.strerror or exc})") from None


__all__ = ["ScoringState", "last_run", "new_run_id", "record_run", "save_scoring_state", "scoring_state"]
