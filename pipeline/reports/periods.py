"""Report periods: a day, an ISO week (Monday to Sunday) or a calendar month.

A period is half-open, ``[start, end)``, over call dates (the store's
``call_date`` partition, 'YYYY-MM-DD'), so ISO date strings compare in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PeriodKind = Literal["day", "week", "month"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("day", "week", "month")
#: Chinese names used in report titles (日报 / 周报 / 月报).
PERIOD_NAMES = {"day": "日报", "week": "周报", "month": "月报"}


@dataclass(frozen=True)
class Period:
    """One report period: calls with ``start <= call_date < end``."""

    kind: PeriodKind
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.kind not in PERIOD_KINDS:
            raise ValueError(f"period kind must be one of {PERIOD_KINDS}, got {self.kind!r}")
        if self.end <= self.start:
            raise ValueError(f"period end {self.end} must be after its start {self.start}")

    @property
    def label(self) -> str:
        """'2026-11-21', '2026-W47' or '2026-11'."""
        if self.kind == "day":
            return self.start.isoformat()
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.year}-{self.start.month:02d}"

    @property
    def start_text(self) -> str:
        return self.start.isoformat()

    @property
    def end_text(self) -> str:
        """The first date after the period (exclusive bound)."""
        return self.end.isoformat()

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def previous(self) -> Period:
        """The period just before this one, of the same kind."""
        return period_containing(self.start - timedelta(days=1), self.kind)


def period_containing(day: date, kind: PeriodKind) -> Period:
    """The day, ISO week or month that contains ``day``."""
    if kind == "day":
        return Period(kind, day, day + timedelta(days=1))
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return Period(kind, start, start + timedelta(days=7))
    if kind == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return Period(kind, start, end)
    raise ValueError(f"period kind must be one of {PERIOD_KINDS}, got {kind!r}")


def periods_ending(period: Period, count: int) -> list[Period]:
    """``count`` consecutive periods ending with ``period``, oldest first."""
    out = [period]
    while len(out) < count:
        out.append(out[-1].previous())
    return out[::-1]


def parse_date(text: str) -> date:
    """'YYYY-MM-DD' as a date.

    Raises:
        ValueError: not an ISO date.
    """
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None
