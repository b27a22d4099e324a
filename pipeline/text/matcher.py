"""Lexicon detector: QA rule sets matched on transcripts.

``build_matcher`` compiles a :class:`~pipeline.text.rules.RuleSet` once (an
Aho-Corasick automaton over normalised phrases, a pinyin automaton for fuzzy
rules, regexes compiled for linear-time matching by
:mod:`pipeline.text.patterns`, the isolated jieba segmenter).
``detect_phrases`` is pure: evidence in, hits out. A phrase hit must start and end on jieba token
boundaries, so "喂" does not fire inside "喂养".
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
from pypinyin import Style, lazy_pinyin

from pipeline.config import TextConfig
from pipeline.errors import LexiconError
from pipeline.records import AGENT, CUSTOMER, MIXED, UNKNOWN, CallEvidence, Hit, Utterance
from pipeline.text.patterns import LinearPattern, PatternError, compile_pattern
from pipeline.text.rules import Rule, RuleSet
from pipeline.text.segment import Normaliser, NormText, Segmenter


@dataclass
class LexiconMatcher:
    """Compiled form of a rule set; build with :func:`build_matcher`, then reuse."""

    rules: RuleSet
    normaliser: Normaliser
    segmenter: Segmenter
    exact: Any  # ahocorasick.Automaton: normalised phrase -> list of (rule index, phrase)
    fuzzy: Any | None  # pinyin automaton or None
    regexes: dict[int, tuple[LinearPattern, ...]] = field(default_factory=dict)
    norm_lists: dict[int, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    pinyin_cache: dict[str, str] = field(default_factory=dict)
    #: Fuzzy (homophone) matches of words jieba counts at least this common are ignored.
    common_word_freq: int = 2000


def _syllables(text: str, cache: dict[str, str]) -> list[str]:
    """Toneless pinyin per character (first reading), memoised in ``cache``; other characters as-is."""
    out = []
    for ch in text:
        syl = cache.get(ch)
        if syl is None:
            syl = lazy_pinyin(ch, style=Style.NORMAL)[0] if ch.strip() else ch
            cache[ch] = syl
        out.append(syl)
    return out


def _pinyin_key(text: str, cache: dict[str, str]) -> str:
    return "|".join(_syllables(text, cache)) + "|"


def _compile(pattern: str, rule: Rule) -> LinearPattern:
    try:
        return compile_pattern(pattern)
    except PatternError as exc:  # load_rules refuses these; a RuleSet built in code may not have been checked
        raise LexiconError(rule.source or rule.id, f"rule {rule.id}: bad regex: {exc}") from None


def build_matcher(rules: RuleSet, text_config: TextConfig) -> LexiconMatcher:
    """Compile ``rules`` once (automata, regexes in linear time, segmenter with phrases as user words).

    Raises:
        LexiconError: a rule's regex cannot be matched in linear time (see :mod:`pipeline.text.patterns`).
    """
    norm = Normaliser()
    exact = ahocorasick.Automaton()
    fuzzy = ahocorasick.Automaton() if text_config.fuzzy else None
    table: dict[str, list[tuple[int, str]]] = {}
    ftable: dict[str, list[tuple[int, str]]] = {}
    regexes: dict[int, tuple[LinearPattern, ...]] = {}
    norm_lists: dict[int, dict[str, tuple[str, ...]]] = {}
    pinyin_cache: dict[str, str] = {}
    for i, rule in enumerate(rules.rules):
        for phrase in rule.phrases:
            key = norm.text(phrase)
            if key:
                table.setdefault(key, []).append((i, key))
                if fuzzy is not None and rule.fuzzy and len(key) >= 3:
                    ftable.setdefault(_pinyin_key(key, pinyin_cache), []).append((i, key))
        regexes[i] = tuple(_compile(p, rule) for p in rule.regexes)
        norm_lists[i] = {name: tuple(norm.text(p) for p in getattr(rule, name))
                         for name in ("exceptions_preceded", "exceptions_followed",
                                      "allowed_longer", "requires_nearby", "triggers")}
    for key, value in table.items():
        exact.add_word(key, (key, tuple(value)))
    exact.make_automaton() if table else None
    if fuzzy is not None and ftable:
        for key, value in ftable.items():
            fuzzy.add_word(key, (key, tuple(value)))
        fuzzy.make_automaton()
    else:
        fuzzy = None
    user_words = {norm.text(p) for p in rules.phrases()}
    return LexiconMatcher(rules, norm, Segmenter(user_words), exact if table else None,
                          fuzzy, regexes, norm_lists, pinyin_cache, text_config.fuzzy_common_word_freq)


@dataclass(frozen=True)
class _Match:
    rule_index: int
    utt_index: int
    start: int  # char offsets in the normalised text
    end: int
    text: str
    match_type: str


class _Bounds:
    """Token boundaries of one text, segmented only when a candidate match needs checking.

    Most utterances hold no lexicon phrase at all, so most are never segmented
    (jieba is the largest cost of the text detectors).
    """

    def __init__(self, segmenter: Segmenter, text: str) -> None:
        self._segmenter, self._text = segmenter, text
        self._bounds: set[int] | None = None

    def __contains__(self, offset: object) -> bool:
        if self._bounds is None:
            self._bounds = self._segmenter.boundaries(self._text)
        return offset in self._bounds


def _scan(matcher: LexiconMatcher, norm: NormText, bounds: Container[int], ui: int) -> list[_Match]:
    out: list[_Match] = []
    text = norm.text
    if matcher.exact is not None and text:
        for end_idx, (key, owners) in matcher.exact.iter(text):
            start = end_idx - len(key) + 1
            if start in bounds and end_idx + 1 in bounds:
                out.extend(_Match(ri, ui, start, end_idx + 1, key, "exact") for ri, _ in owners)
    for ri, patterns in matcher.regexes.items():
        for pattern in patterns:
            out.extend(_Match(ri, ui, m.start(), m.end(), m.group(0), "regex")
                       for m in pattern.finditer(text) if m.end() > m.start())
    if matcher.fuzzy is not None and text:
        syllables = _syllables(text, matcher.pinyin_cache)
        offsets = [0]
        for syl in syllables:
            offsets.append(offsets[-1] + len(syl) + 1)
        key_text = "|".join(syllables) + "|"
        char_at = {off: i for i, off in enumerate(offsets)}
        for end_idx, (pkey, owners) in matcher.fuzzy.iter(key_text):
            start_off = end_idx - len(pkey) + 1
            if start_off not in char_at:
                continue
            start = char_at[start_off]
            end = start + len(owners[0][1])
            found = text[start:end]
            if found == owners[0][1] or start not in bounds or end not in bounds:
                continue
            if matcher.segmenter.word_freq(found) >= matcher.common_word_freq:
                continue  # common-word guard: a real word, not an ASR slip
            out.extend(_Match(ri, ui, start, end, found, "fuzzy") for ri, _ in owners)
    return out


def _in_scope(rule: Rule, role: str) -> bool:
    return rule.role == "any" or role == MIXED or rule.role == role


def _context(text: str, start: int, end: int, width: int = 12) -> str:
    return text[max(0, start - width):end + width]


def _near(matcher: LexiconMatcher, norms: list[NormText], utts: tuple[Utterance, ...], phrases: tuple[str, ...],
          m: _Match, before: bool, after: bool, window_s: float) -> bool:
    """Whether any of ``phrases`` occurs on the same role within ``window_s`` before/after ``m``."""
    if not phrases:
        return False
    norm = norms[m.utt_index]
    t0, t1 = norm.char_start_s[m.start], norm.char_end_s[m.end - 1]
    role = utts[m.utt_index].role
    for ui, (utt, other) in enumerate(zip(utts, norms, strict=True)):
        if utt.role != role:
            continue
        for p in phrases:
            pos = other.text.find(p)
            while pos >= 0:
                ps, pe = other.char_start_s[pos], other.char_end_s[pos + len(p) - 1]
                same = ui == m.utt_index
                is_after = (pos >= m.end) if same else ps >= t1
                is_before = (pos + len(p) <= m.start) if same else pe <= t0
                if after and is_after and ps - t1 <= window_s:
                    return True
                if before and is_before and t0 - pe <= window_s:
                    return True
                pos = other.text.find(p, pos + 1)
    return False


def _allowed_longer(text: str, m: _Match, longer: tuple[str, ...]) -> bool:
    for phrase in longer:
        pos = text.find(phrase)
        while pos >= 0:
            if pos <= m.start and m.end <= pos + len(phrase):
                return True
            pos = text.find(phrase, pos + 1)
    return False


def _make_hit(evidence: CallEvidence, rule: Rule, version: str, role: str, start_s: float, end_s: float,
              match_type: str, confidence: float, text: str, context: str, suspect: bool,
              detail: str, text_config: TextConfig) -> Hit:
    severity = rule.severity
    if suspect and severity == "fatal" and not text_config.suspect_can_raise_fatal:
        severity = "non_fatal"
        detail = (detail + "; " if detail else "") + "fatal downgraded: suspect utterance"
    start_s, end_s = round(start_s, 3), round(max(start_s, end_s), 3)
    return Hit(call_id=evidence.call_id, rule_id=rule.id, detector_version=version, category=rule.category,
               severity=severity, error_class=rule.error_class, role=role, start_s=start_s,
               end_s=end_s, match_type=match_type, confidence=round(min(1.0, max(0.0, confidence)), 4),
               matched_text=text, context=context, suspect=suspect, detail=detail)


def detect_phrases(evidence: CallEvidence, matcher: LexiconMatcher, text_config: TextConfig) -> list[Hit]:
    """Run every rule of ``matcher`` on one call's utterances; pure, deterministic.

    Personal data is masked in the utterances before this stage (see
    :func:`pipeline.analysis.protect_pii`), so ``callqa run`` and ``callqa
    rescore`` match the same text.

    Args:
        evidence: the call's utterances (any role; a mono call has role ``mixed``).
        matcher: from :func:`build_matcher`.
        text_config: ``config.text`` (``fuzzy_confidence``, ``suspect_can_raise_fatal``).

    Returns:
        Hits sorted by start time then rule id. On mono calls role-scoped rules report role ``unknown``.
    """
    rules = matcher.rules.rules
    version = matcher.rules.version
    utts = tuple(sorted(evidence.utterances, key=lambda u: (u.start_s, u.role)))
    norms = [matcher.normaliser.utterance(u) for u in utts]
    matches: list[_Match] = []
    for ui, norm in enumerate(norms):
        if norm.text:
            matches.extend(_scan(matcher, norm, _Bounds(matcher.segmenter, norm.text), ui))
    fuzzy_conf = text_config.fuzzy_confidence
    hits: list[Hit] = []
    by_rule: dict[int, list[_Match]] = {}
    for m in matches:
        rule = rules[m.rule_index]
        utt = utts[m.utt_index]
        if not _in_scope(rule, utt.role):
            continue
        norm = norms[m.utt_index]
        lists = matcher.norm_lists[m.rule_index]
        if _allowed_longer(norm.text, m, lists["allowed_longer"]):
            continue
        if _near(matcher, norms, utts, lists["exceptions_followed"], m, False, True, rule.exception_window_s):
            continue
        if _near(matcher, norms, utts, lists["exceptions_preceded"], m, True, False, rule.exception_window_s):
            continue
        if lists["requires_nearby"] and not _near(matcher, norms, utts, lists["requires_nearby"], m, True, True,
                                                  rule.nearby_window_s):
            continue
        start_s, end_s = norm.char_start_s[m.start], norm.char_end_s[m.end - 1]
        if rule.window == "first" and start_s > rule.window_s:
            continue
        if rule.window == "last" and end_s < evidence.duration_s - rule.window_s:
            continue
        by_rule.setdefault(m.rule_index, []).append(m)
    for ri, rule in enumerate(rules):
        found = _dedupe(by_rule.get(ri, []))
        if rule.kind == "phrase":
            for m in found:
                hits.append(_phrase_hit(evidence, rule, version, utts, norms, m, fuzzy_conf, text_config))
        elif rule.kind == "count":
            hits.extend(_count_hit(evidence, rule, version, utts, norms, found, text_config))
        elif not rule.triggers:
            hits.extend(_absence_hit(evidence, rule, version, utts, found, text_config))
        else:
            trigger_s = _first_trigger_s(rule, utts, norms, matcher.norm_lists[ri]["triggers"])
            if trigger_s is not None:
                after = [m for m in found if norms[m.utt_index].char_end_s[m.end - 1] >= trigger_s]
                hits.extend(_absence_hit(evidence, rule, version, utts, after, text_config, trigger_s))
    hits.sort(key=lambda h: (h.start_s, h.rule_id, h.end_s))
    return hits


_TYPE_RANK = {"exact": 0, "regex": 1, "fuzzy": 2}


def _dedupe(matches: list[_Match]) -> list[_Match]:
    """One match per overlapping stretch of one utterance: longest first, exact before regex before fuzzy."""
    kept: list[_Match] = []
    for m in sorted(matches, key=lambda m: (m.utt_index, m.start, m.start - m.end, _TYPE_RANK[m.match_type])):
        if kept and kept[-1].utt_index == m.utt_index and m.start < kept[-1].end:
            continue
        kept.append(m)
    return kept


def _hit_role(rule: Rule, utt_role: str) -> str:
    return UNKNOWN if utt_role == MIXED and rule.role != "any" else utt_role


def _phrase_hit(evidence: CallEvidence, rule: Rule, version: str, utts: tuple[Utterance, ...],
                norms: list[NormText], m: _Match, fuzzy_conf: float, text_config: TextConfig) -> Hit:
    norm, utt = norms[m.utt_index], utts[m.utt_index]
    probs = norm.char_prob[m.start:m.end]
    conf = sum(probs) / len(probs) if probs else 1.0
    if m.match_type == "fuzzy":
        conf *= fuzzy_conf
    detail = "mono: role-scoped rule on mixed channel" if utt.role == MIXED and rule.role != "any" else ""
    return _make_hit(evidence, rule, version, _hit_role(rule, utt.role), norm.char_start_s[m.start],
                     norm.char_end_s[m.end - 1], m.match_type, conf, m.text,
                     _context(norm.text, m.start, m.end), utt.suspect, detail, text_config)


def _count_hit(evidence: CallEvidence, rule: Rule, version: str, utts: tuple[Utterance, ...],
               norms: list[NormText], found: list[_Match], text_config: TextConfig) -> list[Hit]:
    if len(found) < rule.min_count:
        return []
    first, last = found[0], found[-1]
    start_s = norms[first.utt_index].char_start_s[first.start]
    end_s = norms[last.utt_index].char_end_s[last.end - 1]
    words = sorted({m.text for m in found})
    return [_make_hit(evidence, rule, version, _hit_role(rule, utts[first.utt_index].role), start_s, end_s,
                      "count", 1.0, "/".join(words), f"{len(found)} uses",
                      any(utts[m.utt_index].suspect for m in found),
                      f"count={len(found)} min_count={rule.min_count}", text_config)]


def _first_trigger_s(rule: Rule, utts: tuple[Utterance, ...], norms: list[NormText],
                     triggers: tuple[str, ...]) -> float | None:
    """Start of the first trigger phrase said by the other side (any side on mono calls), or None."""
    for utt, norm in zip(utts, norms, strict=True):
        if utt.role != MIXED and rule.role != "any" and utt.role == rule.role:
            continue
        positions = [p for p in (norm.text.find(t) for t in triggers if t) if p >= 0]
        if positions:
            return norm.char_start_s[min(positions)]
    return None


def _absence_hit(evidence: CallEvidence, rule: Rule, version: str, utts: tuple[Utterance, ...],
                 found: list[_Match], text_config: TextConfig, trigger_s: float | None = None) -> list[Hit]:
    if found:
        return []
    roles = {u.role for u in utts if _in_scope(rule, u.role)}
    if not roles:
        return []  # nobody to judge: no speech on the rule's side
    role = AGENT if rule.role == AGENT and AGENT in roles else CUSTOMER if rule.role == CUSTOMER else (
        UNKNOWN if MIXED in roles else rule.role)
    if rule.window == "first":
        start_s, end_s = 0.0, min(rule.window_s, evidence.duration_s)
    elif rule.window == "last":
        start_s, end_s = max(0.0, evidence.duration_s - rule.window_s), evidence.duration_s
    else:
        start_s, end_s = 0.0, evidence.duration_s
    detail = f"none of {len(rule.phrases) + len(rule.regexes)} phrases in window {rule.window}"
    if trigger_s is not None:
        start_s = max(start_s, trigger_s)
        detail += f" after trigger at {trigger_s:.2f} s"
    return [_make_hit(evidence, rule, version, role, start_s, max(start_s, end_s), "absence", 1.0, "", "",
                      False, detail, text_config)]


def example_evidence(text: str, role: str, call_id: str = "example") -> CallEvidence:
    """A small call for rule examples and ``callqa rules match`` (1 s per 4 characters).

    ``text`` is one utterance by ``role``, or several turns joined by ``||``, each optionally
    prefixed ``agent:`` or ``customer:`` (e.g. ``"customer: 太烂了 || agent: 非常抱歉"``).
    """
    utts: list[Utterance] = []
    t = 0.0
    for turn in text.split("||"):
        turn_role, body = role, turn.strip()
        head, sep, rest = body.partition(":")
        if sep and head.strip() in (AGENT, CUSTOMER):
            turn_role, body = head.strip(), rest.strip()
        length = max(1.0, len(body) / 4.0)
        utts.append(Utterance(role=turn_role, start_s=t, end_s=t + length, text=body))
        t += length + 0.5
    roles = (MIXED,) if role == MIXED else (AGENT, CUSTOMER)
    return CallEvidence(call_id=call_id, duration_s=max(1.0, t - 0.5), roles=roles, utterances=tuple(utts))


def run_examples(matcher: LexiconMatcher, text_config: TextConfig) -> list[str]:
    """Check every rule's own examples; return one failure line per wrong example (empty = all pass)."""
    failures: list[str] = []
    for rule in matcher.rules.rules:
        role = CUSTOMER if rule.role == CUSTOMER else AGENT
        for expect, examples in ((True, rule.examples_match), (False, rule.examples_no_match)):
            for text in examples:
                hits = detect_phrases(example_evidence(text, role), matcher, text_config)
                got = any(h.rule_id == rule.id for h in hits)
                if got != expect:
                    failures.append(f"{rule.source}: rule {rule.id}: {'missed' if expect else 'false hit on'} {text!r}")
    return failures
