"""Personal data in transcripts: find and mask (DOMAIN.md §8).

Detects Chinese mobile and landline numbers, 18-digit resident ID numbers
(ISO 7064 checksum), bank card numbers (Luhn), e-mail addresses and,
optionally, numbers spoken as Chinese digits ("幺三八…"). Offsets are into the
text as given, so masking keeps the length and therefore every timing map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from pipeline.records import Hit, Utterance

#: Chinese digit characters as ASR writes spoken numbers.
CN_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
             "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGIT_RUN = re.compile(r"\d(?:[\d \-]*\d)?")
_CN_RUN = re.compile(f"[{''.join(CN_DIGITS)}]{{7,}}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RUN = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data: ``text[start:end]`` of kind mobile/landline/id_card/bank_card/email."""

    kind: str
    start: int
    end: int
    text: str


def id_checksum_ok(number: str) -> bool:
    """Whether an 18-character resident ID number has a valid GB 11643 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    """Luhn check (bank cards)."""
    if not number.isdigit() or len(number) < 12:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _classify(digits: str) -> str | None:
    if len(digits) == 11 and re.fullmatch(r"1[3-9]\d{9}", digits):
        return "mobile"
    if 16 <= len(digits) <= 19 and luhn_ok(digits):
        return "bank_card"
    if re.fullmatch(r"0\d{2,3}\d{7,8}", digits) or re.fullmatch(r"[2-8]\d{7}", digits):
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
        if id_checksum_ok(m.group(0)):
            add("id_card", m.start(), m.end())
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ \-]", "", m.group(0))
        kind = _classify(digits)
        if kind:
            add(kind, m.start(), m.end())
    if chinese_digits:
        for m in _CN_RUN.finditer(text):
            digits = "".join(CN_DIGITS[c] for c in m.group(0))
            kind = "id_card" if id_checksum_ok(digits) else _classify(digits)
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


def mask_utterance(utterance: Utterance, pii_config: Any) -> Utterance:
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


def mask_hit(hit: Hit, pii_config: Any) -> Hit:
    """``hit`` with PII masked in its matched text and context (its id is computed from the masked text)."""
    char, digits = pii_config.mask_char, pii_config.chinese_digits
    matched = mask_text(hit.matched_text, find_pii(hit.matched_text, digits), char)
    context = mask_text(hit.context, find_pii(hit.context, digits), char)
    if matched == hit.matched_text and context == hit.context:
        return hit
    return replace(hit, matched_text=matched, context=context)
