"""The review queue: filters, counts and pages over a :class:`~pipeline.review.snapshot.Snapshot`.

Calls are already in queue order in the snapshot, so a filter is a boolean
mask over positions and a page is a slice of its true positions: no sort at
request time. Sampling-plan queues (``docs/contracts.md``: a CSV with a
``call_id`` column) keep the file's order.
"""

from __future__ import annotations

import csv
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import CallqaError
from pipeline.review.calls import rank_hits
from pipeline.review.snapshot import OUTCOMES, TIERS, Snapshot

STATUSES = ("unreviewed", "in_progress", "reviewed")
PER_PAGE_CHOICES = (25, 50, 100, 200)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_SEARCH_CHARS = 100
QUEUE_COLUMNS = ("call_id", "stratum", "inclusion_probability", "weight", "reason")


class QueueFileError(CallqaError):
    """A sampling-plan queue file cannot be read or has no call_id column."""


@dataclass(frozen=True)
class QueueFilters:
    """What the reviewer narrowed the queue to; empty strings mean "any"."""

    date_from: str = ""
    date_to: str = ""
    team: str = ""
    agent: str = ""
    rule: str = ""
    category: str = ""
    severity: str = ""
    outcome: str = ""
    status: str = ""
    text: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> QueueFilters:
        """Filters from a query string; malformed values are dropped, never passed on."""
        values = {f.name: str(params.get(f.name, "") or "").strip()[:MAX_SEARCH_CHARS] for f in fields(cls)}
        for name in ("date_from", "date_to"):
            if not _DATE.match(values[name]):
                values[name] = ""
        if values["outcome"] not in OUTCOMES:
            values["outcome"] = ""
        if values["status"] not in STATUSES:
            values["status"] = ""
        return cls(**values)

    def query_string(self, **extra: Any) -> str:
        """The filters (and ``extra``) as a query string, empty values left out."""
        items = {k: v for k, v in {**asdict(self), **extra}.items() if v not in ("", None)}
        return urlencode(items)

    @property
    def active(self) -> bool:
        return any(asdict(self).values())


@dataclass(frozen=True)
class QueueFile:
    """A sampling plan's queue: call ids in the plan's order with their design columns."""

    name: str
    rows: tuple[Mapping[str, str], ...]

    @property
    def call_ids(self) -> list[str]:
        return [r["call_id"] for r in self.rows]


def read_queue_file(path: str | Path) -> QueueFile:
    """Read a queue CSV (``call_id`` required; stratum, inclusion_probability, weight, reason optional).

    Raises:
        QueueFileError: unreadable, or no ``call_id`` column.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "call_id" not in (reader.fieldnames or []):
                raise QueueFileError(str(path), f"a queue needs a call_id column, found {reader.fieldnames}")
            rows = tuple({k: (row.get(k) or "").strip() for k in QUEUE_COLUMNS} for row in reader
                         if (row.get("call_id") or "").strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise QueueFileError(str(path), f"cannot read the queue: {exc}") from None
    return QueueFile(path.stem, rows)


class SearchCache:
    """Recent free-text search masks, per snapshot (a search scans every transcript once)."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._masks: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()

    def mask(self, snapshot: Snapshot, text: str) -> np.ndarray:
        """Calls whose transcript or call id contains ``text`` (literal, case-insensitive for Latin letters)."""
        key = (id(snapshot), text)
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        found = pc.match_substring(snapshot.transcripts, text, ignore_case=True)
        found = pc.or_(found, pc.match_substring(snapshot.calls["call_id"], text, ignore_case=True))
        mask = np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), bool)
        self._masks[key] = mask
        while len(self._masks) > self._size:
            self._masks.popitem(last=False)
        return mask


def positions_mask(size: int, positions: Sequence[int] | np.ndarray) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[np.asarray(positions, np.int64)] = True
    return mask


def select(snapshot: Snapshot, filters: QueueFilters, reviewed: np.ndarray | None = None,
           started: np.ndarray | None = None, search: SearchCache | None = None) -> np.ndarray:
    """The calls that pass ``filters``, as a boolean mask over queue positions.

    Args:
        snapshot: the current snapshot.
        filters: the reviewer's filters.
        reviewed: positions with a call verdict (for the status filter), as seen by this user.
        started: positions with at least one hit verdict but maybe no call verdict.
        search: a cache for free-text search masks.
    """
    mask = np.ones(snapshot.size, bool)
    if filters.date_from:
        mask &= snapshot.call_date >= filters.date_from
    if filters.date_to:
        mask &= snapshot.call_date <= filters.date_to
    for name, (codes, labels) in (("team", snapshot.team), ("agent", snapshot.agent)):
        value = getattr(filters, name)
        if value:
            mask &= codes == labels.index(value) if value in labels else False
    for kind in ("rule", "category", "severity"):
        value = getattr(filters, kind)
        if value:
            mask &= positions_mask(snapshot.size, snapshot.hit_index.get((kind, value), np.zeros(0, np.int64)))
    if filters.outcome:
        mask &= snapshot.outcome == OUTCOMES.index(filters.outcome)
    if filters.status:
        done = reviewed if reviewed is not None else np.zeros(snapshot.size, bool)
        touched = started if started is not None else np.zeros(snapshot.size, bool)
        if filters.status == "reviewed":
            mask &= done
        elif filters.status == "in_progress":
            mask &= touched & ~done
        else:
            mask &= ~done & ~touched
    if filters.text:
        mask &= (search or SearchCache()).mask(snapshot, filters.text)
    return mask


@dataclass(frozen=True)
class Page:
    """One page of the queue."""

    positions: np.ndarray
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def ordered(mask: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Positions passing ``mask``, in queue order or in ``order`` (a sampling queue's positions)."""
    if order is None:
        return np.flatnonzero(mask)
    return order[mask[order]]


def page_of(selected: np.ndarray, page: int, per_page: int) -> Page:
    """Slice one page (1-based; out-of-range pages clamp to the last)."""
    per_page = per_page if per_page in PER_PAGE_CHOICES else 50
    pages = max(1, -(-len(selected) // per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return Page(selected[start:start + per_page], len(selected), page, per_page)


def counts(snapshot: Snapshot, mask: np.ndarray, reviewed: np.ndarray | None = None) -> dict[str, int]:
    """Counts for the top of the queue: matching calls, per outcome, red line, fatal, unreviewed."""
    by_outcome = np.bincount(snapshot.outcome[mask], minlength=len(OUTCOMES))
    by_tier = np.bincount(snapshot.tier[mask], minlength=len(TIERS))
    out = {"calls": int(mask.sum()), **{name: int(by_outcome[i]) for i, name in enumerate(OUTCOMES)}}
    out["red_line"] = int(by_tier[TIERS.index("red line")])
    out["fatal"] = int(by_tier[TIERS.index("fatal item")])
    out["unreviewed"] = int((mask & ~reviewed).sum()) if reviewed is not None else out["calls"]
    return out


def _top_hits(hits: list[dict[str, Any]], limit: int = 3) -> tuple[list[Mapping[str, Any]], int]:
    """The most telling findings first (:func:`pipeline.review.calls.rank_hits`), and how many more."""
    ranked = rank_hits(hits)
    return ranked[:limit], max(0, len(ranked) - limit)


def page_rows(snapshot: Snapshot, positions: np.ndarray) -> list[dict[str, Any]]:
    """The queue rows of one page: call columns, tier, top findings, hit counts."""
    if not len(positions):
        return []
    table = snapshot.calls.take(pa.array(positions.astype(np.int64)))
    rows = table.to_pylist()
    for position, row, hits in zip(positions.tolist(), rows, snapshot.hits.rows_many(positions), strict=True):
        row["position"] = position
        row["tier_name"] = TIERS[row["tier"]]
        row["top_hits"], row["more_hits"] = _top_hits(hits)
        row["hits_total"] = len(hits)
        row["hits_fatal"] = sum(1 for h in hits if h["severity"] == "fatal")
    return rows


__all__ = ["PER_PAGE_CHOICES", "STATUSES", "Page", "QueueFile", "QueueFileError", "QueueFilters", "SearchCache",
           "counts", "ordered", "page_of", "page_rows", "positions_mask", "read_queue_file", "select"]
