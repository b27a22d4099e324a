"""Small interval helpers shared by the timing detectors (times on the call clock)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pipeline.records import SpeechSegment, Utterance

Span = tuple[float, float]


def union(spans: Iterable[Span]) -> list[Span]:
    """Merge overlapping or touching spans into a sorted list of disjoint spans."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def activity(segments: Iterable[SpeechSegment], role: str | None = None) -> list[Span]:
    """Where ``role`` (or anyone, for ``None``) speaks: the union of its segments."""
    return union((s.start_s, s.end_s) for s in segments if role is None or s.role == role)


def total_s(spans: Iterable[Span]) -> float:
    """Summed length of disjoint spans."""
    return float(sum(b - a for a, b in spans))


def intersection_s(spans: Sequence[Span], start_s: float, end_s: float) -> float:
    """Length of ``start_s..end_s`` covered by the disjoint ``spans``."""
    return float(sum(max(0.0, min(b, end_s) - max(a, start_s)) for a, b in spans))


def overlap_s(first: Sequence[Span], second: Sequence[Span]) -> float:
    """Time covered by both disjoint span lists."""
    total, j = 0.0, 0
    for a, b in first:
        while j < len(second) and second[j][1] <= a:
            j += 1
        k = j
        while k < len(second) and second[k][0] < b:
            total += max(0.0, min(b, second[k][1]) - max(a, second[k][0]))
            k += 1
    return total


def gaps(spans: Sequence[Span]) -> list[Span]:
    """The gaps between consecutive disjoint spans."""
    return [(a[1], b[0]) for a, b in zip(spans, spans[1:], strict=False) if b[0] > a[1]]


def count_chars(text: str) -> int:
    """Characters that are spoken content: CJK ideographs, letters and digits.

    Punctuation and spaces are not counted, so Whisper's punctuation never
    changes a rate.
    """
    return sum(1 for ch in text if ch.isalnum())


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
