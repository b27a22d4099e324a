"""Rule-set loading and validation (pipeline/text/rules.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import LexiconError
from pipeline.records import CATEGORIES
from pipeline.text.rules import load_phrase_list, load_rules, parse_rule_file

GOOD_RULE = '''
[[rules]]
id = "t.one"
name_zh = "测试"
name_en = "Test"
category = "forbidden_phrase"
severity = "non_fatal"
error_class = "customer"
role = "agent"
phrases = ["不知道"]
examples_match = ["我不知道", "不知道啊"]
examples_no_match = ["我知道", "好的"]
'''


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_shipped_rules_load_with_categories_and_examples() -> None:
    rules = load_rules()
    assert len(rules.rules) >= 15
    assert all(r.category in CATEGORIES for r in rules.rules)
    assert all(len(r.examples_match) >= 2 and len(r.examples_no_match) >= 2 for r in rules.rules)
    assert rules.version == load_rules().version  # stable
    ids = {r.id for r in rules.rules}
    assert {"redline.abuse", "forbidden.wei", "opening.greeting", "redline.insult.agent"} <= ids


def test_phrase_lists_for_timing_detectors() -> None:
    assert "请稍等" in load_phrase_list("hold_announcement")
    assert {"嗯", "对", "好的", "是的"} <= set(load_phrase_list("backchannel"))
    with pytest.raises(LexiconError, match="no phrase list 'nope'"):
        load_phrase_list("nope")


def test_version_changes_with_content(tmp_path: Path) -> None:
    a = load_rules(write(tmp_path, 'version = "1"\n' + GOOD_RULE)).version
    b = load_rules(write(tmp_path, 'version = "1"\n' + GOOD_RULE.replace("我知道", "我们知道"))).version
    assert a != b and a.startswith("1-")


@pytest.mark.parametrize(("change", "message"), [
    (("category = \"forbidden_phrase\"", "category = \"nonsense\""), r"r.toml:7: rule #1 key 'category'"),
    (("severity = \"non_fatal\"", "severity = \"bad\""), r"r.toml:8: rule #1 key 'severity'"),
    (("role = \"agent\"", "role = \"boss\""), r"key 'role'"),
    (("phrases = [\"不知道\"]", "phrases = []"), r"key 'phrases'"),
    (("examples_no_match = [\"我知道\", \"好的\"]", "examples_no_match = [\"我知道\"]"), r"examples"),
    (("phrases = [\"不知道\"]", "phrases = [\"不知道\"]\nregexes = [\"(\"]"), r"key 'regexes': bad regex"),
    (("phrases = [\"不知道\"]", "phrases = [\"不知道\"]\nspeling = 1"), r"key 'speling': unknown key"),
    (("phrases = [\"不知道\"]", "phrases = [\"不知道\"]\nmin_count = 0"), r"key 'min_count'"),
    (("phrases = [\"不知道\"]", "phrases = [\"不知道\"]\nwindow = \"first\""), r"key 'window_s'"),
])
def test_malformed_rules_name_file_line_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = 'version = "1"\n' + GOOD_RULE.replace(*change)
    with pytest.raises(LexiconError, match=message):
        load_rules(write(tmp_path, text))


def test_missing_version_bad_toml_duplicates_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match="key 'version'"):
        parse_rule_file("x.toml", GOOD_RULE)
    with pytest.raises(LexiconError, match="x.toml: invalid TOML"):
        parse_rule_file("x.toml", "version = ")
    write(tmp_path, 'version = "1"\n' + GOOD_RULE, "a.toml")
    write(tmp_path, 'version = "2"\n' + GOOD_RULE, "b.toml")
    with pytest.raises(LexiconError, match="duplicate rule id 't.one'"):
        load_rules(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LexiconError, match="no \\*.toml"):
        load_rules(write(empty, "", "note.txt"))
    with pytest.raises(LexiconError, match="not found"):
        load_rules(tmp_path / "missing")


# -- optional parts and excusing regexes (issue 15) -------------------------------------
def test_optional_parts_expand_into_every_spelling(tmp_path: Path) -> None:
    from pipeline.text.phrases import expand_phrase

    assert expand_phrase("(你)烦不烦") == ("你烦不烦", "烦不烦")
    assert expand_phrase("这不归我(们)管") == ("这不归我们管", "这不归我管")
    assert expand_phrase("(我)没(有)这个权限") == ("我没有这个权限", "我没这个权限", "没有这个权限", "没这个权限")
    assert expand_phrase("不知道") == ("不知道",)
    text = 'version = "1"\n' + GOOD_RULE.replace('phrases = ["不知道"]', 'phrases = ["(我)不知道", "不知道"]')
    [rule] = load_rules(write(tmp_path, text)).rules
    assert rule.phrases == ("我不知道", "不知道")  # duplicates removed, order kept


@pytest.mark.parametrize(("phrase", "message"), [
    ("(你烦不烦", "unbalanced or nested"),
    ("你)烦不烦", "unbalanced or nested"),
    ("((你))烦", "unbalanced or nested"),
    ("()烦不烦", "empty optional part"),
    ("(你)", "nothing is left"),
    ("(a)(b)(c)(d)烦", "more than 3 optional parts"),
])
def test_bad_optional_parts_name_the_key(tmp_path: Path, phrase: str, message: str) -> None:
    text = 'version = "1"\n' + GOOD_RULE.replace('phrases = ["不知道"]', f'phrases = ["{phrase}"]')
    with pytest.raises(LexiconError, match=f"r.toml:\\d+: rule #1 key 'phrases': phrase .*{message}"):
        load_rules(write(tmp_path, text))


def test_allowed_longer_regexes_are_checked_like_regexes(tmp_path: Path) -> None:
    good = 'version = "1"\n' + GOOD_RULE.replace('phrases = ["不知道"]',
                                                 'phrases = ["不知道"]\nallowed_longer_regexes = ["不知道您"]')
    [rule] = load_rules(write(tmp_path, good)).rules
    assert rule.allowed_longer_regexes == ("不知道您",)
    bad = good.replace('["不知道您"]', '["(不知道"]')
    with pytest.raises(LexiconError, match="key 'allowed_longer_regexes': bad regex"):
        load_rules(write(tmp_path, bad))
    unsafe = good.replace('["不知道您"]', '["(?<=我)不知道"]')  # lookbehind: RE2 cannot run it in linear time
    with pytest.raises(LexiconError, match="key 'allowed_longer_regexes': bad regex"):
        load_rules(write(tmp_path, unsafe))
