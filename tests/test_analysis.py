"""The one analysis path (pipeline/analysis.py): resources, their versions, and the stages in order."""

from __future__ import annotations

import pickle

import pytest
from conftest import ScriptedTranscriber, place

from pipeline.analysis import Resources, ResourceSpec, analyse_call, analyse_evidence
from pipeline.config import load_config
from pipeline.records import AGENT, CUSTOMER, Call, CallEvidence, Channel, SpeechSegment, Utterance
from pipeline.text.redline_model import redline_version
from pipeline.text.rules import load_rules
from pipeline.timing.detect import TIMING_VERSION
from pipeline.versions import ANALYSIS_VERSION, NONE

TEXTS = {"agent": "你这话什么意思", "customer": "我的手机号是13812345678"}


def test_a_spec_is_picklable_and_tells_its_versions_without_loading_models():
    config = load_config()
    spec = ResourceSpec(config, transcriber=ScriptedTranscriber(TEXTS))
    again = pickle.loads(pickle.dumps(spec))  # what a worker process receives
    assert again.transcriber.texts == TEXTS and again.config.config_hash == config.config_hash
    versions = spec.versions()
    assert versions.columns() == {
        "config_hash": config.config_hash, "analysis_version": ANALYSIS_VERSION, "asr_model": "fake@1",
        "rules_version": load_rules().version, "timing_version": TIMING_VERSION,
        "redline_model": redline_version("callqa:models/redline_text")}
    assert spec.load().versions == versions  # what the loaded resources record is what the spec said


def test_without_transcription_text_stages_do_not_run_and_say_so():
    config = load_config().with_overrides({"asr": {"enabled": False}})
    spec = ResourceSpec(config)
    versions = spec.versions()
    assert (versions.asr_model, versions.rules_version, versions.redline_model) == (NONE, NONE, NONE)
    resources = spec.load()
    assert resources.transcriber is None and resources.matcher is None and resources.redline is None
    assert resources.versions == versions
    assert versions.detector_versions() == (TIMING_VERSION,)


def test_scoring_only_resources_load_no_speech_or_text_model():
    resources = ResourceSpec(load_config()).load_for_scoring()
    assert resources.transcriber is None and resources.matcher is None and resources.redline is None
    assert resources.scorecard.version == "callcentre-2026.11.1" and resources.classifier is None


def test_analyse_call_runs_every_stage_in_order_and_masks_before_detecting():
    config = load_config()
    channels = (Channel(AGENT, place([("asr_example.wav", 0.5)], 12.0)),
                Channel(CUSTOMER, place([("BAC009S0764W0121.wav", 7.0)], 12.0)))
    call = Call("c1", "c1.wav", "0" * 64, channels, 16000, 2, "pcm_s16le", "wav", 12.0, {"team": "售后一组"})
    resources = Resources.load(config, transcriber=ScriptedTranscriber(TEXTS))
    stages: list[str] = []
    analysed = analyse_call(call, resources, {"call_date": "2026-11-22"}, on_stage=stages.append)
    assert stages == ["transcribe", "pii", "detect"]
    texts = [(u.role, u.text) for u in analysed.evidence.utterances]
    assert texts == [("agent", TEXTS["agent"]), ("customer", "我的手机号是" + "*" * 11)]
    assert analysed.transcript.utterances == analysed.evidence.utterances  # the stored transcript is masked too
    assert [[p.kind for p in spans] for spans in analysed.pii] == [[], ["mobile"]]
    assert {AGENT, CUSTOMER} == set(analysed.transcript.tracks)
    row = analysed.analysis.features
    assert (row["team"], row["call_date"], row["asr_model"]) == ("售后一组", "2026-11-22", "fake@1")
    assert row["outcome"] == "fail" and "redline.counter_question" in {h.rule_id for h in analysed.analysis.hits}
    assert [h.start_s for h in analysed.analysis.hits] == sorted(h.start_s for h in analysed.analysis.hits)
    # the evidence alone (what rescore reads from the store) gives the same text hits
    again = analyse_evidence(analysed.evidence, resources, {"call_date": "2026-11-22", "team": "售后一组"},
                             timing=analysed.analysis.timing)
    assert {h.hit_id for h in again.hits} == {h.hit_id for h in analysed.analysis.hits}


@pytest.mark.parametrize(("severity", "outcome"), [("info", "needs_review"), ("fatal", "fail")])
def test_the_red_line_model_severity_comes_from_the_config(severity, outcome):
    config = load_config().with_overrides({"classifier": {"redline_severity": severity}})
    resources = Resources.load(config, transcriber=None, text=True)
    # no lexicon rule knows 垃圾东西 ("trash"); the shipped model scores it 0.93
    evidence = CallEvidence("c", 5.0, (AGENT, CUSTOMER), (SpeechSegment(AGENT, 0.0, 2.0, -20.0),),
                            (Utterance(AGENT, 0.0, 2.0, "垃圾东西"),))
    result = analyse_evidence(evidence, resources, {})
    assert [(h.rule_id, h.severity) for h in result.hits if h.category == "redline_abuse"] == [
        ("model.redline_text", severity)]
    assert result.score.outcome == outcome and result.features["outcome"] == outcome
