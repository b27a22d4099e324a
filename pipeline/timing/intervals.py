"""Small interval helpers shared by the timing detectors (times on the call clock)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pipeline.records import SpeechSegment, Utterance
from pipeline.spans import Span, union


def activity(segments: Iterable[SpeechSegment], role: str | None = None) -> list[Span]:
    """Where ``role`` (or anyone, for ``None``) speaks: the union of its segments."""
    return union((s.start_s, s.end_s) for s in segments if role is None or s.role == role)


def text_between(utterances: Iterable[Utterance], role: str, start_s: float, end_s: float) -> str:
    """Text of ``role``'s utterances that overlap ``start_s..end_s``, joined."""
    return "".join(u.text for u in utterances
                   if u.role == role and u.start_s < end_s and u.end_s > start_s)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear), NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean, NaN for no values."""
    return float(sum(values) / len(values)) if values else math.nan
