"""Lexicon detector: QA rule sets matched on transcripts.

``build_matcher`` compiles a :class:`~pipeline.text.rules.RuleSet` once (an
Aho-Corasick automaton over normalised phrases, a sound-alike pinyin automaton for fuzzy
rules (:mod:`pipeline.text.fuzzy`), regexes compiled for linear-time matching by
:mod:`pipeline.text.patterns`, the isolated jieba segmenter).
``detect_phrases`` is pure: evidence in, hits out.

Rules are matched on *turns* (:mod:`pipeline.text.turns`): one speaker's consecutive
utterances joined, so a phrase Whisper split over two utterances still matches, with
repeated characters folded ("喂喂" -> "喂"). A phrase hit must start and end on a token
boundary, so "喂" does not fire inside "喂养": a jieba boundary, a place where ASR
punctuation or an utterance split stood ("喂，喂"), or a boundary jieba's own dictionary
sees inside a longer lexicon phrase (so "你怎么不讲道理啊" fires the rule of
"你怎么不讲道理" as well as its own). Every rule is matched on its own, so phrases of two
rules that overlap both fire.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from pipeline.config import TextConfig
from pipeline.errors import LexiconError
from pipeline.records import AGENT, CUSTOMER, MIXED, CallEvidence, Hit, Utterance
from pipeline.text.fuzzy import FUZZY_MIN_CHARS, NearIndex, SoundAlike, joined_key, other_a_not_a, sound_keys
from pipeline.text.patterns import LinearPattern, PatternError, compile_pattern, compile_sound_alike
from pipeline.text.rule_hits import Found, absence_hit, count_hit, dedupe, first_trigger_s, phrase_hit
from pipeline.text.rules import Rule, RuleSet
from pipeline.text.segment import Normaliser, NormText, Segmenter
from pipeline.text.turns import Turn, build_turns, sort_utterances


@dataclass
class LexiconMatcher:
    """Compiled form of a rule set; build with :func:`build_matcher`, then reuse."""

    rules: RuleSet
    normaliser: Normaliser
    segmenter: Segmenter
    exact: Any  # ahocorasick.Automaton: normalised phrase -> list of (rule index, phrase)
    fuzzy: Any | None  # sound-alike pinyin automaton or None
    regexes: dict[int, tuple[LinearPattern, ...]] = field(default_factory=dict)
    norm_lists: dict[int, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    pinyin_cache: dict[str, str] = field(default_factory=dict)
    #: Fuzzy (homophone) matches of words jieba counts at least this common are ignored.
    common_word_freq: int = 2000
    #: Regexes whose match excuses a phrase lying inside it (``allowed_longer_regexes``).
    allowed_regexes: dict[int, tuple[LinearPattern, ...]] = field(default_factory=dict)
    #: Near matches of fuzzy rules' phrases (candidates for the second look): index and phrase owners.
    near: NearIndex | None = None
    near_owners: dict[str, tuple[int, ...]] = field(default_factory=dict)
    turn_max_gap_s: float = 1.5
    repeat_word_min_freq: int = 100
    #: Fuzzy rules' regexes in sound-alike form, matched on text rewritten by ``alike``.
    fuzzy_regexes: dict[int, tuple[LinearPattern | None, ...]] = field(default_factory=dict)
    alike: SoundAlike = field(default_factory=SoundAlike)
    #: The sound check's phrases (:func:`pipeline.text.sound_check.sound_phrases`), built on first use.
    sound_phrases: Any = None
    #: A sound-alike keeping none of its phrase's characters that holds a word jieba counts this often is
    #: other words ("马隔壁罗" for 妈个比: 隔壁, next door), not a slip on the phrase.
    other_words_freq: int = 100

    def other_words(self, found: str, phrase: str) -> bool:
        """Whether the sound-alike ``found`` of ``phrase`` is other words (see ``other_words_freq``)."""
        return not set(found) & set(phrase) and any(
            self.segmenter.word_freq(found[i:j]) >= self.other_words_freq
            for i in range(len(found)) for j in range(i + 2, len(found) + 1))

    def is_word(self, text: str) -> bool:
        """Whether jieba counts ``text`` as a word often enough to keep a doubled character."""
        return self.segmenter.word_freq(text) >= self.repeat_word_min_freq

    def turns(self, utterances: tuple[Utterance, ...]) -> list[Turn]:
        """The turns of sorted utterances, as every rule sees them."""
        return build_turns(utterances, self.normaliser, self.turn_max_gap_s, self.is_word)


def _compile(pattern: str, rule: Rule) -> LinearPattern:
    try:
        return compile_pattern(pattern)
    except PatternError as exc:  # load_rules refuses these; a RuleSet built in code may not have been checked
        raise LexiconError(rule.source or rule.id, f"rule {rule.id}: bad regex: {exc}") from None


def _sound_alike(pattern: str, alike: SoundAlike) -> LinearPattern | None:
    """A fuzzy rule's regex in sound-alike form; None for one with a word boundary (matched exactly only)."""
    try:
        return compile_sound_alike(pattern, alike.image, FUZZY_MIN_CHARS)
    except PatternError:
        return None


def build_matcher(rules: RuleSet, text_config: TextConfig) -> LexiconMatcher:
    """Compile ``rules`` once (automata, regexes in linear time, segmenter with phrases as user words).

    Raises:
        LexiconError: a rule's regex cannot be matched in linear time (see :mod:`pipeline.text.patterns`).
    """
    norm = Normaliser()
    exact = ahocorasick.Automaton()
    fuzzy = ahocorasick.Automaton() if text_config.fuzzy else None
    near = NearIndex() if text_config.fuzzy else None
    near_owners: dict[str, list[int]] = {}
    table: dict[str, list[tuple[int, str]]] = {}
    ftable: dict[str, list[tuple[int, str]]] = {}
    regexes: dict[int, tuple[LinearPattern, ...]] = {}
    allowed_regexes: dict[int, tuple[LinearPattern, ...]] = {}
    norm_lists: dict[int, dict[str, tuple[str, ...]]] = {}
    pinyin_cache: dict[str, str] = {}
    alike = SoundAlike(cache=pinyin_cache)
    fuzzy_regexes: dict[int, tuple[LinearPattern | None, ...]] = {}
    for i, rule in enumerate(rules.rules):
        for phrase in rule.phrases:
            key = norm.text(phrase)
            if key:
                table.setdefault(key, []).append((i, key))
                if fuzzy is not None and rule.fuzzy and len(key) >= FUZZY_MIN_CHARS:
                    classes = sound_keys(key, pinyin_cache)
                    ftable.setdefault(joined_key(classes), []).append((i, key))
                    if near is not None and key not in near_owners:
                        near.add(key, classes)
                    near_owners.setdefault(key, []).append(i)
        regexes[i] = tuple(_compile(p, rule) for p in rule.regexes)
        if text_config.fuzzy and rule.fuzzy and rule.regexes:
            fuzzy_regexes[i] = tuple(_sound_alike(p, alike) for p in rule.regexes)
        allowed_regexes[i] = tuple(_compile(p, rule) for p in rule.allowed_longer_regexes)
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
    segmenter = Segmenter(user_words, text_config.rare_word_max_freq)
    return LexiconMatcher(rules, norm, segmenter, exact if table else None,
                          fuzzy, regexes, norm_lists, pinyin_cache, text_config.fuzzy_common_word_freq,
                          allowed_regexes, near, {k: tuple(v) for k, v in near_owners.items()},
                          text_config.turn_max_gap_s, text_config.repeat_word_min_freq, fuzzy_regexes, alike,
                          other_words_freq=text_config.fuzzy_other_words_freq)


@dataclass(frozen=True)
class _Match:
    rule_index: int
    utt_index: int  # index of the turn (see pipeline.text.turns)
    start: int  # char offsets in the turn's normalised text
    end: int
    text: str
    match_type: str


class _Bounds:
    """Token boundaries of one text, segmented only when a candidate match needs checking.

    Most turns hold no lexicon phrase at all, so most are never segmented
    (jieba is the largest cost of the text detectors). Where punctuation or an
    utterance split stood is a boundary too.
    """

    def __init__(self, segmenter: Segmenter, norm: NormText) -> None:
        self._segmenter, self._norm = segmenter, norm
        self._bounds: set[int] | None = None

    def __contains__(self, offset: object) -> bool:
        if self._bounds is None:
            self._bounds = self._segmenter.boundaries(self._norm.text) | self._norm.breaks
        return offset in self._bounds


def _scan(matcher: LexiconMatcher, norm: NormText, bounds: Container[int], ui: int) -> list[_Match]:
    out: list[_Match] = []
    text = norm.text
    if matcher.exact is not None and text:
        found = [(end - len(key) + 1, end + 1, key, owners) for end, (key, owners) in matcher.exact.iter(text)]
        whole = [(start, end) for start, end, _, _ in found if start in bounds and end in bounds]
        for start, end, key, owners in found:
            # an edge inside another phrase found on token boundaries is fine: phrases that overlap both fire
            if (start in bounds or any(a < start < b for a, b in whole)) and (
                    end in bounds or any(a < end < b for a, b in whole)):
                out.extend(_Match(ri, ui, start, end, key, "exact") for ri, _ in owners)
    for ri, patterns in matcher.regexes.items():
        for pattern in patterns:
            out.extend(_Match(ri, ui, m.start(), m.end(), m.group(0), "regex")
                       for m in pattern.finditer(text) if m.end() > m.start())
    if matcher.fuzzy_regexes and text:
        exact = {(m.rule_index, m.start, m.end) for m in out if m.match_type == "regex"}
        out += _sound_alike_regex(matcher, text, bounds, ui, exact)
    if matcher.fuzzy is not None and text:
        classes = sound_keys(text, matcher.pinyin_cache)
        offsets = [0]
        for cls in classes:
            offsets.append(offsets[-1] + len(cls) + 1)
        key_text = joined_key(classes)
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
            if matcher.other_words(found, owners[0][1]):
                continue  # none of the phrase's characters, and ordinary words instead
            if other_a_not_a(owners[0][1], found, matcher.pinyin_cache):
                continue  # "您等不等" asks something else than "你懂不懂"
            out.extend(_Match(ri, ui, start, end, found, "fuzzy") for ri, _ in owners)
    return out


def _sound_alike_regex(matcher: LexiconMatcher, text: str, bounds: Container[int], ui: int,
                       exact: Container[tuple[int, int, int]]) -> list[_Match]:
    """Matches of fuzzy rules' regexes with a run of 3+ literals heard as sound-alikes ("去别加" for
    "去别家"; :func:`pipeline.text.patterns.compile_sound_alike`), on token boundaries, where the
    regex itself did not match the same text (``exact``: (rule index, start, end) of its matches)."""
    paired = matcher.alike.paired(text)
    out = []
    for ri, patterns in matcher.fuzzy_regexes.items():
        for pattern in filter(None, patterns):
            for m in pattern.finditer(paired):
                start, end = m.start() // 2, m.end() // 2
                if end > start and (ri, start, end) not in exact and start in bounds and end in bounds:
                    out.append(_Match(ri, ui, start, end, text[start:end], "fuzzy"))
    return out


def _in_scope(rule: Rule, role: str) -> bool:
    return rule.role == "any" or role == MIXED or rule.role == role


def _positions(turn: Turn, phrase: str, classes: dict[str, str], cache: dict[str, str]) -> list[int]:
    """Where ``phrase`` occurs in the turn: exactly, or (3+ characters) as a sound-alike.

    Context phrases (exceptions, ``requires_nearby``, ``allowed_longer``) are matched the
    lenient way: an excuse misheard by one confusion ("我帮您查询" as "我帮您查醒" is not
    one, but "帮您核实" as "帮您和实" is) still excuses.
    """
    text = turn.norm.text
    found = []
    pos = text.find(phrase)
    while pos >= 0:
        found.append(pos)
        pos = text.find(phrase, pos + 1)
    if len(phrase) >= 3:
        key = classes.get(phrase)
        if key is None:
            key = classes[phrase] = joined_key(sound_keys(phrase, cache))
        heard = sound_keys(text, cache)
        n = len(phrase)
        found += [i for i in range(len(heard) - n + 1) if i not in found and joined_key(heard[i:i + n]) == key]
    return found


def _near(matcher: LexiconMatcher, turns: list[Turn], phrases: tuple[str, ...], m: _Match, before: bool,
          after: bool, window_s: float, classes: dict[str, str]) -> bool:
    """Whether any of ``phrases`` occurs on the same role within ``window_s`` before/after ``m``."""
    if not phrases:
        return False
    norm = turns[m.utt_index].norm
    t0, t1 = norm.char_start_s[m.start], norm.char_end_s[m.end - 1]
    role = turns[m.utt_index].role
    for ti, turn in enumerate(turns):
        if turn.role != role:
            continue
        if turn.start_s - t1 > window_s or t0 - turn.end_s > window_s:
            continue
        other = turn.norm
        for p in phrases:
            for pos in _positions(turn, p, classes, matcher.pinyin_cache):
                ps, pe = other.char_start_s[pos], other.char_end_s[pos + len(p) - 1]
                same = ti == m.utt_index
                is_after = (pos >= m.end) if same else ps >= t1
                is_before = (pos + len(p) <= m.start) if same else pe <= t0
                if after and is_after and ps - t1 <= window_s:
                    return True
                if before and is_before and t0 - pe <= window_s:
                    return True
    return False


def _allowed_longer(text: str, m: _Match, longer: tuple[str, ...], patterns: tuple[LinearPattern, ...]) -> bool:
    """Whether the match lies inside an allowed longer phrase or a match of an allowed regex."""
    for phrase in longer:
        pos = text.find(phrase)
        while pos >= 0:
            if pos <= m.start and m.end <= pos + len(phrase):
                return True
            pos = text.find(phrase, pos + 1)
    for pattern in patterns:
        for found in pattern.finditer(text):
            if found.start() <= m.start and m.end <= found.end():
                return True
    return False


def _accepted(matcher: LexiconMatcher, evidence: CallEvidence, turns: list[Turn], matches: list[_Match],
              classes: dict[str, str]) -> list[_Match]:
    """The matches that survive each rule's scope, excuses, required context and window."""
    rules = matcher.rules.rules
    kept = []
    for m in matches:
        rule = rules[m.rule_index]
        turn = turns[m.utt_index]
        if not _in_scope(rule, turn.role):
            continue
        lists = matcher.norm_lists[m.rule_index]
        if _allowed_longer(turn.norm.text, m, lists["allowed_longer"], matcher.allowed_regexes[m.rule_index]):
            continue
        if _near(matcher, turns, lists["exceptions_followed"], m, False, True, rule.exception_window_s, classes):
            continue
        if _near(matcher, turns, lists["exceptions_preceded"], m, True, False, rule.exception_window_s, classes):
            continue
        if lists["requires_nearby"] and not _near(matcher, turns, lists["requires_nearby"], m, True, True,
                                                  rule.nearby_window_s, classes):
            continue
        start_s, end_s = turn.norm.char_start_s[m.start], turn.norm.char_end_s[m.end - 1]
        if rule.window == "first" and start_s > rule.window_s:
            continue
        if rule.window == "last" and end_s < evidence.duration_s - rule.window_s:
            continue
        kept.append(m)
    return kept


def detect_phrases(evidence: CallEvidence, matcher: LexiconMatcher, text_config: TextConfig) -> list[Hit]:
    """Run every rule of ``matcher`` on one call's turns; pure, deterministic.

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
    utts = sort_utterances(evidence.utterances)
    turns = matcher.turns(utts)
    matches: list[_Match] = []
    for ti, turn in enumerate(turns):
        if turn.norm.text:
            matches.extend(_scan(matcher, turn.norm, _Bounds(matcher.segmenter, turn.norm), ti))
    by_rule: dict[int, list[Found]] = {}
    for m in _accepted(matcher, evidence, turns, matches, {}):
        by_rule.setdefault(m.rule_index, []).append(
            Found(m.utt_index, turns[m.utt_index], m.start, m.end, m.text, m.match_type))
    hits: list[Hit] = []
    for ri, rule in enumerate(rules):
        found = dedupe(by_rule.get(ri, []))
        if rule.kind == "phrase":
            hits += [phrase_hit(evidence, rule, version, utts, f, text_config) for f in found]
        elif rule.kind == "count":
            hits += count_hit(evidence, rule, version, utts, found, text_config)
        elif not rule.triggers:
            hits += absence_hit(evidence, rule, version, turns, found, text_config)
        else:
            trigger_s = first_trigger_s(rule, turns, matcher.norm_lists[ri]["triggers"])
            if trigger_s is not None:
                after = [f for f in found if f.end_s >= trigger_s]
                hits += absence_hit(evidence, rule, version, turns, after, text_config, trigger_s)
    hits.sort(key=lambda h: (h.start_s, h.rule_id, h.end_s))
    return hits


@dataclass(frozen=True)
class NearMatch:
    """A stretch that may be a fuzzy rule's phrase misheard (one syllable off): a second-look candidate."""

    rule_ids: tuple[str, ...]
    phrase: str
    role: str
    start_s: float
    end_s: float
    heard: str
    how: str


def find_near(evidence: CallEvidence, matcher: LexiconMatcher, text_config: TextConfig,
              hits: Sequence[Hit] = ()) -> list[NearMatch]:
    """Near matches of fuzzy rules' phrases (:class:`pipeline.text.fuzzy.NearIndex`) that no hit covers.

    They pass the same token boundaries, scope and excuses as hits; a near match that is
    itself a common word (jieba frequency >= ``fuzzy_common_word_freq``) is left out, and of
    overlapping near matches the longest is kept. Pure.
    """
    if matcher.near is None:
        return []
    rules = matcher.rules.rules
    turns = matcher.turns(sort_utterances(evidence.utterances))
    matches = []
    for ti, turn in enumerate(turns):
        text = turn.norm.text
        bounds = _Bounds(matcher.segmenter, turn.norm)
        for near in matcher.near.find(sound_keys(text, matcher.pinyin_cache)):
            heard = text[near.start:near.end]
            if heard == near.phrase or matcher.segmenter.word_freq(heard) >= text_config.fuzzy_common_word_freq:
                continue
            if near.start not in bounds or near.end not in bounds:
                continue
            matches += [_Match(ri, ti, near.start, near.end, f"{near.phrase}\0{near.how}", "fuzzy")
                        for ri in matcher.near_owners[near.phrase]]
    out: dict[tuple[int, int, int], NearMatch] = {}
    for m in _accepted(matcher, evidence, turns, matches, {}):
        rule, turn = rules[m.rule_index], turns[m.utt_index]
        start_s, end_s = turn.norm.char_start_s[m.start], turn.norm.char_end_s[m.end - 1]
        if any(h.rule_id == rule.id and h.start_s < end_s and start_s < h.end_s for h in hits):
            continue
        phrase, how = m.text.split("\0")
        key = (m.utt_index, m.start, m.end)
        known = out.get(key)
        ids = tuple(dict.fromkeys((*(known.rule_ids if known else ()), rule.id)))
        out[key] = NearMatch(ids, phrase, turn.role, start_s, end_s, turn.norm.text[m.start:m.end], how)
    kept: list[tuple[tuple[int, int, int], NearMatch]] = []
    for key, near in sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1] - kv[0][2], kv[0][1])):
        if not any(k[0] == key[0] and key[1] < k[2] and k[1] < key[2] for k, _ in kept):
            kept.append((key, near))
    return [near for _, near in sorted(kept, key=lambda kv: kv[0])]


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
