"""Scorecard arithmetic: deductions, caps, fatal overrides, COPC classes, grades."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.records import Hit
from pipeline.scoring.scorecard import load_scorecard, parse_scorecard, score_call

CARD = """
version = "test-1"
pass_score = 80.0
fatal_score = 0.0
[grades]
A = 90.0
B = 80.0
C = 0.0
[sections.etiquette]
name = "服务礼仪"
weight = 1.0
[sections.skill]
name = "服务技能"
weight = 3.0
[[items]]
id = "tic"
name = "口头禅"
section = "etiquette"
categories = ["verbal_tic"]
deduction = 10.0
max_deduction = 25.0
[[items]]
id = "promise"
name = "乱承诺"
section = "skill"
categories = ["rash_promise"]
rule_ids = ["promise.*"]
deduction = 20.0
copc = "business"
[[items]]
id = "abuse"
name = "辱骂"
section = "etiquette"
categories = ["redline_abuse"]
fatal = true
copc = "customer"
[[items]]
id = "clarity"
name = "吐字清晰"
section = "skill"
feature = "asr_word_prob_mean"
min = 0.5
deduction = 8.0
"""


def _hit(category: str, rule: str = "r.1", severity: str = "non_fatal", start_s: float = 1.0,
         suspect: bool = False, error_class: str = "none") -> Hit:
    return Hit("c1", rule, "v1", category, severity, error_class, "agent", start_s, start_s + 0.5, "exact",
               suspect=suspect)


@pytest.fixture()
def card():
    return parse_scorecard(CARD, "test.toml")


def test_clean_call_scores_100(card) -> None:
    result = score_call([], {}, card)
    assert result.score == 100.0 and result.grade == "A" and result.passed and not result.fatal
    assert (result.outcome, result.outcome_reasons) == ("pass", ())
    assert result.failed_items == () and all(result.copc.values()) and not result.redline


def test_deductions_are_weighted_and_capped(card) -> None:
    hits = [_hit("verbal_tic", start_s=t) for t in (1, 2, 3)]  # 3 x 10 capped at 25
    result = score_call(hits, {}, card)
    assert result.section_scores["etiquette"] == 75.0 and result.section_scores["skill"] == 100.0
    assert result.score == pytest.approx((75 * 1 + 100 * 3) / 4)  # 93.75
    assert result.failed_items[0].deduction == 25.0
    assert set(result.failed_items[0].hit_ids) == {h.hit_id for h in hits}


def test_rule_id_patterns_and_copc_class(card) -> None:
    hits = [_hit("shirking", rule="promise.refund"), _hit("rash_promise", start_s=4)]
    result = score_call(hits, {}, card)
    assert result.section_scores["skill"] == 60.0
    assert result.score == pytest.approx((100 + 60 * 3) / 4)  # 70 -> fails the pass score, grade C
    assert not result.passed and result.grade == "C" and not result.fatal
    assert (result.outcome, result.outcome_reasons) == ("fail", ("scorecard_fail",))
    assert result.copc == {"customer": True, "business": False, "compliance": True}


def test_fatal_item_overrides_score(card) -> None:
    hits = [_hit("redline_abuse", severity="fatal")]
    result = score_call(hits, {}, card)
    assert result.fatal and result.score == 0.0 and not result.passed and result.redline
    assert result.copc["customer"] is False
    assert result.failed_items[0].item_id == "abuse" and result.failed_items[0].hit_ids == (hits[0].hit_id,)


def test_any_fatal_hit_fails_even_unlisted(card) -> None:
    hit = _hit("hangup", rule="hangup.first", severity="fatal", error_class="compliance")
    result = score_call([hit], {}, card)
    assert result.fatal and result.score == 0.0
    assert result.failed_items[0].item_id == "fatal_hit:hangup.first"
    assert result.copc["compliance"] is False


def test_suspect_hits_do_not_count(card) -> None:
    result = score_call([_hit("redline_abuse", severity="fatal", suspect=True)], {}, card)
    assert result.score == 100.0 and not result.fatal and not result.redline


def test_info_hits_do_not_deduct(card) -> None:
    assert score_call([_hit("verbal_tic", severity="info")], {}, card).score == 100.0


def test_feature_items(card) -> None:
    result = score_call([], {"asr_word_prob_mean": 0.3}, card)
    assert result.section_scores["skill"] == 92.0 and "asr_word_prob_mean" in result.failed_items[0].reason
    assert score_call([], {"asr_word_prob_mean": None}, card).score == 100.0


def test_scorecard_errors_name_the_problem(tmp_path) -> None:
    # (callqa 0.1's pass_score override is gone: the pass score lives in the scorecard file only)
    with pytest.raises(ConfigError, match="unknown categories"):
        parse_scorecard(CARD.replace('["verbal_tic"]', '["nope"]'))
    with pytest.raises(ConfigError, match="unknown section"):
        parse_scorecard(CARD.replace('section = "skill"\ncategories = ["rash', 'section = "x"\ncategories = ["rash'))
    with pytest.raises(ConfigError, match="missing.toml: scorecard file not found"):
        load_scorecard(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_scorecard("version = ")
    with pytest.raises(ConfigError, match="outcome.no_speech"):
        parse_scorecard(CARD + '[outcome]\nno_speech = "ignore"\n')


def test_shipped_scorecard_weights_from_domain() -> None:
    card = load_scorecard()
    weights = {s.name: s.weight for s in card.sections.values()}
    assert weights == {"服务礼仪": 3.0, "服务技能": 11.0, "服务意识": 4.0, "综合评价": 2.0}
    assert {i.id for i in card.items if i.fatal} >= {"redline_abuse", "arguing", "hangup"}
    result = score_call([_hit("forbidden_phrase")], {}, card)
    assert result.score == pytest.approx((80 * 3 + 100 * 11 + 100 * 4 + 100 * 2) / 20)


def test_callqa_score_rescores_a_store_and_keeps_the_scorecard(cli, tmp_path) -> None:
    from conftest import scored_call

    from pipeline.records import CallEvidence
    from pipeline.store import Store

    store = Store(tmp_path / "store", create=True)
    results = []
    for i, categories in enumerate([[], ["verbal_tic"], ["redline_abuse"]]):
        call_id = f"call{i}"
        hits = [Hit(call_id, f"rule.{c}", "rules-test", c, "fatal" if c == "redline_abuse" else "non_fatal", "none",
                    "agent", 1.0, 2.0, "exact") for c in categories]
        results.append(scored_call(CallEvidence(call_id, 60.0, ("agent", "customer")), hits))
    store.commit(results)
    assert [r["score"] for r in store.read("features").to_pylist()] == [100.0, (95 * 3 + 100 * 17) / 20, 0.0]
    strict = tmp_path / "strict.toml"
    text = (Path(__file__).resolve().parents[1] / "config" / "scorecard.toml").read_text(encoding="utf-8")
    strict.write_text(text.replace('version = "callcentre-2026.11.1"', 'version = "strict-2"')
                      .replace("deduction = 5.0\nmax_deduction = 15.0", "deduction = 100.0\nmax_deduction = 100.0"),
                      encoding="utf-8")
    result = cli("score", tmp_path / "store", "--scorecard", strict)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ("scored 3 calls with scorecard strict-2: 2 pass, 1 fail; "
                                             "grades A 1, B 1, D 1")
    assert "1 red-line call(s)" in result.stdout
    rows = {r["call_id"]: r for r in store.read("features").to_pylist()}
    assert len(rows) == 3 and {r["scorecard_version"] for r in rows.values()} == {"strict-2"}
    assert rows["call0"]["score"] == 100.0 and rows["call0"]["outcome"] == "pass"
    assert rows["call1"]["score"] == pytest.approx((0 * 3 + 100 * 17) / 20)  # the tic now costs the whole section
    assert (rows["call1"]["grade"], rows["call1"]["outcome"]) == ("B", "pass")  # 85 >= the pass score 80
    assert rows["call2"]["score"] == 0.0 and rows["call2"]["failed_hit_ids"]
    # the store remembers its scorecard: a plain `callqa score` keeps scoring with strict-2
    again = cli("score", tmp_path / "store")
    assert again.exit_code == 0 and "with scorecard strict-2" in again.stdout


def test_callqa_score_with_a_missing_scorecard_is_a_usage_error(cli, tmp_path) -> None:
    from conftest import scored_call

    from pipeline.records import CallEvidence
    from pipeline.store import Store

    store = Store(tmp_path / "store", create=True)
    store.commit([scored_call(CallEvidence("call0", 60.0, ("agent", "customer")))])
    bad = cli("score", tmp_path / "store", "--scorecard", tmp_path / "no.toml")
    assert bad.exit_code == 2 and "scorecard file not found" in bad.stderr
    assert {r["scorecard_version"] for r in store.read("features").to_pylist()} == {load_scorecard().version}


def test_outcome_is_the_worst_that_applies(card) -> None:
    model_only = Hit("c1", "model.redline_text", "m", "redline_abuse", "info", "customer", "agent", 1.0, 2.0, "model")
    review = score_call([model_only], {}, card)
    assert (review.outcome, review.outcome_reasons, review.passed) == ("needs_review", ("redline_model_only",), False)
    assert review.score == 100.0 and review.redline  # the model alone does not fail the scorecard
    lexicon = _hit("redline_abuse", severity="fatal")
    both = score_call([model_only, lexicon], {}, card)  # a lexicon rule agrees: a plain fail
    assert (both.outcome, both.outcome_reasons) == ("fail", ("scorecard_fail",))
    thin = score_call([], {"agent_coverage": 0.5, "customer_coverage": 0.9}, card)
    assert (thin.outcome, thin.outcome_reasons, thin.score) == ("needs_listening", ("low_coverage:agent",), 100.0)
    worst = score_call([model_only], {"agent_coverage": 0.5}, card)
    assert (worst.outcome, worst.outcome_reasons) == ("needs_review", ("redline_model_only", "low_coverage:agent"))


def test_a_hostile_turn_only_the_model_heard_goes_to_review_whatever_its_class() -> None:
    # "你问我，我问谁去": the model is sure it is hostile and calls it shirking, not a red line
    card = load_scorecard()  # the shipped card: shirking deducts 20
    shirking = Hit("c1", "model.redline_text", "m", "shirking", "info", "customer", "agent", 1.0, 2.0, "model")
    alone = score_call([shirking], {}, card)
    assert (alone.outcome, alone.outcome_reasons) == ("needs_review", ("model_only:shirking",))
    assert alone.score >= card.pass_score and not alone.redline  # a deduction alone would pass it
    rule = Hit("c2", "shirking.policy", "m", "shirking", "non_fatal", "customer", "agent", 5.0, 6.0, "exact")
    confirmed = score_call([shirking, rule], {}, card)  # a rule heard shirking: its deduction stands
    assert "model_only:shirking" not in confirmed.outcome_reasons
    assert confirmed.outcome == ("pass" if confirmed.score >= card.pass_score else "fail")
    # the sound check read "我没有这个权限" into a turn Whisper wrote "…前线": review, like the model
    heard = Hit("c3", "shirking.policy", "m", "shirking", "info", "customer", "agent", 1.0, 2.0, "forced")
    assert score_call([heard], {}, card).outcome_reasons == ("unconfirmed:shirking",)
    assert score_call([heard, shirking], {}, card).outcome_reasons == ("unconfirmed:shirking",)
    assert score_call([heard, rule], {}, card).outcome_reasons in ((), ("scorecard_fail",))


def test_a_call_without_speech_has_no_score_and_needs_listening(card) -> None:
    silent = score_call([], {"speech_total_s": 0.0}, card)
    assert (silent.outcome, silent.outcome_reasons) == ("needs_listening", ("no_speech",))
    assert silent.score is None and silent.grade is None and not silent.passed
    strict = card.model_copy(update={"outcome": card.outcome.model_copy(update={"no_speech": "fail"})})
    assert score_call([], {"speech_total_s": 0.0}, strict).outcome == "fail"
    assert score_call([], {"speech_total_s": 12.0}, card).outcome == "pass"


def test_score_result_invariants() -> None:
    from pipeline.scoring.scorecard import ScoreResult

    def result(**change):
        values = {"scorecard_version": "v", "score": 90.0, "grade": "A", "passed": True, "fatal": False,
                  "redline": False, "failed_items": (), **change}
        return ScoreResult(**values)

    assert result().outcome == "pass" and result().passed
    with pytest.raises(ValueError, match="outside 0..100"):
        result(score=100.5)
    with pytest.raises(ValueError, match="not in"):
        result(outcome="maybe")
    with pytest.raises(ValueError, match="passed must be true exactly when the outcome is pass"):
        result(outcome="needs_review")
    with pytest.raises(ValueError, match="passed must be true exactly when the outcome is pass"):
        result(passed=False)
    frozen = result(section_scores={"a": 1.0})
    with pytest.raises(TypeError):
        frozen.section_scores["a"] = 2.0  # type: ignore[index]


def test_shipped_hangup_items_follow_severity() -> None:
    card = load_scorecard()
    estimated = score_call([_hit("hangup", rule="timing.agent_hung_up_first")], {}, card)
    assert not estimated.fatal and [f.item_id for f in estimated.failed_items] == ["hangup_first"]
    assert estimated.section_scores["awareness"] == 70.0
    known = score_call([_hit("hangup", rule="timing.agent_hung_up_first", severity="fatal")], {}, card)
    assert known.fatal and known.score == 0.0 and known.copc["customer"] is False
