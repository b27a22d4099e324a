"""How far a word reaches: out to the edges of the speech it was heard in.

faster-whisper times words from the decoder's attention and then trims them:
a word after a pause or at a sentence end that lasts longer than twice the
window's median word is cut to that length ("hack: truncate long words at
sentence boundaries ... a better segmentation algorithm based on VAD should be
able to replace this", ``faster_whisper/transcribe.py``). A drawn-out "这个…"
at the end of a turn then ends half a second before the voice does, and the
first word after a pause starts late. Counted as given, speech at the edges of
each VAD segment looks as if it had no text: on 6 built stress calls 11.8 s of
the customers' reference speech had no word within 0.25 s, most of it such
edges.

:func:`snap_to_speech` gives coverage (:mod:`pipeline.asr.coverage`) what that
comment asks, with the VAD segments the words were decoded from: in each
segment the first trusted word reaches back to the segment's start and the
last one on to its end, as far as the word can plausibly last (``CHAR_MAX_S``
a character), never over a neighbouring word, and not towards distrusted
text. Speech beyond that reach stays uncovered, so a word Whisper never wrote
still shows as a gap. The stored transcript keeps Whisper's times: the text
detectors (turns, hit times, the second look) were measured on those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from pipeline.chinese import count_chars
from pipeline.records import SpeechSegment, Utterance, Word

#: Longest time one spoken character is taken to last: a syllable lasts 0.2-0.3 s, a drawn-out
#: filler ("这个…") up to about 0.5 s. Whisper sometimes stretches the one word it heard over
#: seconds of speech it did not ("伯" from 71.0 to 73.9 s); such a word covers no more than this.
CHAR_MAX_S = 0.5


def longest_s(text: str) -> float:
    """The longest ``text`` is taken to last when spoken (``CHAR_MAX_S`` a character, one at least)."""
    return CHAR_MAX_S * max(1, count_chars(text))


def snap_to_speech(utterances: Sequence[Utterance], segments: Iterable[SpeechSegment]) -> list[Utterance]:
    """The utterances with the edge words of each speech segment moved out to its edges.

    Args:
        utterances: one call's utterances, any roles, on the call clock.
        segments: the VAD segments they were decoded from.

    Returns:
        The utterances in the same order. In each segment, the trusted word that
        starts first (by its middle inside the segment) starts at the segment's
        start, and the one that ends last ends at its end, each no further than
        :func:`longest_s` of its text from its other edge and no further than
        the role's previous or next word. An utterance's start and end follow
        its words. Suspect utterances and word-less ones are left as they are,
        and no edge reaches over a suspect utterance.
    """
    blocked = [(u.role, u.start_s, u.end_s) for u in utterances if u.suspect]
    words: dict[str, list[tuple[int, int, Word]]] = {}
    for ui, u in enumerate(utterances):
        if not u.suspect:
            for wi, w in enumerate(u.words):
                words.setdefault(u.role, []).append((ui, wi, w))
    moved: dict[tuple[int, int], Word] = {}
    for role, found in words.items():
        found.sort(key=lambda item: (item[2].start_s, item[2].end_s))

        def now(i: int, found: list[tuple[int, int, Word]] = found) -> Word:
            """Word ``i`` as moved so far."""
            return moved.get(found[i][:2], found[i][2])

        for segment in (s for s in segments if s.role == role):
            inside = [i for i, (_, _, w) in enumerate(found)
                      if segment.start_s <= (w.start_s + w.end_s) / 2 <= segment.end_s]
            if not inside:
                continue
            first, last = inside[0], max(inside, key=lambda i: found[i][2].end_s)
            word = now(first)
            floor = max(segment.start_s, word.end_s - longest_s(word.text),
                        max((now(i).end_s for i in range(first)), default=0.0))
            if floor < word.start_s and not _reported(blocked, role, segment.start_s, word.start_s):
                moved[found[first][:2]] = replace(word, start_s=floor)
            word = now(last)
            later = [now(i).start_s for i in range(len(found)) if i != last and now(i).start_s >= word.end_s]
            ceiling = min(segment.end_s, word.start_s + longest_s(word.text), min(later, default=segment.end_s))
            if ceiling > word.end_s and not _reported(blocked, role, word.end_s, segment.end_s):
                moved[found[last][:2]] = replace(word, end_s=ceiling)
    if not moved:
        return list(utterances)
    result = []
    for ui, u in enumerate(utterances):
        if not any((ui, wi) in moved for wi in range(len(u.words))):
            result.append(u)
            continue
        new = tuple(moved.get((ui, wi), w) for wi, w in enumerate(u.words))
        result.append(replace(u, words=new, start_s=min(u.start_s, new[0].start_s),
                              end_s=max(u.end_s, new[-1].end_s)))
    return result


def _reported(blocked: Sequence[tuple[str, float, float]], role: str, start_s: float, end_s: float) -> bool:
    """Whether a blocked stretch (role, start, end) of ``role`` overlaps ``start_s``-``end_s``."""
    return any(r == role and a < end_s and b > start_s for r, a, b in blocked)


__all__ = ["CHAR_MAX_S", "longest_s", "snap_to_speech"]
