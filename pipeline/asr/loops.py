"""Whisper's decoding loops, cut to their first occurrence.

On noisy or monotonous speech Whisper can fall into a loop: the same phrase
again and again ("首先要注意到上面的箱子" ×7, "页页页页…") until the window
ends. Throwing the whole output away loses the speech it did transcribe before
looping; keeping it puts text in the transcript nobody said. A loop is cut
instead: the first occurrence stays (it is usually what was said), the
repeats go, and the speech they stood on is left uncovered for re-decoding
(:mod:`pipeline.asr.redecode`) or marked as a ``loop`` gap.

A loop is a unit of text repeated at least ``[asr] loop_min_repeats`` times
in a row whose repeats add at least ``[asr] loop_min_tail_chars`` characters,
so a person saying "好的好的" or "对对对" is never cut.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.asr.coverage import DecodeNote
from pipeline.asr.pieces import DecodedSegment, DecodedWord, Piece, map_segment, piece_index, to_call_clock
from pipeline.chinese import matching_form
from pipeline.config import AsrConfig
from pipeline.records import Utterance

#: Longest repeated unit looked for (characters).
MAX_UNIT_CHARS = 40


@dataclass(frozen=True)
class Loop:
    """A repeated run in a character string: ``unit`` from ``start``, ``repeats`` times in a row."""

    start: int
    unit: str
    repeats: int

    @property
    def end(self) -> int:
        """Index just after the last full repeat."""
        return self.start + len(self.unit) * self.repeats

    @property
    def cut(self) -> int:
        """Index just after the first occurrence (where the repeats begin)."""
        return self.start + len(self.unit)


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text`` (Whisper's own repetitiveness measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def find_loop(chars: str, min_repeats: int, min_tail_chars: int) -> Loop | None:
    """The earliest loop in ``chars`` (the shortest unit at that place), or None.

    Args:
        chars: text in its matching form (no punctuation or spaces).
        min_repeats: occurrences in a row that make a loop (first one included).
        min_tail_chars: characters the repeats after the first must add up to.
    """
    n = len(chars)
    for start in range(n):
        for length in range(1, min(MAX_UNIT_CHARS, (n - start) // 2) + 1):
            unit = chars[start:start + length]
            repeats = 1
            while chars.startswith(unit, start + repeats * length):
                repeats += 1
            if repeats >= min_repeats and (repeats - 1) * length >= min_tail_chars:
                return Loop(start, unit, repeats)
    return None


@dataclass(frozen=True)
class CutLoop:
    """A loop cut out of a window's output: the unit, how often, and where the repeats were (decoded time)."""

    unit: str
    repeats: int
    start: float
    end: float


def cut_loops(segments: Sequence[DecodedSegment], min_repeats: int,
              min_tail_chars: int) -> tuple[list[DecodedSegment], list[CutLoop]]:
    """Cut every loop in one window's segments (in order) to its first occurrence.

    Words are matched across segment boundaries (a loop is often the same
    short segment again and again). Segments without word timings are cut
    in their text. Segments left without text are dropped.

    Returns:
        The segments without the repeats, and the loops cut (their times are
        where the repeated words were; the speech under them has no text now).
    """
    words = [(index, word) for index, segment in enumerate(segments) for word in segment.words]
    if not words:
        return _cut_wordless(segments, min_repeats, min_tail_chars)
    chars, owner = [], []
    for position, (_index, word) in enumerate(words):
        for ch in matching_form(word.text):
            chars.append(ch)
            owner.append(position)
    text = "".join(chars)
    dropped: set[int] = set()
    loops: list[CutLoop] = []
    offset = 0
    while (loop := find_loop(text[offset:], min_repeats, min_tail_chars)) is not None:
        first, last = offset + loop.cut, offset + loop.end - 1
        # whole words only: a word holding the end of the first occurrence stays
        keep_until = owner[first - 1]
        gone = [p for p in range(keep_until + 1, owner[last] + 1)]
        dropped.update(gone)
        if gone:
            following = owner[last] + 1
            end = words[following][1].start if following < len(words) else max(
                words[gone[-1]][1].end, segments[words[gone[-1]][0]].end)
            loops.append(CutLoop(loop.unit, loop.repeats, words[gone[0]][1].start, max(end, words[gone[0]][1].start)))
        offset += loop.end
    if not dropped:
        return list(segments), []
    kept_words: dict[int, list[DecodedWord]] = {}
    for position, (index, word) in enumerate(words):
        if position not in dropped:
            kept_words.setdefault(index, []).append(word)
    result = []
    for index, segment in enumerate(segments):
        kept = tuple(kept_words.get(index, ()))
        if not kept:
            continue
        if len(kept) == len(segment.words):
            result.append(segment)
        else:
            new_text = "".join(w.text for w in kept)
            result.append(replace(segment, text=new_text, words=kept, start=kept[0].start, end=kept[-1].end,
                                  compression_ratio=compression_ratio(new_text)))
    return result, loops


def _cut_wordless(segments: Sequence[DecodedSegment], min_repeats: int,
                  min_tail_chars: int) -> tuple[list[DecodedSegment], list[CutLoop]]:
    """:func:`cut_loops` for segments without word timings: cut each segment's own text."""
    result, loops = [], []
    for segment in segments:
        text = matching_form(segment.text)
        loop = find_loop(text, min_repeats, min_tail_chars)
        if loop is None:
            result.append(segment)
            continue
        keep = text[:loop.cut]
        share = loop.cut / max(1, len(text))
        cut_at = segment.start + (segment.end - segment.start) * share
        loops.append(CutLoop(loop.unit, loop.repeats, cut_at, segment.end))
        if keep:
            result.append(replace(segment, text=keep, end=cut_at, compression_ratio=compression_ratio(keep)))
    return result, loops


def clean_and_map(decoded: Sequence[DecodedSegment], pieces: Sequence[Piece], role: str,
                  asr: AsrConfig) -> tuple[list[Utterance], list[DecodeNote]]:
    """Cut loops per window, drop what stays repetitive, and map the rest to the call clock.

    Returns:
        The utterances, and notes (``loop``) for the speech whose text was cut.
    """
    by_window: dict[int, list[DecodedSegment]] = {}
    for segment in decoded:
        by_window.setdefault(segment.window, []).append(segment)
    starts = [p.joined_start_s for p in pieces]
    utterances: list[Utterance] = []
    notes: list[DecodeNote] = []

    def note(start: float, end: float, detail: str) -> None:
        first = pieces[piece_index(pieces, start, starts)]
        last = pieces[piece_index(pieces, max(start, end - 1e-3), starts)]
        for piece in pieces[pieces.index(first):pieces.index(last) + 1]:
            a = to_call_clock(piece, max(start, piece.joined_start_s))
            b = to_call_clock(piece, min(end, piece.joined_end_s))
            notes.append(DecodeNote(piece.role or role, a, max(a, b), "loop", detail))

    for segments in by_window.values():
        kept, loops = cut_loops(segments, asr.loop_min_repeats, asr.loop_min_tail_chars)
        for loop in loops:
            note(loop.start, loop.end, f"Whisper looped ('{loop.unit[:20]}' x{loop.repeats}); "
                                       "cut to its first occurrence")
        for segment in kept:
            if segment.compression_ratio > asr.guard.compression_ratio_max:
                note(segment.start, segment.end, f"repetitive text dropped (compression ratio "
                                                 f"{segment.compression_ratio:.1f})")
                continue
            utterances += map_segment(segment, role, pieces)
    return utterances, notes


__all__ = ["clean_and_map", "CutLoop", "Loop", "compression_ratio", "cut_loops", "find_loop"]
