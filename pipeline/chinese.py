"""Chinese text normalisation shared by the ASR guard, the text rules and the timing detectors.

Whisper writes Simplified or Traditional characters, full- or half-width
punctuation, and spaces where it likes; QA phrases are written by people. Two
texts are compared in their *matching form*: NFKC (full width to half width),
Traditional to Simplified (OpenCC ``t2s``), 妳 to 你, lower case, and nothing
but letters, digits and marks (punctuation, symbols, spaces and control
characters removed). One function owns that form so every stage compares text
the same way.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache

#: Unicode category initials removed from the matching form: punctuation,
#: separators (spaces), symbols and control characters.
_DROPPED_CATEGORIES = frozenset("PZSC")


@lru_cache(maxsize=1)
def _t2s() -> Callable[[str], str]:
    import opencc

    return opencc.OpenCC("t2s").convert


def to_simplified(text: str) -> str:
    """Traditional -> Simplified Chinese (OpenCC ``t2s``); other characters unchanged."""
    return _t2s()(text)


@lru_cache(maxsize=16384)  # called per character of every utterance; few distinct characters
def is_kept(char: str) -> bool:
    """Whether ``char`` survives into the matching form (not punctuation, space, symbol or control)."""
    return unicodedata.category(char)[0] not in _DROPPED_CATEGORIES


def fold(text: str) -> str:
    """NFKC, Simplified, 妳 -> 你 and lower case, keeping every character (same length in practice)."""
    return to_simplified(unicodedata.normalize("NFKC", text)).replace("妳", "你").lower()


def matching_form(text: str) -> str:
    """The form two texts are compared in (see the module docstring)."""
    return "".join(ch for ch in fold(text) if is_kept(ch))


def count_chars(text: str) -> int:
    """Characters that are spoken content: CJK ideographs, letters and digits.

    Punctuation and spaces are not counted, so Whisper's punctuation never
    changes a rate.
    """
    return sum(1 for ch in text if ch.isalnum())


__all__ = ["count_chars", "fold", "is_kept", "matching_form", "to_simplified"]
