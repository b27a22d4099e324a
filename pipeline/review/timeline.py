"""The call page's timeline: speech per role, silences, overlaps, hits, speech with no transcript and
sound the VAD did not take for speech.

Pure functions over stored rows (times on the call clock). Lanes are drawn
as SVG by the template; spans here are plain ``(start_s, end_s)`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.spans import Span, intersect, subtract, union

#: Shorter pieces of untranscribed speech are VAD padding, not missing text.
MIN_UNTRANSCRIBED_S = 0.5
#: Shorter overlaps are normal turn-taking.
MIN_OVERLAP_S = 0.2
#: Gaps with nobody speaking at least this long are drawn as silences.
MIN_SILENCE_S = 2.0


@dataclass(frozen=True)
class Lane:
    """One role's row: where it speaks, where it has a transcript, where speech has none."""

    role: str
    speech: tuple[Span, ...]
    transcribed: tuple[Span, ...]
    untranscribed: tuple[Span, ...]
    #: sound the VAD did not take for speech, with no text (``vad_missed`` gaps): listen for a voice
    unheard: tuple[Span, ...] = ()

    @property
    def untranscribed_s(self) -> float:
        return sum(b - a for a, b in (*self.untranscribed, *self.unheard))


@dataclass(frozen=True)
class HitMark:
    """A hit on the timeline: its row (hits that overlap go to different rows) and whether it spans the call."""

    hit: Mapping[str, Any]
    row: int
    wide: bool


def pack_hits(hits: Iterable[Mapping[str, Any]], duration_s: float, max_rows: int = 4,
              wide_share: float = 0.3) -> list[HitMark]:
    """Give each hit a row so hits in one row do not overlap (greedy, in time order).

    A hit covering more than ``wide_share`` of the call (an absence checked over
    a whole window) is drawn thin so it does not hide the specific ones.
    """
    ends: list[float] = []
    marks = []
    for hit in sorted(hits, key=lambda h: (h["start_s"], h["end_s"])):
        row = next((i for i, end in enumerate(ends) if end <= hit["start_s"]), None)
        if row is None:
            row = len(ends) if len(ends) < max_rows else min(range(len(ends)), key=lambda i: ends[i])
            if row == len(ends):
                ends.append(0.0)
        # a marker is at least ~1 % of the call wide on screen: keep that room free in its row
        ends[row] = max(hit["end_s"], hit["start_s"] + 0.01 * duration_s)
        wide = duration_s > 0 and (hit["end_s"] - hit["start_s"]) > wide_share * duration_s
        marks.append(HitMark(hit, row, wide))
    return marks


@dataclass(frozen=True)
class Timeline:
    """Everything the timeline draws for one call."""

    duration_s: float
    lanes: tuple[Lane, ...]
    silences: tuple[Span, ...]
    overlaps: tuple[Span, ...]
    hits: tuple[HitMark, ...]

    @property
    def hit_rows(self) -> int:
        return 1 + max((mark.row for mark in self.hits), default=0)

    def percent(self, seconds: float) -> float:
        """A call-clock time as a percentage of the call (for drawing)."""
        return 0.0 if self.duration_s <= 0 else max(0.0, min(100.0, 100.0 * seconds / self.duration_s))


def build_timeline(duration_s: float, roles: Iterable[str], segments: Iterable[Mapping[str, Any]],
                   utterances: Iterable[Mapping[str, Any]], hits: Iterable[Mapping[str, Any]],
                   min_silence_s: float = MIN_SILENCE_S, gaps: Iterable[Mapping[str, Any]] = ()) -> Timeline:
    """Lay out one call's timeline.

    Args:
        duration_s: the call's length.
        roles: the call's channel roles (agent/customer, or mixed).
        segments: VAD speech rows (role, start_s, end_s).
        utterances: transcript rows (role, start_s, end_s).
        hits: hit rows (start_s, end_s, severity, ...), passed through.
        min_silence_s: shortest gap with nobody speaking that is drawn.
        gaps: stored gap rows (role, start_s, end_s, reason); the ``vad_missed`` ones are drawn
            as sound without speech (the others are the speech without text drawn anyway).

    Returns:
        The timeline: per-role lanes, silences and (stereo only) overlaps.
    """
    segments, utterances, gaps = list(segments), list(utterances), list(gaps)
    roles = list(dict.fromkeys([*roles, *(s["role"] for s in segments), *(u["role"] for u in utterances)]))
    lanes = []
    for role in roles:
        speech = union((s["start_s"], s["end_s"]) for s in segments if s["role"] == role)
        text = union((u["start_s"], u["end_s"]) for u in utterances if u["role"] == role)
        missing = [(a, b) for a, b in subtract(speech, text) if b - a >= MIN_UNTRANSCRIBED_S]
        unheard = union((g["start_s"], g["end_s"]) for g in gaps if g["role"] == role and g["reason"] == "vad_missed")
        lanes.append(Lane(role, tuple(speech), tuple(text), tuple(missing), tuple(unheard)))
    anyone = union(span for lane in lanes for span in (*lane.speech, *lane.transcribed))
    silences = [(a, b) for a, b in subtract([(0.0, max(duration_s, 0.0))], anyone) if b - a >= min_silence_s]
    by_role = {lane.role: union((*lane.speech, *lane.transcribed)) for lane in lanes}
    overlaps: list[Span] = []
    if "agent" in by_role and "customer" in by_role:
        overlaps = [(a, b) for a, b in intersect(by_role["agent"], by_role["customer"]) if b - a >= MIN_OVERLAP_S]
    return Timeline(duration_s, tuple(lanes), tuple(silences), tuple(overlaps), tuple(pack_hits(hits, duration_s)))


__all__ = ["HitMark", "Lane", "Timeline", "build_timeline", "pack_hits"]
