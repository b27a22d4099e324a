"""The targeted second look (pipeline/text/second_look.py) with a scripted Whisper, and the call verdict it feeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import TableScorer, evidence_of, silent_call

from pipeline.analysis import Resources, analyse_evidence, text_hits
from pipeline.asr.transcribe import WhisperTranscriber
from pipeline.config import load_config
from pipeline.records import AGENT, SAMPLE_RATE_HZ, Hit, Utterance
from pipeline.text.redline_model import RULE_ID, RedlineTextModel, build_pipeline, score_utterances
from pipeline.text.second_look import candidates, recheck_model_hits, second_look

# the sound check (tests/test_sound_check.py) is off: it scores audio, which the scripted Whisper cannot
CONFIG = load_config().with_overrides({"asr": {"batched": False}, "text": {"sound_check": False}})


class ScriptedWhisper:
    """Stands in for faster-whisper's WhisperModel: answers each transcribe() with the next scripted text."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: np.ndarray, **options: Any) -> tuple[Iterator[Any], Any]:
        self.calls.append({"seconds": len(audio) / SAMPLE_RATE_HZ, **options})
        return iter([SimpleNamespace(text=self.texts.pop(0) if self.texts else "")]), None


@pytest.fixture(scope="module")
def resources() -> Resources:
    return Resources.load(CONFIG, transcriber=None, text=True)


def with_whisper(resources: Resources, whisper: ScriptedWhisper, config=CONFIG) -> Resources:
    from dataclasses import replace

    return replace(resources, transcriber=WhisperTranscriber(whisper, config.asr, "scripted@1"), config=config)


MISHEARD = Utterance(AGENT, 4.0, 6.0, "你是不是前经病啊")  # "神经病" heard as "前经病": one syllable off


def test_a_near_match_confirmed_by_the_second_decoding_is_a_hit(resources: Resources) -> None:
    whisper = ScriptedWhisper("你是不是神经病啊", "你是不是神经病啊")
    hits, looks = second_look(silent_call(), evidence_of(MISHEARD), [], whisper, resources.matcher, None, CONFIG)
    [hit] = hits
    assert hit.rule_id == "redline.abuse" and hit.severity == "fatal" and hit.match_type == "exact"
    assert (hit.start_s, hit.end_s) == (4.0, 6.0)  # the utterance it was heard in
    note = json.loads(hit.detail)
    assert note == {"second_look": "near", "first_heard": "前经病", "heard_again": "你是不是神经病啊"}
    hot, plain = whisper.calls  # with the phrase as hotwords, then without
    assert hot["beam_size"] == CONFIG.text.second_look_beam_size and hot["hotwords"] == "神经病 前经病"
    assert plain["hotwords"] is None
    assert hot["seconds"] == pytest.approx(2.0 + 2 * CONFIG.text.second_look_pad_s, abs=0.01)
    assert [(look.candidate.source, look.confirmed) for look in looks] == [("near", True)]


def test_words_the_first_pass_found_already_do_not_confirm_a_near_match(resources: Resources) -> None:
    """The rule firing again on what was a hit already is no confirmation: the call would lose the points twice."""
    evidence = evidence_of(Utterance(AGENT, 4.0, 8.0, "你去死吧,你是不是前经病啊"))
    first = [h for h in text_hits(evidence, resources) if h.rule_id == "redline.abuse"]
    assert [h.matched_text for h in first] == ["你去死"]
    unchanged = ScriptedWhisper("你去死吧,你是不是前经病啊", "你去死吧,你是不是前经病啊")
    hits, looks = second_look(silent_call(), evidence, first, unchanged, resources.matcher, None, CONFIG)
    assert hits == [] and [look.confirmed for look in looks] == [False]
    heard_right = ScriptedWhisper("你去死吧,你是不是神经病啊", "你去死吧,你是不是神经病啊")
    [hit], _ = second_look(silent_call(), evidence, first, heard_right, resources.matcher, None, CONFIG)
    assert hit.rule_id == "redline.abuse" and hit.matched_text == "神经病"


def test_a_phrase_only_the_hotwords_wrote_is_kept_only_if_the_audio_supports_it(resources: Resources) -> None:
    # the plain decoding hears something else; the audio, scored without hotwords, decides
    def look(table: dict[str, float]) -> list:
        whisper = ScriptedWhisper("你是不是神经病啊", "你是不是前景病啊")
        scorer = TableScorer(table)
        hits, _looks = second_look(silent_call(), evidence_of(MISHEARD), [], whisper, resources.matcher, None,
                                   CONFIG, scorer)
        [(_seconds, texts)] = scorer.calls
        assert texts == ("你是不是前景病啊", "你是不是神经病啊")  # the plain reading first
        return hits

    [hit] = look({"你是不是前景病啊": -5.0, "你是不是神经病啊": -5.5})
    # written only when prompted: an info hit that sends a red line to review, like the sound check's
    assert (hit.rule_id, hit.severity, hit.match_type) == ("redline.abuse", "info", "forced")
    assert look({"你是不是前景病啊": -5.0, "你是不是神经病啊": -5.0 - CONFIG.text.sound_check_max_drop - 1}) == []
    # nothing heard without hotwords supports nothing, and costs no scoring
    whisper, scorer = ScriptedWhisper("你是不是神经病啊", ""), TableScorer({})
    assert second_look(silent_call(), evidence_of(MISHEARD), [], whisper, resources.matcher, None, CONFIG,
                       scorer)[0] == []
    assert scorer.calls == []


def test_a_near_match_the_second_decoding_does_not_confirm_is_dropped(resources: Resources) -> None:
    whisper = ScriptedWhisper("你是不是前景病啊", "你是不是前景病啊")
    hits, looks = second_look(silent_call(), evidence_of(MISHEARD), [], whisper, resources.matcher, None, CONFIG)
    assert hits == [] and [look.confirmed for look in looks] == [False]
    # with hotwords, then once more without them; both failed
    assert [c["hotwords"] for c in whisper.calls] == ["神经病 前经病", None]


def test_a_near_match_heard_only_without_hotwords_is_confirmed(resources: Resources) -> None:
    # with hotwords Whisper skipped the start of the stretch; the plain decoding hears the phrase
    whisper = ScriptedWhisper("病啊", "你是不是神经病啊")
    hits, looks = second_look(silent_call(), evidence_of(MISHEARD), [], whisper, resources.matcher, None, CONFIG)
    [hit] = hits
    assert hit.rule_id == "redline.abuse" and json.loads(hit.detail)["heard_again"] == "你是不是神经病啊"
    assert [c["hotwords"] for c in whisper.calls] == ["神经病 前经病", None]
    assert [(look.text, look.confirmed) for look in looks] == [("你是不是神经病啊", True)]


def test_nothing_to_look_at_costs_nothing(resources: Resources) -> None:
    whisper = ScriptedWhisper()
    clean = evidence_of(Utterance(AGENT, 1.0, 3.0, "您好请问有什么可以帮您"),
                      Utterance(AGENT, 8.0, 10.0, "我帮您挂神经内科的号"))
    assert second_look(silent_call(), clean, [], whisper, resources.matcher, None, CONFIG) == ([], [])
    assert whisper.calls == []


def test_at_most_max_per_call_stretches(resources: Resources) -> None:
    many = evidence_of(*(Utterance(AGENT, 2.0 * i, 2.0 * i + 1.0, "前经病") for i in range(6)))
    config = CONFIG.with_overrides({"text": {"second_look_max_per_call": 2, "turn_max_gap_s": 0.5}})
    whisper = ScriptedWhisper()
    _hits, looks = second_look(silent_call(), many, [], whisper, resources.matcher, None, config)
    assert len(looks) == 2 and len(whisper.calls) == 4  # each near look: with hotwords, then without


@pytest.fixture(scope="module")
def tiny_model() -> RedlineTextModel:
    texts = ["你去死吧", "你个白痴", "滚远点别烦我", "你有病吧"] * 3 + ["您好请讲", "感谢您的来电", "请您稍等一下",
                                                                    "我帮您查询"] * 3
    pipeline = build_pipeline(seed=0, n_features=2**12).fit(texts, ["abuse"] * 12 + ["clean"] * 12)
    return RedlineTextModel(pipeline, 0.5, {"name": "tiny"})


def test_a_turn_just_under_the_threshold_is_decoded_again_and_scored_again(tiny_model: RedlineTextModel,
                                                                          resources: Resources) -> None:
    turn = Utterance(AGENT, 2.0, 4.0, "你这白痴啊")
    probability = float(tiny_model.predict_proba(["你这白痴啊"])[0])
    config = CONFIG.with_overrides({"classifier": {"redline_threshold": round(probability + 0.05, 4),
                                                   "redline_review_margin": 0.1}})
    [candidate] = candidates(evidence_of(turn), [], resources.matcher, tiny_model, config)
    assert candidate.source == "model" and candidate.probability == pytest.approx(probability)
    confirmed, _ = second_look(silent_call(), evidence_of(turn), [], ScriptedWhisper("滚远点你个"), resources.matcher,
                               tiny_model, config)  # hostile to the model, and no rule's phrase
    [hit] = confirmed
    assert hit.rule_id == RULE_ID and hit.severity == "info" and (hit.start_s, hit.end_s) == (2.0, 4.0)
    assert json.loads(hit.detail)["first_probability"] == pytest.approx(probability, abs=1e-4)
    rejected, _ = second_look(silent_call(), evidence_of(turn), [], ScriptedWhisper("您好请讲"), resources.matcher,
                              tiny_model, config)
    assert rejected == []


def test_a_red_line_phrase_heard_again_in_a_doubted_turn_is_a_lexicon_hit(tiny_model: RedlineTextModel,
                                                                          resources: Resources) -> None:
    """Whisper base heard "脑残才会这么问" as "那残彩会这么温柔?"; decoded again, "脑残彩会准备": the rule's
    phrase, whatever the model makes of the rest."""
    turn = Utterance(AGENT, 2.0, 4.0, "你这白痴啊")
    probability = float(tiny_model.predict_proba(["你这白痴啊"])[0])
    config = CONFIG.with_overrides({"classifier": {"redline_threshold": round(probability + 0.05, 4),
                                                   "redline_review_margin": 0.1}})
    [hit], [look] = second_look(silent_call(), evidence_of(turn), [], ScriptedWhisper("你是不是神经病啊"),
                                resources.matcher, tiny_model, config)
    assert (hit.rule_id, hit.severity, hit.match_type) == ("redline.abuse", "fatal", "exact")
    assert (hit.start_s, hit.end_s, look.candidate.source) == (2.0, 4.0, "model")
    assert json.loads(hit.detail)["heard_again"] == "你是不是神经病啊"
    # a phrase of a rule that is not a red line (forbidden.dont_know) confirms nothing
    assert second_look(silent_call(), evidence_of(turn), [], ScriptedWhisper("这个我不知道"), resources.matcher,
                       tiny_model, config)[0] == []


def test_a_model_hit_standing_alone_is_read_again(tiny_model: RedlineTextModel, resources: Resources) -> None:
    """Spoken CrossWOZ: "不客气，还有什么想问的吗" written "不客气吗?…" was a counter-question to the model
    (P 0.64). The turn is decoded again; the two readings' probabilities must average the threshold."""
    turn = Utterance(AGENT, 2.0, 4.0, "滚远点有病")
    [hit] = score_utterances(evidence_of(turn), tiny_model, 0.5)
    probability = lambda text: float(tiny_model.predict_proba([text])[0])  # noqa: E731
    assert (hit.confidence + probability("您好请讲")) / 2 < 0.5 <= (hit.confidence + probability("你个白痴滚远点")) / 2

    def recheck(*texts: str, hits=(hit,)) -> tuple[list, list, ScriptedWhisper]:
        whisper = ScriptedWhisper(*texts)
        dropped, looks = recheck_model_hits(silent_call(), evidence_of(turn), list(hits), whisper,
                                            resources.matcher, tiny_model, CONFIG)
        return dropped, looks, whisper

    dropped, [look], whisper = recheck("您好请讲")
    assert dropped == [hit] and (look.text, look.confirmed, look.candidate.source) == ("您好请讲", False, "model")
    [plain] = whisper.calls  # one plain decoding of the turn, padded, with the second look's beam
    assert plain["hotwords"] is None and plain["beam_size"] == CONFIG.text.second_look_beam_size
    assert plain["seconds"] == pytest.approx(2.0 + 2 * CONFIG.text.second_look_pad_s, abs=0.01)
    assert recheck("你个白痴滚远点")[0] == []
    # a red-line phrase in the new reading keeps it, whatever the model makes of it
    assert probability("请您稍等一下我帮您查询神经病") + hit.confidence < 1.0
    assert recheck("请您稍等一下我帮您查询神经病")[0] == []
    # a lexicon red line over the same turn: the call fails anyway, nothing is decoded
    lexical = Hit(call_id="c", rule_id="redline.abuse", detector_version="t", category="redline_abuse",
                  severity="fatal", error_class="customer", role=AGENT, start_s=2.5, end_s=3.0, match_type="exact",
                  confidence=1.0, matched_text="有病")
    dropped, looks, whisper = recheck("您好请讲", hits=(hit, lexical))
    assert (dropped, looks, whisper.calls) == ([], [], [])


def test_text_hits_drop_a_model_hit_the_second_reading_does_not_support(tiny_model: RedlineTextModel,
                                                                        resources: Resources) -> None:
    evidence = evidence_of(Utterance(AGENT, 2.0, 4.0, "滚远点有病"))
    config = CONFIG.with_overrides({"classifier": {"redline_threshold": 0.5}, "text": {"second_look_model_hits": True}})
    live = replace(with_whisper(resources, ScriptedWhisper("您好请讲"), config), redline=tiny_model)
    assert RULE_ID in {h.rule_id for h in text_hits(evidence, live)}  # rescore: no audio, the hit stays
    assert RULE_ID not in {h.rule_id for h in text_hits(evidence, live, silent_call())}
    # off by default: a hit turned from "needs review" into nothing must be asked for
    assert CONFIG.text.second_look_model_hits is False
    default = CONFIG.with_overrides({"classifier": {"redline_threshold": 0.5}})
    off = replace(with_whisper(resources, ScriptedWhisper("您好请讲"), default), redline=tiny_model)
    assert RULE_ID in {h.rule_id for h in text_hits(evidence, off, silent_call())}


def test_text_hits_look_again_only_with_the_audio_and_whisper(resources: Resources) -> None:
    evidence = evidence_of(MISHEARD)
    whisper = ScriptedWhisper("你是不是神经病啊", "你是不是神经病啊")
    live = with_whisper(resources, whisper)
    assert "redline.abuse" not in {h.rule_id for h in text_hits(evidence, live)}  # rescore: no audio, no look
    assert whisper.calls == []
    assert "redline.abuse" in {h.rule_id for h in text_hits(evidence, live, silent_call())}
    off = with_whisper(resources, ScriptedWhisper("你是不是神经病啊"),
                       CONFIG.with_overrides({"text": {"second_look": False}}))
    assert "redline.abuse" not in {h.rule_id for h in text_hits(evidence, off, silent_call())}


def test_the_call_verdict(resources: Resources, tiny_model: RedlineTextModel) -> None:
    """A lexicon red line fails the call; a red line only the model saw needs review; neither passes."""
    from dataclasses import replace

    facts = {"call_id": "c1", "call_date": "2026-11-23"}
    greeting = Utterance(AGENT, 0.5, 2.5, "您好请问有什么可以帮您")
    closing = Utterance(AGENT, 16.0, 18.0, "感谢您的来电再见")

    def outcome(*middle: Utterance, res: Resources = resources) -> tuple[str, bool, tuple[str, ...]]:
        score = analyse_evidence(evidence_of(greeting, *middle, closing), res, facts).score
        return score.outcome, score.redline, score.outcome_reasons

    assert outcome(Utterance(AGENT, 5.0, 7.0, "你是不是神经病啊")) == ("fail", True, ("scorecard_fail",))
    model_only = replace(resources, redline=tiny_model)
    state, redline, reasons = outcome(Utterance(AGENT, 5.0, 7.0, "滚远点有病"), res=model_only)
    assert (state, redline) == ("needs_review", True) and "redline_model_only" in reasons
    assert outcome(Utterance(AGENT, 5.0, 7.0, "请您稍等我帮您查询"))[0] == "pass"


def test_rescore_keeps_what_the_second_look_found_in_the_audio(resources: Resources) -> None:
    """Without the audio a rescore cannot look again: it carries the hit over while its rule is there."""
    from dataclasses import replace

    from pipeline.rescore import audio_hits_kept

    facts = {"call_id": "c1", "call_date": "2026-11-23"}
    greeting = Utterance(AGENT, 0.5, 2.5, "您好请问有什么可以帮您")
    closing = Utterance(AGENT, 16.0, 18.0, "感谢您的来电再见")
    misheard = evidence_of(greeting, MISHEARD, closing)
    [found], _ = second_look(silent_call(), misheard, [], ScriptedWhisper("你是不是神经病啊", "你是不是神经病啊"),
                             resources.matcher, None, CONFIG)
    gone = replace(found, rule_id="redline.no_longer_there")
    in_text = replace(found, detail="")  # a hit of the transcript itself: the rescore finds it again or not
    kept, dropped = audio_hits_kept([found, gone, in_text], resources)
    assert kept == [found] and dropped == 1
    assert analyse_evidence(misheard, resources, facts).score.outcome == "pass"  # the transcript alone
    score = analyse_evidence(misheard, resources, facts, audio_hits=kept)
    assert found in score.hits and (score.score.outcome, score.score.redline) == ("fail", True)
    # a transcript that holds the words now (new rules, or fixed by hand) is not counted twice
    heard = evidence_of(greeting, replace(MISHEARD, text="你是不是神经病啊"), closing)
    again = analyse_evidence(heard, resources, facts, audio_hits=kept)
    assert [h.matched_text for h in again.hits if h.rule_id == "redline.abuse"] == ["神经病"]
