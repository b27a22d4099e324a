"""Pinyin matching tuned to what Whisper mishears on 8 kHz Mandarin telephone speech.

Two levels, both on toneless pinyin (tones are the first thing narrow-band ASR gets wrong):

* **sound-alike** (:func:`sound_class`): each toneless syllable reduced to a confusion class,
  so what Whisper base confuses on telephone speech compares equal. Measured with
  ``scripts/bench/asr_confusions.py`` (real clips and the spoken benchmark's dev lines, see
  ``docs/redlines.md``): toneless homophones are the largest group (87 of 303 substituted
  characters), then the palatals j/q/x (x->j 6, q->x 2), front/back nasal finals
  (in<->ing 4, ong->eng 2), 您 heard as 你 (nin->ni 5) and n/l (3: 聋 heard as 能 and 农;
  merged in analysis 2026.11.8, no new hit on COLD's clean texts or CrossWOZ). The retroflex
  merges (zh/z 1, ch/c 0, sh/s 0) were almost never seen and are left out: merging sh/s makes
  "你去十七孔桥" sound like "你去死". A sound-alike of a fuzzy phrase is a hit
  (``match_type`` ``fuzzy``) with reduced confidence.
* **near** (:class:`NearIndex`): one syllable of a phrase of at least
  :data:`NEAR_MIN_SYLLABLES` heard as anything ("神经病" heard as "前经病"), or its first
  syllable dropped ("你给我滚" as "给我滚"). Too loose to be a hit on its own: a near
  match is a *candidate* for the targeted second look (:mod:`pipeline.text.second_look`),
  which re-decodes the audio and keeps it only if the second decoding confirms the phrase.

Everything here is pure; syllables are memoised in a dict the caller owns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pypinyin import Style, lazy_pinyin

#: Initials merged into one class (the palatals, and n/l; see the module docstring for the counts).
INITIAL_CLASSES = {"q": "j", "x": "j", "n": "l"}
#: Finals merged into one class (front and back nasals).
FINAL_CLASSES = {"ing": "in", "eng": "en", "ong": "en"}
#: Whole syllables merged (您 heard as 你).
SYLLABLE_CLASSES = {"nin": "ni"}
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z",
             "c", "s", "y", "w")
#: A fuzzy rule's phrase (or a run of literals in its regex) needs this many characters before a
#: sound-alike of it is a hit.
FUZZY_MIN_CHARS = 3
#: A phrase needs this many syllables before a near match (one syllable wrong or dropped) counts.
NEAR_MIN_SYLLABLES = 3


def syllables(text: str, cache: dict[str, str]) -> list[str]:
    """Toneless pinyin per character (first reading), memoised in ``cache``; other characters as-is."""
    out = []
    for ch in text:
        syl = cache.get(ch)
        if syl is None:
            syl = lazy_pinyin(ch, style=Style.NORMAL)[0] if ch.strip() else ch
            cache[ch] = syl
        out.append(syl)
    return out


def split_syllable(syllable: str) -> tuple[str, str]:
    """(initial, final) of a toneless syllable; ("", syllable) when it has no initial."""
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            return initial, syllable[len(initial):]
    return "", syllable


def sound_class(syllable: str) -> str:
    """The confusion class of one toneless syllable (see the module docstring)."""
    syllable = SYLLABLE_CLASSES.get(syllable, syllable)
    initial, final = split_syllable(syllable)
    return INITIAL_CLASSES.get(initial, initial) + FINAL_CLASSES.get(final, final)


def sound_keys(text: str, cache: dict[str, str]) -> list[str]:
    """The confusion class of every character of ``text``."""
    return [sound_class(s) for s in syllables(text, cache)]


def other_a_not_a(phrase: str, heard: str, cache: dict[str, str]) -> bool:
    """Whether ``heard`` asks another A-not-A question than ``phrase`` ("您等不等" for "你懂不懂").

    Where the phrase holds an A-not-A question (X不X), its sound-alike must say the same
    syllable X (a toneless homophone: "你反不反" for "你烦不烦"): the same confusion class
    is not enough, because the merged finals make 等不等 ("will you wait?") sound like
    懂不懂 ("don't you get it?"), a different and ordinary question.
    """
    said, got = syllables(phrase, cache), syllables(heard, cache)
    for i in range(len(phrase) - 2):
        if phrase[i + 1] == "不" and phrase[i] == phrase[i + 2] and i + 2 < len(got):
            if got[i] != said[i] or got[i + 2] != said[i]:
                return True
    return False


def joined_key(classes: list[str]) -> str:
    """Classes joined for the Aho-Corasick automaton ("|" after each, so keys align to syllables)."""
    return "".join(c + "|" for c in classes)


@dataclass(frozen=True)
class Near:
    """A near match: ``text[start:end]`` may be ``phrase`` misheard (one syllable off, or its first dropped)."""

    phrase: str
    start: int
    end: int
    how: str  # "substituted:<i>" or "first_dropped"


@dataclass
class NearIndex:
    """Phrases indexed for near matching: every key with one syllable masked, and without the first."""

    masked: dict[tuple[str | None, ...], list[str]] = field(default_factory=dict)
    dropped: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    lengths: set[int] = field(default_factory=set)

    def add(self, phrase: str, classes: list[str]) -> None:
        """Index ``phrase`` (its sound classes) if it is long enough."""
        n = len(classes)
        if n < NEAR_MIN_SYLLABLES:
            return
        for i in range(n):
            key = tuple(c if j != i else None for j, c in enumerate(classes))
            self.masked.setdefault(key, []).append(phrase)
        self.lengths.update((n, n - 1))
        if n > NEAR_MIN_SYLLABLES:
            self.dropped.setdefault(tuple(classes[1:]), []).append(phrase)

    def find(self, classes: list[str]) -> Iterator[Near]:
        """Every near match in a text given as its sound classes."""
        for start in range(len(classes)):
            for n in self.lengths:
                window = classes[start:start + n]
                if len(window) < n:
                    continue
                for i in range(n):
                    for phrase in self.masked.get(tuple(c if j != i else None for j, c in enumerate(window)), ()):
                        if len(phrase) == n:
                            yield Near(phrase, start, start + n, f"substituted:{i}")
                for phrase in self.dropped.get(tuple(window), ()):
                    yield Near(phrase, start, start + n, "first_dropped")


#: The image of every character that is not Chinese (the last Private Use Area character).
OTHER_IMAGE = "\uf8ff"


@dataclass
class SoundAlike:
    """One private-use character per sound class: the *image* a fuzzy rule's regex is matched on.

    A fuzzy rule's phrases are matched on sound classes directly. A regex cannot be, so it
    is compiled in paired form (:func:`pipeline.text.patterns.compile_sound_alike`) and
    matched on :meth:`paired` text, where each character is preceded by its image: a run of
    3 or more literals of the regex ("去别家") then matches any characters that sound alike
    ("去别加", both ``jia``), and everything else keeps its exact meaning.
    """

    codes: dict[str, str] = field(default_factory=dict)
    cache: dict[str, str] = field(default_factory=dict)

    def image(self, ch: str) -> str:
        """The image of one character: its sound class's code if it is Chinese, else one code for all others."""
        if not "\u3400" <= ch <= "\u9fff":
            return OTHER_IMAGE
        cls = sound_class(syllables(ch, self.cache)[0])
        code = self.codes.get(cls)
        if code is None:
            code = self.codes[cls] = chr(0xE000 + len(self.codes))  # the Private Use Area: never in a text
        return code

    def paired(self, text: str) -> str:
        """``image(c) + c`` for every character of ``text`` (a match's offsets halve to the text's)."""
        return "".join(self.image(ch) + ch for ch in text)


__all__ = ["FINAL_CLASSES", "FUZZY_MIN_CHARS", "INITIAL_CLASSES", "NEAR_MIN_SYLLABLES", "SYLLABLE_CLASSES", "Near",
           "NearIndex", "SoundAlike", "joined_key", "sound_class", "sound_keys", "split_syllable", "syllables"]
