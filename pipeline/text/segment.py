"""Text normalisation and segmentation for the text detectors.

``normalise`` turns an utterance into a matching string (Traditional to
Simplified, full-width to half-width, lower case, no punctuation or spaces)
and keeps, for every character, the index of the ASR word it came from, so a
match maps back to word timings. ``Segmenter`` wraps an isolated
``jieba.Tokenizer`` (never the global one) with every lexicon phrase as a user
word; build it once and pass it in.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jieba
import opencc

from pipeline.records import Utterance


@dataclass(frozen=True)
class NormText:
    """A normalised utterance: ``text`` plus, per character, its word index and time span."""

    text: str
    char_start_s: tuple[float, ...]
    char_end_s: tuple[float, ...]
    char_prob: tuple[float, ...]


@lru_cache(maxsize=16384)  # called per character of every utterance; few distinct characters
def _keep(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return not (cat.startswith("P") or cat.startswith("Z") or cat.startswith("C") or cat.startswith("S"))


class Normaliser:
    """Normalise text; holds the OpenCC converter (build once)."""

    def __init__(self) -> None:
        self._t2s = opencc.OpenCC("t2s")

    def text(self, text: str) -> str:
        """Normalised matching form of ``text`` (may be shorter than the input)."""
        text = unicodedata.normalize("NFKC", text)
        text = self._t2s.convert(text).replace("妳", "你")
        return "".join(ch for ch in text.lower() if _keep(ch))

    def utterance(self, utt: Utterance) -> NormText:
        """Normalise an utterance, mapping each character to the time of its word.

        Without word timestamps the utterance span is shared evenly over the characters.
        """
        chars: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        probs: list[float] = []
        if utt.words:
            pieces = [unicodedata.normalize("NFKC", w.text) for w in utt.words]
            joined = "".join(pieces)
            converted = self._t2s.convert(joined).replace("妳", "你").lower()
            if len(converted) != len(joined):  # rare: a conversion changed the length
                pieces = [self.text(w.text) for w in utt.words]
                converted = "".join(pieces)
            pos = 0
            for word, piece in zip(utt.words, pieces, strict=True):
                for ch in converted[pos:pos + len(piece)]:
                    if _keep(ch):
                        chars.append(ch)
                        starts.append(word.start_s)
                        ends.append(word.end_s)
                        probs.append(word.probability)
                pos += len(piece)
            return NormText("".join(chars), tuple(starts), tuple(ends), tuple(probs))
        norm = self.text(utt.text)
        n = max(len(norm), 1)
        step = (utt.end_s - utt.start_s) / n
        return NormText(
            norm,
            tuple(utt.start_s + i * step for i in range(len(norm))),
            tuple(min(utt.end_s, utt.start_s + (i + 1) * step) for i in range(len(norm))),
            tuple([1.0] * len(norm)),
        )


def cache_dir() -> Path:
    """callqa's private cache directory (``$CALLQA_CACHE`` or ``~/.cache/callqa``)."""
    path = Path(os.environ.get("CALLQA_CACHE") or Path.home() / ".cache" / "callqa")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Segmenter:
    """An isolated jieba tokenizer with user words; build once, reuse for every call."""

    def __init__(self, user_words: set[str] | frozenset[str] = frozenset()) -> None:
        self._tok = jieba.Tokenizer()
        # jieba writes its dictionary cache to tempfile.gettempdir() by default, where
        # concurrent processes race; keep it in our own per-user cache directory.
        self._tok.tmp_dir = str(cache_dir())
        self._tok.cache_file = "jieba.callqa.cache"
        jieba.setLogLevel(60)
        self._tok.initialize()
        for word in sorted(user_words):
            if len(word) >= 2:
                self._tok.add_word(word)

    def cut(self, text: str) -> list[str]:
        """Tokens of ``text`` (no HMM, deterministic)."""
        return list(self._tok.cut(text, HMM=False))

    def boundaries(self, text: str) -> set[int]:
        """Character offsets where a token starts or ends (including 0 and ``len(text)``)."""
        out = {0}
        pos = 0
        for token in self._tok.cut(text, HMM=False):
            pos += len(token)
            out.add(pos)
        return out

    def word_freq(self, word: str) -> int:
        """jieba's dictionary frequency of ``word`` (0 if absent); used by the fuzzy guard."""
        return int(self._tok.FREQ.get(word, 0) or 0)
