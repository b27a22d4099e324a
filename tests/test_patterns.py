"""Rule regexes: Python ``re`` meaning, linear-time RE2 matching (pipeline/text/patterns.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.errors import LexiconError
from pipeline.text.fuzzy import SoundAlike
from pipeline.text.matcher import build_matcher, detect_phrases, example_evidence
from pipeline.text.patterns import PatternError, compile_pattern, compile_sound_alike
from pipeline.text.rules import load_rules

SHIPPED = Path(__file__).resolve().parents[1] / "lexicons" / "qa_rules.toml"

# -- the same matches as Python's re ------------------------------------------------------
# Characters where Python's Unicode classes and ASCII-minded engines disagree: full-width and
# Arabic-Indic digits, CJK, ideographic space, accented letters, a newline, an underscore.
ALPHABET = "abs你好请1１٣_ \u3000éÉſ\u212ak.-\nA"
ATOMS = st.sampled_from([re.escape(c) for c in ALPHABET] + [
    ".", r"\w", r"\d", r"\s", r"\W", r"\D", r"\S", "[ab你]", "[^a好]", "[a-c]", r"[\d_]", r"[^\s]",
    r"[\w.]", r"[\D]", "[１-９]", r"\.",
])


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(lambda p: p[0] + p[1]),
        pair.map(lambda p: f"(?:{p[0]}|{p[1]})"),
        children.map(lambda c: f"({c})"),
        st.tuples(children, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{2,}", "*?", "+?", "??", "{1,2}?"]))
        .map(lambda p: f"(?:{p[0]}){p[1]}"),
    )


PATTERNS = st.tuples(st.sampled_from(["", "(?i)", "(?s)", "(?m)", "(?a)"]),
                     st.sampled_from(["", "^", r"\A"]),
                     st.recursive(ATOMS, _combine, max_leaves=6),
                     st.sampled_from(["", "$", r"\Z"])).map("".join)
TEXTS = st.text(alphabet=ALPHABET, max_size=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATTERNS, TEXTS)
def test_same_matches_as_python_re(pattern, text):
    python = re.compile(pattern)
    try:
        linear = compile_pattern(pattern)
    except PatternError as exc:
        assert "matches empty text" in str(exc)
        assert python.fullmatch("") is not None
        return
    if "$" in pattern and "(?m)" not in pattern:
        # Python's $ also matches before a final newline; RE2's only at the end. Rules match
        # normalised text, which never holds a newline (documented in pipeline/text/patterns.py).
        assume(not text.endswith("\n"))
    expected = [(m.start(), m.end()) for m in python.finditer(text)]
    assert [(m.start(), m.end()) for m in linear.finditer(text)] == expected, linear.re2_source


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATTERNS, TEXTS)
def test_the_paired_form_without_sound_alikes_matches_as_python_re(pattern, text):
    """compile_sound_alike with no run long enough to be heard as sound-alikes is the regex itself."""
    assume("\n" not in text)  # rules match normalised text: no newline
    # one SoundAlike for the regex and the text, as the matcher keeps one: images are numbered in the
    # order characters are first seen, so two instances give 你 different images ("好你" against "你")
    alike = SoundAlike()
    try:
        python, paired = re.compile(pattern), compile_sound_alike(pattern, alike.image, 10**6)
    except PatternError:
        return  # empty matches and word boundaries (asserted elsewhere)
    found = [(m.start() // 2, m.end() // 2) for m in paired.finditer(alike.paired(text))]
    assert found == [(m.start(), m.end()) for m in python.finditer(text)], paired.re2_source


def test_a_long_literal_run_matches_sound_alikes_and_the_rest_stays_exact():
    alike = SoundAlike()
    pattern = compile_sound_alike("便宜(你)?(就)?去别家", alike.image, 3)

    def spans(text: str) -> list[str]:
        return [text[m.start() // 2:m.end() // 2] for m in pattern.finditer(alike.paired(text))]

    assert spans("别加便宜就去别加") == ["便宜就去别加"]  # 去别家 and 去别加: qu bie jia
    assert spans("便宜就去别家吧") == ["便宜就去别家"]
    assert spans("便意就去别加") == []  # 便宜 is a run of 2: exact
    assert spans("便宜就去别的") == []
    # a match starts on a character, never between a character and its image
    excluded = compile_sound_alike("[^a好]", alike.image, 3)
    assert [(m.start(), m.end()) for m in excluded.finditer(alike.paired("ab"))] == [(2, 4)]
    with pytest.raises(PatternError, match="word boundary"):
        compile_sound_alike(r"(?a)\bvip", alike.image, 3)


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    (r"\w+", "请问您贵姓 ok", ["请问您贵姓", "ok"]),  # \w includes Chinese, as in Python
    (r"\d+", "工号１２３和456", ["１２３", "456"]),  # full-width digits are digits
    (r"(?i)vip", "VIP客户", ["VIP"]),
    ("那你去买.{1,8}好了", "那你去买别家的好了", ["那你去买别家的好了"]),
])
def test_python_meaning_is_kept(pattern, text, expected):
    assert [m.group(0) for m in compile_pattern(pattern).finditer(text)] == expected


# -- linear time ---------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|a)+$", r"(a|aa)+$", r"(\w+\s?)+$", r"(.*a){12}"])
def test_catastrophic_patterns_run_in_linear_time(pattern):
    # Python's re needs minutes to years for these on 40 a's and a b; RE2 microseconds.
    linear = compile_pattern(pattern)
    for n in (40, 4000):
        started = time.perf_counter()
        list(linear.finditer("a" * n + "b"))
        assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a)\1", "uses a backreference"),
    (r"(?P<x>a)(?P=x)", "uses a backreference"),
    (r"(?=a)a", "uses a lookahead or lookbehind"),
    (r"(?<!不)满意", "uses a negative lookahead or lookbehind"),
    (r"(a)?(?(1)b|c)", "uses a conditional"),
    (r"(?>a+)b", "uses an atomic group"),
    (r"a++b", "uses a possessive repeat"),
    (r"\b您好", r"uses a Unicode word boundary (\b or \B"),
    (r"[^\Wa]", r"\W or \S inside a negated [^...] class"),
    (r"a{1001}", "a repeat count above 1000"),
    (r"(?:a{1000}){1000}", "cannot be compiled for linear-time matching"),
    (r"您?", "matches empty text"),
    ("(", "is not a valid regex: missing )"),
])
def test_what_linear_matching_cannot_do_is_refused_with_a_reason(pattern, reason):
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def _rules_dir(tmp_path: Path, regex: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8") + f'''
[[rules]]
id = "t_regex"
name_zh = "测试"
name_en = "test"
category = "forbidden_phrase"
severity = "non_fatal"
error_class = "customer"
role = "agent"
regexes = ['{regex}']
examples_match = ["aaab", "ab"]
examples_no_match = ["b", "c"]
'''
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "qa_rules.toml").write_text(text, encoding="utf-8")
    return tmp_path / "rules"


def test_rules_check_refuses_an_unsupported_regex_naming_the_line(tmp_path):
    directory = _rules_dir(tmp_path, r"(?<=a)b")
    with pytest.raises(LexiconError) as info:
        load_rules(directory)
    line = next(i for i, text in enumerate((directory / "qa_rules.toml").read_text().splitlines(), 1)
                if text.startswith("regexes = ['(?<=a)b']"))
    assert info.value.path == f"{directory}/qa_rules.toml:{line}"
    assert "rule #" in info.value.reason and "bad regex" in info.value.reason
    assert "lookahead or lookbehind" in info.value.reason


def test_catastrophic_rule_matches_the_issue_text_at_once(tmp_path):
    # Before: `(a+)+$` passed `rules check` and `rules match` never returned on 40 a's and a b.
    # Matching folds repeated characters ("aaa" -> "a", pipeline/text/turns.py), so the rule here
    # is one that backtracks on text with no repeats: Python's re needs about 2**40 steps (hours)
    # for `(ab|a|b)+$` on "abab...abc".
    rules = load_rules(_rules_dir(tmp_path, r"(ab|a|b)+$"))
    config = load_config()
    matcher = build_matcher(rules, config.text)
    started = time.perf_counter()
    hits = detect_phrases(example_evidence("ab" * 40 + "c", "agent"), matcher, config.text)
    assert time.perf_counter() - started < 5
    assert not [h for h in hits if h.rule_id == "t_regex"]
    hits = detect_phrases(example_evidence("ab" * 40, "agent"), matcher, config.text)
    assert [h.matched_text for h in hits if h.rule_id == "t_regex"] == ["ab" * 40]


def test_shipped_regexes_match_as_python_did_on_their_examples():
    rules = [r for r in load_rules().rules if r.regexes]
    assert len(rules) >= 3
    for rule in rules:
        for pattern in rule.regexes:
            linear = compile_pattern(pattern)
            for text in (*rule.examples_match, *rule.examples_no_match):
                expected = [m.span() for m in re.finditer(pattern, text)]
                assert [(m.start(), m.end()) for m in linear.finditer(text)] == expected, (rule.id, text)
