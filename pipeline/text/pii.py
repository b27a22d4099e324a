"""Personal data in transcripts: find it, mask it, and say where on the call clock it was spoken.

Detected (DOMAIN.md §8): Chinese mobile and landline numbers (``phonenumbers``;
8-digit local numbers without an area code by pattern), 18-character resident
ID numbers (``python-stdnum``'s ``cn.ric``: check character and birth date),
bank card numbers (16-19 digits passing ``python-stdnum``'s Luhn check), e-mail
addresses and, optionally, numbers spoken as Chinese digits ("幺三八…").

**Not detected**: names, addresses, account passwords and any number said in
words other than digits ("一百三十八"): a transcript can still hold them, so
restrict access to the store accordingly. Offsets are into the text as given,
so masking keeps the length and therefore every timing map.

Masking is one stage of the analysis (:func:`pipeline.analysis.protect_pii`),
before the text detectors, so ``callqa run`` and ``callqa rescore`` match the
same text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric

from pipeline.config import PiiConfig
from pipeline.records import Utterance

#: Chinese digit characters as ASR writes spoken numbers.
CN_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
             "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGIT_RUN = re.compile(r"\d(?:[\d \-]*\d)?")
_CN_RUN = re.compile(f"[{''.join(CN_DIGITS)}]{{7,}}")
_ID_RUN = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
# A local landline number without its area code: phonenumbers cannot validate it.
_LOCAL_LANDLINE = re.compile(r"[2-8]\d{7}")


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data: ``text[start:end]`` of kind mobile/landline/id_card/bank_card/email."""

    kind: str
    start: int
    end: int
    text: str


def id_number_ok(number: str) -> bool:
    """Whether ``number`` is a valid 18-character resident ID (check character and birth date)."""
    return bool(ric.is_valid(number))


def _classify(digits: str) -> str | None:
    if 16 <= len(digits) <= 19 and luhn.is_valid(digits):
        return "bank_card"
    if 7 <= len(digits) <= 12:
        try:
            number = phonenumbers.parse(digits, "CN")
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            kind = phonenumbers.number_type(number)
            if kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
                return "mobile"
            return "landline"
    if _LOCAL_LANDLINE.fullmatch(digits):
        return "landline"
    return None


def find_pii(text: str, chinese_digits: bool = True) -> list[PiiSpan]:
    """All PII spans in ``text``, sorted and non-overlapping.

    Args:
        text: any transcript text (raw or normalised).
        chinese_digits: also read runs of >= 7 Chinese digit characters as numbers.
    """
    spans: list[PiiSpan] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        spans.append(PiiSpan(kind, start, end, text[start:end]))

    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _ID_RUN.finditer(text):
        if id_number_ok(m.group(0)):
            add("id_card", m.start(), m.end())
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ \-]", "", m.group(0))
        kind = _classify(digits)
        if kind:
            add(kind, m.start(), m.end())
    if chinese_digits:
        for m in _CN_RUN.finditer(text):
            digits = "".join(CN_DIGITS[c] for c in m.group(0))
            kind = "id_card" if id_number_ok(digits) else _classify(digits)
            if kind:
                add(kind, m.start(), m.end())
    return sorted(spans, key=lambda s: s.start)


def mask_text(text: str, spans: list[PiiSpan], char: str = "*") -> str:
    """``text`` with every span replaced by ``char`` (same length, so offsets and timings stay valid)."""
    chars = list(text)
    for span in spans:
        for i in range(span.start, min(span.end, len(chars))):
            if not chars[i].isspace():
                chars[i] = char
    return "".join(chars)


@dataclass(frozen=True)
class PiiTime:
    """One piece of personal data in an utterance, on the call clock (stored in ``utterances.pii_spans``)."""

    kind: str
    start_s: float
    end_s: float


def locate_pii(utterance: Utterance, chinese_digits: bool = True, mask_char: str = "") -> list[PiiTime]:
    """Where the personal data of ``utterance`` is spoken.

    Characters map to their word's timing when the utterance has words;
    otherwise the utterance span is shared evenly over its characters. With
    ``mask_char``, runs of at least four of it (text masked earlier) count as
    kind ``masked``.
    """
    if utterance.words:
        text = "".join(w.text for w in utterance.words)
        starts = [w.start_s for w in utterance.words for _ in w.text]
        ends = [w.end_s for w in utterance.words for _ in w.text]
    else:
        text = utterance.text
        step = utterance.duration_s / max(len(text), 1)
        starts = [utterance.start_s + i * step for i in range(len(text))]
        ends = [utterance.start_s + (i + 1) * step for i in range(len(text))]
    found = [(span.kind, span.start, span.end) for span in find_pii(text, chinese_digits)]
    if mask_char:
        found += [("masked", *m.span()) for m in re.finditer(re.escape(mask_char) + "{4,}", text)]
    return [PiiTime(kind, starts[a], ends[b - 1]) for kind, a, b in sorted(found, key=lambda f: f[1])]


def pii_time_spans(utterances: Iterable[Utterance], chinese_digits: bool = True,
                   pad_s: float = 0.1, mask_char: str = "*") -> list[tuple[float, float]]:
    """Call-clock spans (seconds) covering the PII in ``utterances``, padded by ``pad_s``.

    Text the pipeline already masked (runs of at least four ``mask_char``, as
    ``callqa run`` stores with ``[pii] mask = true``) counts as PII too. Give
    the spans to :func:`pipeline.audio.redact.redact_samples` to bleep the audio.
    """
    spans = [(max(0.0, p.start_s - pad_s), p.end_s + pad_s)
             for utt in utterances for p in locate_pii(utt, chinese_digits, mask_char)]
    return sorted(spans)


def mask_utterance(utterance: Utterance, pii_config: PiiConfig) -> Utterance:
    """``utterance`` with PII masked in its text and its words.

    The words are masked as one string (a number is often split over several
    words), then cut back to their own lengths, so every word keeps its timing.
    """
    char, digits = pii_config.mask_char, pii_config.chinese_digits
    spans = find_pii(utterance.text, digits)
    joined = "".join(w.text for w in utterance.words)
    word_spans = find_pii(joined, digits)
    if not spans and not word_spans:
        return utterance
    masked = mask_text(joined, word_spans, char)
    words, at = [], 0
    for word in utterance.words:
        words.append(replace(word, text=masked[at:at + len(word.text)]))
        at += len(word.text)
    return replace(utterance, text=mask_text(utterance.text, spans, char), words=tuple(words))


__all__ = ["CN_DIGITS", "PiiSpan", "PiiTime", "find_pii", "id_number_ok", "locate_pii", "mask_text",
           "mask_utterance", "pii_time_spans"]
