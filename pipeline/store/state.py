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
from typing import Any

from pipeline.errors import StoreError
from pipeline.scoring.scorecard import Scorecard, parse_scorecard
from pipeline.store.delta import Store

STATE = "_state"


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
        store.location.write_json(f"{STATE}/runs/{run_id}.json", body)
    except OSError as exc:
        raise StoreError(store.name, f"cannot record the run ({exc.strerror or exc})") from None


def last_run(store: Store) -> dict[str, Any] | None:
    """The most recent run record, or None."""
    try:
        runs = [name for name in store.location.file_names(f"{STATE}/runs") if name.endswith(".json")]
    except OSError as exc:
        raise StoreError(store.location.join(STATE, "runs"), f"cannot list the run records: {exc}") from None
    if not runs:
        return None
    latest = f"{STATE}/runs/{runs[-1]}"
    try:
        return dict(json.loads(store.location.read_text(latest)))
    except (OSError, ValueError) as exc:
        raise StoreError(store.location.join(latest), f"unreadable run record: {exc}") from None


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
    path = f"{STATE}/scoring.json"
    try:
        if not store.location.is_file(path):
            return None
        data = json.loads(store.location.read_text(path))
        text = store.location.read_text(f"{STATE}/scorecards/{data['scorecard_file']}")
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(store.location.join(path), f"unreadable scoring state: {exc}") from None
    return ScoringState(data["scorecard_version"], text, data["scorecard_source"], data.get("classifier"))


def save_scoring_state(store: Store, scorecard: Scorecard, text: str, source: str, classifier: str | None) -> None:
    """Record the scorecard (its text) and classifier the store is now scored with.

    Raises:
        StoreError: the store cannot be written.
    """
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in scorecard.version) + ".toml"
    try:
        target = f"{STATE}/scorecards/{name}"
        if not store.location.is_file(target) or store.location.read_text(target) != text:
            store.location.write_text(target, text)
        store.location.write_json(f"{STATE}/scoring.json", {
            "scorecard_version": scorecard.version, "scorecard_file": name, "scorecard_source": source,
            "classifier": classifier, "updated_at": datetime.now(timezone.utc).isoformat()})
    except OSError as exc:
        raise StoreError(store.name, f"cannot record the scoring state ({exc.strerror or exc})") from None


__all__ = ["ScoringState", "last_run", "new_run_id", "record_run", "save_scoring_state", "scoring_state"]
