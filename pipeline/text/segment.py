"""Text normalisation and segmentation for the text detectors.

:class:`Normaliser` turns an utterance into its matching form
(:func:`pipeline.chinese.matching_form`) and keeps, for every character, the time and
probability of the ASR word it came from, so a match maps back to word timings, and where
punctuation stood (:attr:`NormText.breaks`: ASR punctuation is a token boundary even though
it is not part of the matching form). Whisper writes a spoken number as digits as often as
in characters ("你个十三点" as "你个13点", "二百五" as "251"), and QA phrases are written in
characters, so :func:`read_numbers` reads short numbers out as Chinese numerals in the matching
form. :func:`collapse_repeats` folds stuttered or ASR-doubled characters ("喂喂", "你你去死").
``Segmenter`` wraps an isolated ``jieba.Tokenizer`` (never the global one) with every lexicon
phrase as a user word; build it once and pass it in.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import jieba

from pipeline.chinese import fold, is_kept, matching_form
from pipeline.paths import cache_root
from pipeline.records import Utterance


@dataclass(frozen=True)
class NormText:
    """A normalised utterance: ``text`` plus, per character, its time span and word probability.

    ``breaks`` holds the offsets into ``text`` where punctuation or a space was removed
    (or where two utterances of one turn meet): token boundaries that the matching form
    no longer shows.
    """

    text: str
    char_start_s: tuple[float, ...]
    char_end_s: tuple[float, ...]
    char_prob: tuple[float, ...]
    breaks: frozenset[int] = field(default_factory=frozenset)


#: Longest run of digits read out as a number ("13" -> "十三"); longer runs are order, card and phone
#: numbers (masked as PII, or left as digits).
MAX_NUMBER_DIGITS = 4
_DIGITS = re.compile(r"[0-9]+")
_LATIN = re.compile(r"[a-z]")
_DIGIT_NAMES = "零一二三四五六七八九"


def number_reading(digits: str) -> str:
    """How a run of ASCII digits is read in the matching form: as a number ("13" -> "十三", "250" ->
    "二百五十", cn2an's reading), digit by digit when it starts with 0 ("07" -> "零七"), unchanged when
    longer than :data:`MAX_NUMBER_DIGITS`."""
    if len(digits) > MAX_NUMBER_DIGITS:
        return digits
    if digits.startswith("0") and len(digits) > 1:
        return "".join(_DIGIT_NAMES[int(d)] for d in digits)
    import cn2an  # only when a transcript holds digits (its import takes 0.1 s)

    return str(cn2an.an2cn(digits, "low"))


def read_numbers(norm: NormText) -> NormText:
    """``norm`` with every short run of digits read out as Chinese numerals (:func:`number_reading`).

    A run ends where punctuation stood ("13.5" is "13" and "5"); a run next to a Latin letter is a model
    or product name ("iphone15", "5g") and stays digits. The characters of a reading share the
    time of the digits they replace (from the first digit's start to the last one's end) and the lowest
    probability among them; breaks after a run move with it.
    """
    text = norm.text
    if not any("0" <= ch <= "9" for ch in text):
        return norm
    edges = sorted({0, len(text), *norm.breaks})
    runs = {m.start(): m for lo, hi in itertools.pairwise(edges) for m in _DIGITS.finditer(text, lo, hi)
            if not (_LATIN.match(text[m.start() - 1:m.start()]) or _LATIN.match(text[m.end():]))}
    chars: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    probs: list[float] = []
    moved: dict[int, int] = {}  # offset in norm.text -> offset in the new text (for the breaks)
    k = 0
    while k < len(text):
        moved[k] = len(chars)
        run = runs.get(k)
        last = run.end() - 1 if run else k
        reading = number_reading(run.group()) if run else text[k]
        chars.extend(reading)
        starts.extend([norm.char_start_s[k]] * len(reading))
        ends.extend([norm.char_end_s[last]] * len(reading))
        probs.extend([min(norm.char_prob[k:last + 1])] * len(reading))
        k = last + 1
    moved[len(text)] = len(chars)
    return NormText("".join(chars), tuple(starts), tuple(ends), tuple(probs),
                    _inner({moved[b] for b in norm.breaks}, len(chars)))


class Normaliser:
    """Normalise utterances for matching, keeping each character's time (the form of :mod:`pipeline.chinese`,
    with short numbers read out: :func:`read_numbers`)."""

    def text(self, text: str) -> str:
        """Normalised matching form of ``text`` (may be shorter than the input), numbers read out."""
        if not any(ch.isdigit() for ch in text):
            return matching_form(text)
        norm, breaks = _form_and_breaks(text)
        n = len(norm)
        return read_numbers(NormText(norm, (0.0,) * n, (0.0,) * n, (1.0,) * n, breaks)).text

    def utterance(self, utt: Utterance) -> NormText:
        """Normalise an utterance, mapping each character to the time of its word.

        Without word timestamps the utterance span is shared evenly over the characters.
        """
        chars: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        probs: list[float] = []
        breaks: set[int] = set()
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
                    else:
                        breaks.add(len(chars))
                pos += len(piece)
            return read_numbers(NormText("".join(chars), tuple(starts), tuple(ends), tuple(probs),
                                         _inner(breaks, len(chars))))
        norm, breaks = _form_and_breaks(utt.text)
        n = max(len(norm), 1)
        step = (utt.end_s - utt.start_s) / n
        return read_numbers(NormText(
            norm,
            tuple(utt.start_s + i * step for i in range(len(norm))),
            tuple(min(utt.end_s, utt.start_s + (i + 1) * step) for i in range(len(norm))),
            tuple([1.0] * len(norm)),
            breaks,
        ))


def _inner(breaks: set[int], length: int) -> frozenset[int]:
    return frozenset(b for b in breaks if 0 < b < length)


def _form_and_breaks(text: str) -> tuple[str, frozenset[int]]:
    """The matching form of ``text`` and the offsets where characters were removed from it."""
    chars: list[str] = []
    breaks: set[int] = set()
    for ch in fold(unicodedata.normalize("NFKC", text)):
        if is_kept(ch):
            chars.append(ch)
        else:
            breaks.add(len(chars))
    return "".join(chars), _inner(breaks, len(chars))


def collapse_repeats(norm: NormText, is_word: Callable[[str], bool]) -> tuple[NormText, tuple[int, ...]]:
    """Fold runs of one repeated character: to two when the doubled form is a word, else to one.

    "喂喂" and "你你去死" (a stutter, or Whisper doubling a syllable) become "喂" and "你去死";
    "妈妈", "谢谢" and "刚刚" stay. The last kept character of a run lasts until the run ends;
    breaks inside a run are dropped (the run is one token now).

    Returns:
        The folded text and, per kept character, its offset in ``norm.text``.
    """
    text = norm.text
    chars: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    probs: list[float] = []
    breaks: set[int] = set()
    kept: list[int] = []
    i = 0
    while i < len(text):
        j = i
        while j + 1 < len(text) and text[j + 1] == text[i]:
            j += 1
        if i in norm.breaks:
            breaks.add(len(chars))
        count = 1 if j == i or not is_word(text[i] * 2) else 2
        for k in range(i, i + count):
            kept.append(k)
            chars.append(text[k])
            starts.append(norm.char_start_s[k])
            ends.append(norm.char_end_s[j if k == i + count - 1 else k])
            probs.append(min(norm.char_prob[k:j + 1]) if k == i + count - 1 else norm.char_prob[k])
        i = j + 1
    if len(chars) == len(text):
        return norm, tuple(kept)
    return NormText("".join(chars), tuple(starts), tuple(ends), tuple(probs), _inner(breaks, len(chars))), tuple(kept)


class Segmenter:
    """An isolated jieba tokenizer with user words; build once, reuse for every call.

    Every lexicon phrase is a user word, so jieba keeps it whole; but a longer phrase then
    hides a shorter one of another rule inside it ("你怎么不讲道理啊" would hide
    "你怎么不讲道理"). So inside a user-word token, the boundaries jieba's own dictionary
    sees there (without the user words) count as well (:meth:`boundaries`).
    """

    def __init__(self, user_words: set[str] | frozenset[str] = frozenset(), rare_word_max_freq: int = 0) -> None:
        self._rare_max = rare_word_max_freq
        self._tok = jieba.Tokenizer()
        # jieba writes its dictionary cache to tempfile.gettempdir() by default, where
        # concurrent processes race; keep it in our own per-user cache directory.
        cache = cache_root()
        cache.mkdir(parents=True, exist_ok=True)
        self._tok.tmp_dir = str(cache)
        self._tok.cache_file = "jieba.callqa.cache"
        jieba.setLogLevel(60)
        self._tok.initialize()
        words = sorted(w for w in user_words if len(w) >= 2)
        self._inner: dict[str, tuple[int, ...]] = {}
        for word in words:
            inner = self._cut_offsets(word)[1:-1]
            if inner:
                self._inner[word] = inner
        for word in words:
            self._tok.add_word(word)
        self._user = frozenset(words)

    def _cut_offsets(self, text: str) -> tuple[int, ...]:
        offsets = [0]
        for token in self._tok.cut(text, HMM=False):
            offsets.append(offsets[-1] + len(token))
        return tuple(offsets)

    def cut(self, text: str) -> list[str]:
        """Tokens of ``text`` (no HMM, deterministic)."""
        return list(self._tok.cut(text, HMM=False))

    def boundaries(self, text: str) -> set[int]:
        """Character offsets where a token starts or ends (including 0 and ``len(text)``).

        Inside a token that is a user word, the offsets where jieba's dictionary alone
        would cut it are boundaries too (see the class docstring); so are the edges of a
        user word inside a rare dictionary word of 3+ characters (frequency at most
        ``rare_word_max_freq``): jieba's dictionary holds chance compounds such as
        "真不知道" or "发神经病" that would otherwise hide a phrase.
        """
        out = {0}
        pos = 0
        for token in self._tok.cut(text, HMM=False):
            out.update(pos + inner for inner in self._inner.get(token, ()))
            if (len(token) >= 3 and token not in self._user
                    and 0 < int(self._tok.FREQ.get(token, 0) or 0) <= self._rare_max):
                out.update(pos + edge for edge in self._user_word_edges(token))
            pos += len(token)
            out.add(pos)
        return out

    def _user_word_edges(self, token: str) -> set[int]:
        edges: set[int] = set()
        for word in self._user:
            if len(word) < len(token):
                at = token.find(word)
                while at >= 0:
                    edges.update((at, at + len(word)))
                    at = token.find(word, at + 1)
        return edges

    def word_freq(self, word: str) -> int:
        """jieba's dictionary frequency of ``word`` (0 if absent); used by the fuzzy guard."""
        return int(self._tok.FREQ.get(word, 0) or 0)
