"""Lexicon detector (pipeline/text/matcher.py) on shipped and hand-made rule sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import default_config
from pipeline.records import AGENT, CUSTOMER, MIXED, UNKNOWN, CallEvidence, Hit, Utterance, Word
from pipeline.text.matcher import LexiconMatcher, build_matcher, detect_phrases, example_evidence, run_examples
from pipeline.text.rules import load_rules

CONFIG = default_config()
TEXT = CONFIG.text  # the typed [text] section: fuzzy on, fuzzy_confidence 0.6, suspects never fatal


@pytest.fixture(scope="module")
def matcher() -> LexiconMatcher:
    return build_matcher(load_rules(), TEXT)


def rule_hits(m: LexiconMatcher, text: str, role: str = AGENT, rule: str | None = None) -> list[Hit]:
    hits = [h for h in detect_phrases(example_evidence(text, role), m, TEXT) if h.match_type != "absence"]
    return [h for h in hits if rule is None or h.rule_id == rule]


def call(*utts: Utterance, duration_s: float = 60.0, roles: tuple[str, ...] = (AGENT, CUSTOMER)) -> CallEvidence:
    return CallEvidence("c1", duration_s, roles, utterances=utts)


def test_shipped_examples_all_pass(matcher: LexiconMatcher) -> None:
    assert run_examples(matcher, TEXT) == []


def test_wei_token_boundary(matcher: LexiconMatcher) -> None:
    assert [h.matched_text for h in rule_hits(matcher, "喂,你听到没有", rule="forbidden.wei")] == ["喂"]
    assert rule_hits(matcher, "宝宝喂养的问题", rule="forbidden.wei") == []


def test_short_rule_does_not_fire_inside_longer_word(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('''version = "t1"
[[rules]]
id = "t.shenjing"
name_zh = "神经"
name_en = "nerve"
category = "forbidden_phrase"
severity = "non_fatal"
error_class = "customer"
role = "agent"
phrases = ["神经"]
examples_match = ["神经紧张", "这是神经"]
examples_no_match = ["神经病", "你是神经病吧"]
''', encoding="utf-8")
    m = build_matcher(load_rules(tmp_path), TEXT)
    assert run_examples(m, TEXT) == []
    assert rule_hits(m, "你是神经病吧") == []


def test_dont_know_excused_when_followed_by_offer(matcher: LexiconMatcher) -> None:
    assert len(rule_hits(matcher, "这个我不清楚", rule="forbidden.dont_know")) == 1
    assert rule_hits(matcher, "这个我不清楚,我帮您查询一下", rule="forbidden.dont_know") == []
    # across utterances: followed within 10 s excuses, after 30 s does not
    near = call(Utterance(AGENT, 5, 6, "我不清楚"), Utterance(AGENT, 8, 10, "我帮您查询一下"))
    far = call(Utterance(AGENT, 5, 6, "我不清楚"), Utterance(AGENT, 40, 42, "我帮您查询一下"))
    other_role = call(Utterance(AGENT, 5, 6, "我不清楚"), Utterance(CUSTOMER, 7, 9, "我帮您查询一下"))
    m = matcher
    assert not [h for h in detect_phrases(near, m, TEXT) if h.rule_id == "forbidden.dont_know"]
    assert [h for h in detect_phrases(far, m, TEXT) if h.rule_id == "forbidden.dont_know"]
    assert [h for h in detect_phrases(other_role, m, TEXT) if h.rule_id == "forbidden.dont_know"]


def test_sorry_only_with_refusal(matcher: LexiconMatcher) -> None:
    assert rule_hits(matcher, "对不起让您久等了", rule="shirking.sorry_refusal") == []
    assert len(rule_hits(matcher, "对不起,我没有这个权限", rule="shirking.sorry_refusal")) == 1
    assert len(rule_hits(matcher, "对不起让您久等了", rule="apology.used")) == 1


def test_role_scope(matcher: LexiconMatcher) -> None:
    assert len(rule_hits(matcher, "你是不是神经病啊", AGENT, "redline.abuse")) == 1
    assert rule_hits(matcher, "你是不是神经病啊", CUSTOMER, "redline.abuse") == []
    assert len(rule_hits(matcher, "你耳朵聋啦", CUSTOMER, "customer.insult")) == 1
    assert rule_hits(matcher, "你耳朵聋啦", AGENT, "customer.insult") == []


def test_mono_gives_unknown_role(matcher: LexiconMatcher) -> None:
    hits = detect_phrases(call(Utterance(MIXED, 1, 3, "你这话什么意思"), roles=(MIXED,)), matcher, TEXT)
    red = [h for h in hits if h.rule_id == "redline.counter_question"]
    assert len(red) == 1 and red[0].role == UNKNOWN and "mono" in red[0].detail


def test_times_and_confidence_from_words(matcher: LexiconMatcher) -> None:
    utt = Utterance(AGENT, 10.0, 13.0, "你才聋了吧", words=(
        Word("你", 10.0, 10.3, 0.9), Word("才", 10.3, 10.6, 0.7), Word("聋了", 10.6, 11.2, 0.8),
        Word("吧", 11.2, 11.5, 0.99)))
    [hit] = [h for h in detect_phrases(call(utt), matcher, TEXT) if h.rule_id == "redline.abuse"]
    assert (hit.start_s, hit.end_s) == (10.0, 11.2)
    assert hit.confidence == pytest.approx((0.9 + 0.7 + 0.8 + 0.8) / 4)
    assert hit.severity == "fatal" and hit.match_type == "exact" and hit.matched_text == "你才聋了"


def test_suspect_never_fatal_unless_configured(matcher: LexiconMatcher) -> None:
    utt = Utterance(AGENT, 1, 3, "你去死吧", suspect=True, suspect_reason="low logprob")
    [hit] = [h for h in detect_phrases(call(utt), matcher, TEXT) if h.rule_id == "redline.abuse"]
    assert hit.suspect and hit.severity == "non_fatal" and "suspect" in hit.detail
    allow = TEXT.model_copy(update={"suspect_can_raise_fatal": True})
    [hit] = [h for h in detect_phrases(call(utt), matcher, allow) if h.rule_id == "redline.abuse"]
    assert hit.severity == "fatal"


def test_fuzzy_homophone_with_lower_confidence(matcher: LexiconMatcher) -> None:
    [hit] = rule_hits(matcher, "你是神京病吧", rule="redline.abuse")
    assert hit.match_type == "fuzzy" and hit.confidence == pytest.approx(0.6)
    off = build_matcher(load_rules(), TEXT.model_copy(update={"fuzzy": False}))
    assert rule_hits(off, "你是神京病吧", rule="redline.abuse") == []


CITY_RULE = '''version = "t1"
[[rules]]
id = "t.lab"
name_zh = "十堰市"
name_en = "city"
category = "forbidden_phrase"
severity = "non_fatal"
error_class = "none"
role = "any"
fuzzy = true
phrases = ["十堰市"]
examples_match = ["我在十堰市", "十堰市的"]
examples_no_match = ["我在北京", "去上海"]
'''


def test_fuzzy_common_word_guard(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(CITY_RULE, encoding="utf-8")
    m = build_matcher(load_rules(tmp_path), TEXT)
    assert run_examples(m, TEXT) == []
    assert rule_hits(m, "我去实验室") == []  # homophone but a common word
    assert len(rule_hits(m, "我在十堰市")) == 1


def test_count_rule(matcher: LexiconMatcher) -> None:
    few = rule_hits(matcher, "这个问题那个我看一下", rule="verbal_tic.fillers")
    many = rule_hits(matcher, "这个这个那个这个那个就是这个", rule="verbal_tic.fillers")
    assert few == [] and len(many) == 1 and many[0].match_type == "count"
    assert "count=6" in many[0].detail


def test_opening_and_closing_absence(matcher: LexiconMatcher) -> None:
    good = call(Utterance(AGENT, 1, 3, "您好很高兴为您服务"), Utterance(CUSTOMER, 4, 8, "我查话费"),
                Utterance(AGENT, 50, 55, "感谢您的来电再见"), duration_s=60)
    bad = call(Utterance(AGENT, 20, 23, "您好"), Utterance(AGENT, 30, 32, "好的"), duration_s=60)
    assert not [h for h in detect_phrases(good, matcher, TEXT) if h.match_type == "absence"]
    absent = {h.rule_id: h for h in detect_phrases(bad, matcher, TEXT) if h.match_type == "absence"}
    assert set(absent) == {"opening.greeting", "closing.script"}
    assert (absent["opening.greeting"].start_s, absent["opening.greeting"].end_s) == (0.0, 15.0)
    assert (absent["closing.script"].start_s, absent["closing.script"].end_s) == (40.0, 60.0)
    only_customer = call(Utterance(CUSTOMER, 1, 3, "喂"))
    assert not [h for h in detect_phrases(only_customer, matcher, TEXT) if h.match_type == "absence"]


def test_empty_traditional_and_long(matcher: LexiconMatcher) -> None:
    assert detect_phrases(call(), matcher, TEXT) == []
    assert rule_hits(matcher, "，。！") == []
    assert [h.rule_id for h in rule_hits(matcher, "妳這話什麼意思", rule="redline.counter_question")]
    long = tuple(Utterance(AGENT, i * 2.0, i * 2.0 + 1.5, "您好这边帮您处理一下") for i in range(1000))
    long += (Utterance(AGENT, 2001.0, 2002.0, "你去死"),)
    hits = detect_phrases(call(*long, duration_s=2010.0), matcher, TEXT)
    red = [h for h in hits if h.rule_id == "redline.abuse"]
    assert len(red) == 1 and red[0].start_s == 2001.0
    assert detect_phrases(call(*long, duration_s=2010.0), matcher, TEXT) == hits  # deterministic


def test_rules_read_text_whose_pii_was_masked_one_stage_before(matcher: LexiconMatcher) -> None:
    from pipeline.analysis import protect_pii

    words = (Word("你这话什么意思", 0.0, 1.75, 0.9), Word("我的手机", 1.75, 2.75, 0.9),
             Word("13812345678", 2.75, 5.5, 0.8))
    raw = call(Utterance(AGENT, 0.0, 5.5, "你这话什么意思我的手机13812345678", words))
    # the matcher itself no longer masks: it reports what it is given...
    [unmasked] = [h for h in detect_phrases(raw, matcher, TEXT) if h.rule_id == "redline.counter_question"]
    assert "1381234" in unmasked.context  # (the context is 12 characters either side)
    # ...and the analysis masks personal data before any detector reads the text
    masked, spans = protect_pii(raw.utterances, CONFIG)
    assert masked[0].text == "你这话什么意思我的手机" + "*" * 11 and [p.kind for p in spans[0]] == ["mobile"]
    assert [w.text for w in masked[0].words] == ["你这话什么意思", "我的手机", "*" * 11]
    evidence = CallEvidence(raw.call_id, raw.duration_s, raw.roles, utterances=masked)
    [hit] = [h for h in detect_phrases(evidence, matcher, TEXT) if h.rule_id == "redline.counter_question"]
    assert hit.context.startswith("你这话什么意思我的手机") and not any(c.isdigit() for c in hit.context)
    assert (hit.start_s, hit.end_s, hit.matched_text) == (0.0, 1.75, "你这话什么意思")  # from the word timings
    assert (unmasked.start_s, unmasked.end_s) == (0.0, 1.75)


def test_common_word_frequency_comes_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(CITY_RULE, encoding="utf-8")
    guarded = build_matcher(load_rules(tmp_path), TEXT)
    assert rule_hits(guarded, "我去实验室") == []  # 实验室 (shi yan shi) is common: not a homophone hit
    # with a frequency no word reaches, every homophone counts
    unguarded = build_matcher(load_rules(tmp_path), TEXT.model_copy(update={"fuzzy_common_word_freq": 10**9}))
    [hit] = rule_hits(unguarded, "我去实验室")
    assert hit.match_type == "fuzzy" and hit.matched_text == "实验室"


def test_insults_curated(matcher: LexiconMatcher) -> None:
    assert len(rule_hits(matcher, "你这个笨蛋", rule="redline.insult.agent")) == 1
    assert rule_hits(matcher, "乳制品性价比很高", rule="redline.insult.agent") == []


def test_apology_required_only_after_complaint(matcher: LexiconMatcher) -> None:
    def missing(*utts: Utterance) -> list[Hit]:
        return [h for h in detect_phrases(call(*utts), matcher, TEXT) if h.rule_id == "apology.missing_after_complaint"]

    complaint = Utterance(CUSTOMER, 10, 13, "你们服务太差了")
    assert missing(Utterance(AGENT, 1, 3, "您好"), complaint) != []
    [hit] = missing(complaint, Utterance(AGENT, 14, 16, "您说"))
    assert hit.start_s == pytest.approx(10 + 4 * 3 / 7, abs=1e-3) and hit.match_type == "absence"
    assert missing(complaint, Utterance(AGENT, 14, 16, "非常抱歉")) == []
    assert missing(Utterance(AGENT, 1, 3, "对不起"), complaint) != []  # apology before the complaint
    assert missing(Utterance(AGENT, 1, 3, "您好"), Utterance(CUSTOMER, 4, 6, "我查话费")) == []
