"""The sound check: would the audio fit a rule's phrase about as well as what Whisper wrote?

Whisper base at 8 kHz writes a spoken phrase as other words often enough that neither the
sound-alike matcher nor a second decoding finds it: "嫌贵你别买啊" heard as "玄棍你别买啊",
"你个十三点" as "你个是三点", "我保证明天就给您解决" without its 我. The second look
(:mod:`pipeline.text.second_look`) asks Whisper to *write* the stretch again; the sound check
asks it to *score* the phrase instead (:class:`pipeline.asr.forced.ForcedScorer`):

1. **Readings** (:func:`candidates`, pure): in every agent utterance, each window whose
   sound classes (:func:`pipeline.text.fuzzy.sound_keys`) are within :func:`edit_budget`
   edits of a checked phrase is replaced by that phrase. A reading is kept only
   when a rule that owns the phrase then fires on the utterance, with every scope, excuse and
   context rule applied as usual, and no hit of that rule is there already. Checked phrases
   are those of the agent's deducting phrase rules (severity fatal or non-fatal) of at least
   :data:`MIN_PHRASE_CHARS` characters, and what each rule matches in its own examples (the
   literal form of a regex rule).
2. **Scoring** (:func:`sound_check`): the utterance's audio is scored against what was written
   and against every reading. The best reading is a hit when all three hold:

   * its **log ratio** (its log probability minus the written text's) is at least
     ``-[text] sound_check_max_drop``: the audio fits the phrase about as well as what was
     written, or better;
   * Whisper gives the phrase's own tokens (those the written text does not share) a geometric
     mean probability of at least ``[text] sound_check_min_phrase_prob``. When Whisper garbled
     the written text too, a wrong reading can beat it ("如果您还有一问" read as
     "如果你还有理了", log ratio +0.7) while Whisper still doubts every token of the phrase;
   * no reading the rules *excuse*, of the same phrase over an overlapping window, fits the audio
     as well: "不知道您是否方便…" heard "我知道您是否方便…" reads both as "我不知道您是否…" (the
     rule fires) and as "不知道您是否…" (the polite question, excused), and the audio, which holds
     no 我, prefers the second.

   The hit has severity ``info``: it takes no points, and a red line heard only this way makes
   the call "needs review" (``[outcome] model_only_redline`` in the scorecard, reason
   ``redline_unconfirmed``), never a fail and never a clean pass; so does a phrase of another
   category no rule hit confirms (reason ``unconfirmed:<category>``). It carries ``match_type``
   ``forced``, the written words' times, ``confidence`` = ``1 / (1 + exp(-log ratio))`` (the
   phrase's share if those were the only two readings) and, in ``detail``, what was written,
   the log ratio and the phrase probability.

The thresholds and the measurements behind them are in ``docs/redlines.md`` ("The sound
check"). It needs the audio, so it runs in ``callqa run`` and never in ``rescore``; at most
``[text] sound_check_max_per_call`` utterances a call are scored, red lines first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.asr.forced import WINDOW_S, ForcedScorer, Scored
from pipeline.config import Config, TextConfig
from pipeline.records import (
    AGENT,
    CUSTOMER,
    MIXED,
    REDLINE_CATEGORIES,
    SAMPLE_RATE_HZ,
    Call,
    CallEvidence,
    Hit,
    Utterance,
)
from pipeline.text.fuzzy import sound_keys
from pipeline.text.matcher import LexiconMatcher, detect_phrases, example_evidence
from pipeline.text.segment import NormText
from pipeline.text.turns import sort_utterances

#: Shortest phrase checked (a two-syllable phrase is one edit from too many ordinary words).
MIN_PHRASE_CHARS = 3
#: Audio either side of the utterance that is scored (Whisper's utterance times are tight).
PAD_S = 0.3
#: Utterances this close (seconds) are kept around a reading, for the rules' excuses and context.
CONTEXT_S = 20.0
#: Readings scored per utterance, fewest edits first.
MAX_READINGS = 12


@dataclass(frozen=True)
class SoundPhrases:
    """The checked phrases: each one's sound classes and the rules (indices) that own it."""

    keys: dict[str, tuple[str, ...]]
    owners: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Reading:
    """What an utterance would say with one window replaced by a checked phrase, and the hit it raises."""

    text: str
    phrase: str
    written: str  # the window as Whisper wrote it
    start: int  # window in the utterance's matching form
    end: int
    edits: int
    hit: Hit


@dataclass(frozen=True)
class Candidate:
    """One utterance with the readings that would raise a new hit."""

    utterance: Utterance
    norm: NormText
    readings: tuple[Reading, ...]
    #: readings of the same phrases over windows that overlap a reading's, which the rules excuse:
    #: "我知道您是否…" read as "我不知道您是否…" fires, as "不知道您是否…" (我 was the misheard 不) it
    #: is the polite question; the audio decides between them
    excused: tuple[str, ...] = ()

    @property
    def redline(self) -> bool:
        return any(r.hit.category in REDLINE_CATEGORIES for r in self.readings)


@dataclass(frozen=True)
class Check:
    """One scored utterance: the best reading, its log ratio and phrase probability, and the hit (or None)."""

    candidate: Candidate
    reading: Reading
    log_ratio: float
    phrase_prob: float
    hit: Hit | None


def _checked(rule: Any) -> bool:
    return rule.kind == "phrase" and rule.role != CUSTOMER and rule.severity != "info"


def sound_phrases(matcher: LexiconMatcher, config: Config) -> SoundPhrases:
    """The checked phrases of ``matcher``'s rules (built once per matcher, kept on it)."""
    if isinstance(matcher.sound_phrases, SoundPhrases):
        return matcher.sound_phrases
    owners: dict[str, list[int]] = {}
    for index, rule in enumerate(matcher.rules.rules):
        if not _checked(rule):
            continue
        phrases = {matcher.normaliser.text(p) for p in rule.phrases}
        for example in rule.examples_match:
            if "||" not in example:
                phrases.update(matcher.normaliser.text(h.matched_text)
                               for h in detect_phrases(example_evidence(example, AGENT), matcher, config.text)
                               if h.rule_id == rule.id)
        for phrase in phrases:
            if len(phrase) >= MIN_PHRASE_CHARS:
                owners.setdefault(phrase, []).append(index)
    index_ = SoundPhrases({p: tuple(sound_keys(p, matcher.pinyin_cache)) for p in owners},
                          {p: tuple(v) for p, v in owners.items()})
    matcher.sound_phrases = index_
    return index_


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two sequences of sound classes."""
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(b) + 1):
            above = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1]))
            diagonal = above
    return row[-1]


def edit_budget(syllables: int) -> int:
    """Edits a reading may make to a phrase of this many syllables: 1 up to 4 syllables, 2 for 5-6, 3 for 7-8.

    Half the phrase (2 of 4) let ordinary words through by the dozen ("请您稍等" read as
    "请你懂不懂"); every line the sound check found on the spoken dev split is within this budget.
    """
    return max(1, (syllables - 1) // 2)


def windows(heard: Sequence[str], phrases: SoundPhrases) -> list[tuple[int, int, str, int]]:
    """(start, end, phrase, edits) of every window of ``heard`` (sound classes) near a checked phrase.

    A phrase of ``n`` syllables is near a window of ``n`` or ``n + 1`` syllables within
    :func:`edit_budget` edits, or of ``n - 1`` syllables where the missing one is the first
    ("保证" for "我保证"; a syllable inserted anywhere else read "您去" as "你去死" in every
    tenth CrossWOZ agent turn). Pure.
    """
    present = set(heard)
    out = []
    for phrase, keys in phrases.keys.items():
        n = len(keys)
        budget = edit_budget(n)
        if sum(k in present for k in keys) < n - budget:
            continue  # cannot be within the budget anywhere
        for length in (n - 1, n, n + 1):
            for start in range(len(heard) - length + 1):
                window = heard[start:start + length]
                if length < n:  # a syllable short: only the first may be missing (Whisper drops leading 我, 你)
                    edits = 1 + edit_distance(window, keys[1:])
                else:
                    edits = edit_distance(window, keys)
                if edits <= budget:
                    out.append((start, start + length, phrase, edits))
    return out


def candidates(evidence: CallEvidence, hits: Sequence[Hit], matcher: LexiconMatcher, config: Config) -> list[Candidate]:
    """Agent utterances with readings that raise a hit no other stage raised there (pure)."""
    phrases = sound_phrases(matcher, config)
    rules = matcher.rules.rules
    utterances = sort_utterances(evidence.utterances)
    out = []
    for utterance in utterances:
        if utterance.role not in (AGENT, MIXED) or utterance.suspect:
            continue
        norm = matcher.normaliser.utterance(utterance)
        found = windows(sound_keys(norm.text, matcher.pinyin_cache), phrases)
        if not found:
            continue
        context = tuple(u for u in utterances if u is not utterance and u.end_s >= utterance.start_s - CONTEXT_S
                        and u.start_s <= utterance.end_s + CONTEXT_S)
        readings: dict[str, Reading] = {}
        excused: dict[str, tuple[str, int, int]] = {}  # text -> (phrase, start, end)
        for start, end, phrase, edits in sorted(found, key=lambda f: (f[3], f[0], f[2])):
            text = norm.text[:start] + phrase + norm.text[end:]
            if text in readings or text in excused or norm.text[start:end] == phrase:
                continue
            if len(readings) >= MAX_READINGS:
                break
            ids = {rules[i].id for i in phrases.owners[phrase]}
            again = replace(evidence, utterances=(*context, replace(utterance, text=text, words=())))
            new = [h for h in detect_phrases(again, matcher, config.text)
                   if h.rule_id in ids and not h.suspect and h.start_s < utterance.end_s
                   and utterance.start_s < h.end_s and not _fired({h.rule_id}, hits, utterance)]
            if new:
                readings[text] = Reading(text, phrase, norm.text[start:end], start, end, edits, new[0])
            elif not _fired(ids, hits, utterance):  # the rules excuse it, not "fired already"
                excused[text] = (phrase, start, end)
        if readings:
            rivals = tuple(text for text, (phrase, start, end) in excused.items()
                           if any(r.phrase == phrase and start < r.end and r.start < end for r in readings.values()))
            out.append(Candidate(utterance, norm, tuple(readings.values()), rivals[:MAX_READINGS]))
    return out


def _fired(rule_ids: Container[str], hits: Sequence[Hit], utterance: Utterance) -> bool:
    """Whether one of ``rule_ids`` already has a hit over ``utterance``."""
    return any(h.rule_id in rule_ids and h.start_s < utterance.end_s and utterance.start_s < h.end_s
               for h in hits)


def channel_stretch(call: Call, role: str, start_s: float, end_s: float, pad_s: float) -> np.ndarray:
    """``role``'s channel from ``start_s - pad_s`` to ``end_s + pad_s`` (a mono call's one channel for
    role unknown), float32 for Whisper."""
    role = role if role != "unknown" else MIXED
    channel = next((c for c in call.channels if c.role == role), call.channels[0])
    start = max(0, int((start_s - pad_s) * SAMPLE_RATE_HZ))
    end = min(len(channel.samples), int((end_s + pad_s) * SAMPLE_RATE_HZ))
    return np.ascontiguousarray(channel.samples[start:end], dtype=np.float32)


def scorer_for(whisper: Any, config: Config) -> ForcedScorer:
    """A forced scorer for ``whisper`` in the run's language (Chinese when ``[asr] language`` is auto:
    the rules' phrases are)."""
    return ForcedScorer(whisper, config.asr.language if config.asr.language != "auto" else "zh")


def fit(written: Scored, reading: Scored) -> tuple[float, float]:
    """(log ratio, phrase probability) of a reading against what was written, both scored on one stretch."""
    return reading.total - written.total, math.exp(reading.changed_mean(written))


def supports(log_ratio: float, phrase_prob: float, text: TextConfig) -> bool:
    """The audio supports a reading: at most ``sound_check_max_drop`` below the written text, and
    Whisper gives the phrase's own tokens at least ``sound_check_min_phrase_prob``."""
    return log_ratio >= -text.sound_check_max_drop and phrase_prob >= text.sound_check_min_phrase_prob


def forced_hit(reading: Reading, norm: NormText, log_ratio: float, phrase_prob: float) -> Hit:
    """The hit a reading the audio supports gives: severity info, the written words' times, the evidence."""
    note = {"sound_check": {"written": reading.written, "phrase": reading.phrase, "log_ratio": round(log_ratio, 2),
                            "phrase_prob": round(phrase_prob, 3)}}
    detail = json.dumps(note, ensure_ascii=False)
    hit = reading.hit
    return replace(hit, start_s=round(norm.char_start_s[reading.start], 3),
                   end_s=round(max(norm.char_start_s[reading.start], norm.char_end_s[reading.end - 1]), 3),
                   match_type="forced", severity="info", context=norm.text,  # what the transcript says
                   confidence=round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, log_ratio)))), 4),
                   detail=f"{hit.detail}; {detail}" if hit.detail else detail)


def read_note(hit: Mapping[str, Any]) -> dict[str, Any] | None:
    """What :func:`forced_hit` recorded on a stored ``forced`` hit (written, phrase, log_ratio, phrase_prob), or
    None."""
    detail = hit.get("detail") or ""
    at = detail.find('{"sound_check"')
    if hit.get("match_type") != "forced" or at < 0:
        return None
    try:
        note = json.loads(detail[at:])["sound_check"]
    except (ValueError, KeyError, TypeError):
        return None
    return note if isinstance(note, dict) else None


def sound_check(call: Call, evidence: CallEvidence, hits: Sequence[Hit], whisper: Any, matcher: LexiconMatcher,
                config: Config, scorer: ForcedScorer | None = None) -> tuple[list[Hit], list[Check]]:
    """Score the readings of every candidate utterance against its audio; see the module docstring.

    Args:
        call: the decoded call (its channels' audio).
        evidence: the call's (masked) utterances.
        hits: the hits found so far (a rule that already fired on an utterance is not checked there).
        whisper: a faster-whisper ``WhisperModel`` (``WhisperTranscriber.model``).
        matcher: the compiled rules.
        config: ``[text] sound_check_*``, ``[asr] language``.
        scorer: a ready scorer (tests); built from ``whisper`` when None.

    Returns:
        The hits and every scored utterance (for benchmarks and logs).
    """
    text = config.text
    found = candidates(evidence, hits, matcher, config)
    if not found or text.sound_check_max_per_call == 0:
        return [], []
    found.sort(key=lambda c: (not c.redline, min(r.edits for r in c.readings), c.utterance.start_s))
    scorer = scorer or scorer_for(whisper, config)
    out: list[Hit] = []
    checks: list[Check] = []
    for candidate in found[: text.sound_check_max_per_call]:
        utterance = candidate.utterance
        audio = channel_stretch(call, utterance.role, utterance.start_s, utterance.end_s, PAD_S)
        if len(audio) > WINDOW_S * SAMPLE_RATE_HZ or not candidate.norm.text:
            continue
        texts = [candidate.norm.text, *(r.text for r in candidate.readings), *candidate.excused]
        written, *scored = scorer.score(audio, texts)
        readings, rivals = scored[:len(candidate.readings)], scored[len(candidate.readings):]
        best, reading = max(zip(readings, candidate.readings, strict=True), key=lambda pair: pair[0].total)
        ratio, phrase_prob = fit(written, best)
        hit = None
        # the phrase is heard, but the audio fits a reading the rules excuse at least as well
        excused = any(rival.total >= best.total for rival in rivals)
        if supports(ratio, phrase_prob, text) and not excused:
            hit = forced_hit(reading, candidate.norm, ratio, phrase_prob)
            out.append(hit)
        checks.append(Check(candidate, reading, ratio, phrase_prob, hit))
    return out, checks


__all__ = ["CONTEXT_S", "MAX_READINGS", "MIN_PHRASE_CHARS", "PAD_S", "Candidate", "Check", "Reading",
           "SoundPhrases", "candidates", "channel_stretch", "edit_budget", "edit_distance", "fit", "forced_hit",
           "read_note", "scorer_for", "sound_check", "sound_phrases", "supports", "windows"]
