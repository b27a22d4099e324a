"""Text normalisation and segmentation for the text detectors.

:class:`Normaliser` turns an utterance into its matching form
(:func:`pipeline.chinese.matching_form`) and keeps, for every character, the index of the ASR word it came from, so a
match maps back to word timings. ``Segmenter`` wraps an isolated
``jieba.Tokenizer`` (never the global one) with every lexicon phrase as a user
word; build it once and pass it in.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import jieba

from pipeline.chinese import fold, is_kept, matching_form
from pipeline.paths import cache_root
from pipeline.records import Utterance


@dataclass(frozen=True)
class NormText:
    """A normalised utterance: ``text`` plus, per character, its word index and time span."""

    text: str
    char_start_s: tuple[float, ...]
    char_end_s: tuple[float, ...]
    char_prob: tuple[float, ...]


class Normaliser:
    """Normalise utterances for matching, keeping each character's time (the form of :mod:`pipeline.chinese`)."""

    def text(self, text: str) -> str:
        """Normalised matching form of ``text`` (may be shorter than the input)."""
        return matching_form(text)

    def utterance(self, utt: Utterance) -> NormText:
        """Normalise an utterance, mapping each character to the time of its word.

        Without word timestamps the utterance span is shared evenly over the characters.
        """
        chars: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        probs: list[float] = []
        if utt.words:
            # Convert the words as one text (OpenCC converts some phrases across word
            # boundaries), then cut it back into the words by their lengths.
            pieces = [unicodedata.normalize("NFKC", w.text) for w in utt.words]
            joined = "".join(pieces)
            converted = fold(joined)
            if len(converted) != len(joined):  # rare: a conversion changed the length
                pieces = [matching_form(w.text) for w in utt.words]
                converted = "".join(pieces)
            pos = 0
            for word, piece in zip(utt.words, pieces, strict=True):
                for ch in converted[pos:pos + len(piece)]:
                    if is_kept(ch):
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


class Segmenter:
    """An isolated jieba tokenizer with user words; build once, reuse for every call."""

    def __init__(self, user_words: set[str] | frozenset[str] = frozenset()) -> None:
        self._tok = jieba.Tokenizer()
        # jieba writes its dictionary cache to tempfile.gettempdir() by default, where
        # concurrent processes race; keep it in our own per-user cache directory.
        cache = cache_root()
        cache.mkdir(parents=True, exist_ok=True)
        self._tok.tmp_dir = str(cache)
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
