"""The review app's shared state: settings, the current snapshot (rebuilt when the store changes), caches.

One :class:`ReviewState` per app. Requests read the current snapshot (an
immutable object, swapped whole after a rebuild in a background thread, so a
request never sees half an index) and open their own SQLite connection per
thread for verdicts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.review import verdicts
from pipeline.review.audio import AudioCache
from pipeline.review.calls import PiiDisplay
from pipeline.review.queue import SearchCache
from pipeline.review.snapshot import Snapshot, load_snapshot, store_version
from pipeline.scoring.scorecard import Scorecard

QUEUES_DIR = "queues"


@dataclass(frozen=True)
class ReviewSettings:
    """How the app was started (``callqa review`` options and the loaded config)."""

    store_root: Path
    pii: PiiDisplay = field(default_factory=PiiDisplay)
    scorecard: Scorecard | None = None
    queue_files: tuple[Path, ...] = ()
    refresh_every_s: float = 10.0
    secure_cookies: bool = False
    session_max_age_s: int = 12 * 3600
    audio_cache_bytes: int = 256 << 20


class ReviewState:
    """Settings plus the current snapshot and per-thread database connections."""

    def __init__(self, settings: ReviewSettings, loader: Callable[[], Snapshot] | None = None,
                 versioner: Callable[[], str] | None = None) -> None:
        self.settings = settings
        items = settings.scorecard.items if settings.scorecard is not None else ()
        extra = [item.feature for item in items if item.feature]
        self._loader = loader or (lambda: load_snapshot(settings.store_root, extra))
        # what the snapshot's signature is compared with; tests with their own loader never refresh by themselves
        self._snapshot: Snapshot = self._loader()
        self._versioner = versioner or ((lambda: store_version(settings.store_root)) if loader is None
                                        else (lambda: self._snapshot.signature))
        self._checked_at = time.monotonic()
        self._rebuilding = threading.Lock()
        self._local = threading.local()
        # One writer at a time inside this process: threads queue on a lock instead of on SQLite's
        # busy handler (which sleeps up to 100 ms between retries); other processes still get busy_timeout.
        self.write_lock = threading.Lock()
        verdicts.connect(settings.store_root).close()  # create the database (WAL) before any request
        self._watch = verdicts.connect(settings.store_root)  # read-only: its data_version sees others' commits
        self._watch_lock = threading.Lock()
        self._masks: dict[tuple[int, str | None], tuple[int, np.ndarray, np.ndarray]] = {}
        self._hit_positions: tuple[int, dict[str, int]] | None = None
        self.search = SearchCache()
        self.audio = AudioCache(settings.audio_cache_bytes)

    # -- snapshot ------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot; starts a background rebuild when the store changed (checked every few seconds)."""
        now = time.monotonic()
        if now - self._checked_at >= self.settings.refresh_every_s:
            self._checked_at = now
            if self._version() != self._snapshot.signature:
                self.refresh(wait=False)
        return self._snapshot

    def _version(self) -> str:
        try:
            return self._versioner()
        except Exception:  # noqa: BLE001 - a store being compacted or rewritten: try again next time
            return self._snapshot.signature

    def refresh(self, wait: bool = True) -> bool:
        """Rebuild the snapshot from the store; False when a rebuild is already running (and not waiting)."""
        if not self._rebuilding.acquire(blocking=wait):
            return False

        def rebuild() -> None:
            try:
                self._snapshot = self._loader()
            finally:
                self._rebuilding.release()

        if wait:
            rebuild()
        else:
            threading.Thread(target=rebuild, name="callqa-review-refresh", daemon=True).start()
        return True

    def hit_position(self, snapshot: Snapshot, hit_id: str) -> int | None:
        """The queue position of the call a current hit belongs to."""
        cached = self._hit_positions
        if cached is None or cached[0] != id(snapshot):
            table = snapshot.hits.table
            ids = table["hit_id"].to_pylist() if table.num_rows else []
            pos = table["_pos"].to_pylist() if table.num_rows else []
            cached = (id(snapshot), dict(zip(ids, pos, strict=True)))
            self._hit_positions = cached
        return cached[1].get(hit_id)

    # -- verdicts --------------------------------------------------------------
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the verdict database."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = verdicts.connect(self.settings.store_root)
            self._local.conn = conn
        return conn

    def review_masks(self, snapshot: Snapshot, reviewer: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(calls with a call verdict, calls with a hit verdict) by ``reviewer`` (None = anyone), as masks.

        Cached until someone writes a verdict (SQLite's ``data_version`` changes).
        """
        with self._watch_lock:
            version = int(self._watch.execute("PRAGMA data_version").fetchone()[0])
            key = (id(snapshot), reviewer)
            cached = self._masks.get(key)
            if cached and cached[0] == version:
                return cached[1], cached[2]
            where, params = ("WHERE reviewer = ?", [reviewer]) if reviewer is not None else ("", [])
            masks = []
            for table in ("call_verdicts", "hit_verdicts"):
                ids = [r[0] for r in self._watch.execute(f"SELECT DISTINCT call_id FROM {table} {where}", params)]
                mask = np.zeros(snapshot.size, bool)
                found = [snapshot.position[c] for c in ids if c in snapshot.position]
                mask[np.asarray(found, np.int64)] = True
                masks.append(mask)
            if len(self._masks) > 64:
                self._masks.clear()
            self._masks[key] = (version, masks[0], masks[1])
            return masks[0], masks[1]

    # -- sampling queues -------------------------------------------------------
    def queues(self) -> dict[str, Path]:
        """Queue name -> file: every CSV in ``STORE/_review/queues/`` plus the files given with ``--queue``."""
        found: dict[str, Path] = {}
        folder = self.settings.store_root / verdicts.REVIEW_DIR / QUEUES_DIR
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.csv")) if p.is_file()})
        found.update({p.stem: p for p in self.settings.queue_files})
        return found


__all__ = ["ReviewSettings", "ReviewState"]
