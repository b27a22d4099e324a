"""Span algebra on the call clock: a span is ``(start_s, end_s)``; lists of spans are sorted and disjoint.

Used by the ASR coverage (speech minus text), the timing detectors (who speaks
when) and the review page's timeline. Pure functions, no pipeline types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def subtract(spans: Sequence[Span], remove: Sequence[Span]) -> list[Span]:
    """Parts of the disjoint sorted ``spans`` not covered by the disjoint sorted ``remove``."""
    out: list[Span] = []
    j = 0
    for start, end in spans:
        cursor = start
        while j < len(remove) and remove[j][1] <= cursor:
            j += 1
        k = j
        while k < len(remove) and remove[k][0] < end:
            if remove[k][0] > cursor:
                out.append((cursor, remove[k][0]))
            cursor = max(cursor, remove[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def intersect(first: Sequence[Span], second: Sequence[Span]) -> list[Span]:
    """Where both disjoint sorted span lists cover the call."""
    out: list[Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start, end = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if start < end:
            out.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out


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


__all__ = ["Span", "gaps", "intersect", "intersection_s", "overlap_s", "subtract", "total_s", "union"]
