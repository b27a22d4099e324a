"""The whole pipeline through ``run_batch``: hits, features, score and PII masking land in the store,
a forced re-run replaces a call's old hits, and ``rescore`` re-analyses stored transcripts.

Real audio and VAD; the transcriber is scripted (no Whisper) so the text, and
therefore every expected hit, is known.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
from conftest import REPO, ScriptedTranscriber

from pipeline.config import load_config
from pipeline.scoring.features import load as load_features
from pipeline.text.rules import load_rules
from pipeline.rescore import rescore
from pipeline.batch import RunOptions, run_batch
from pipeline.scoring.scorecard import load_scorecard, rescore_rows
from pipeline.store import Store, split_rules_version

RUDE = {"agent": "你这话什么意思", "customer": "我的手机号是13812345678"}
POLITE = {"agent": "您好请问有什么可以帮您", "customer": "我想查询一下订单"}


@pytest.fixture
def scripted(monkeypatch):
    """Make ``run_batch`` (one worker) transcribe with a ScriptedTranscriber whose texts a test can change."""
    transcriber = ScriptedTranscriber(dict(RUDE))
    monkeypatch.setattr("pipeline.batch.WhisperTranscriber.from_config", lambda asr: transcriber)
    monkeypatch.setattr("pipeline.batch.resolve_model", lambda name: SimpleNamespace(model_id=transcriber.model_id))
    return transcriber


def test_run_stores_hits_features_and_masked_text(tmp_path, stereo_call, scripted):
    audio = stereo_call("c1.wav")
    summary = run_batch(audio, tmp_path / "store", load_config())
    assert (summary.done, summary.failed) == (1, 0)
    store = Store(tmp_path / "store")
    versions = split_rules_version(summary.rules_version)
    assert [v.split("-")[0] for v in versions[1:]] == ["timing", "redline_text@" + versions[2].split("@")[1]]
    hits = {h["rule_id"]: h for h in store.current_hits().to_pylist()}
    red = hits["redline.counter_question"]
    agent_speech = [s for s in store.read("segments").to_pylist() if s["role"] == "agent"]
    # the hit lies on the agent's speech, on the call clock (the clip starts at 0.5 s)
    assert red["role"] == "agent" and red["severity"] == "fatal" and red["rules_version"] == versions[0]
    assert red["start_s"] == pytest.approx(agent_speech[0]["start_s"]) and red["start_s"] > 0.5
    assert hits["model.redline_text"]["rules_version"] == versions[2]
    assert {h["rules_version"] for h in hits.values()} <= set(versions)
    # personal data never reaches the store: text and words are masked, same length
    [customer] = [u for u in store.read("utterances").to_pylist() if u["role"] == "customer"]
    assert customer["text"] == "我的手机号是" + "*" * 11
    assert customer["words"][0]["text"] == customer["text"]
    # ...and where it was spoken is kept, for review and `callqa redact`
    assert [p["kind"] for p in customer["pii_spans"]] == ["mobile"]
    assert customer["pii_spans"][0]["start_s"] == pytest.approx(customer["start_s"])
    assert not any("13812345678" in (h["context"] + h["matched_text"]) for h in hits.values())
    [row] = load_features(tmp_path / "store").to_pylist()
    assert row["rules_version"] == summary.rules_version
    assert row["redline"] and row["fatal_failed"] and not row["passed"]
    assert "redline_counter_question" in row["failed_items"]
    assert red["hit_id"] in row["failed_hit_ids"]
    assert row["hits_total"] == len(hits) and row["classifier_model"] is None  # none promoted


def test_forced_rerun_replaces_old_hits_even_when_there_are_none(tmp_path, stereo_call, scripted):
    audio = stereo_call("c1.wav")
    config = load_config()
    run_batch(audio, tmp_path / "store", config)
    scripted.texts = dict(POLITE)
    run_batch(audio, tmp_path / "store", config, options=RunOptions(force=True))
    store = Store(tmp_path / "store")
    rules = {h["rule_id"] for h in store.read("hits").to_pylist()}
    assert "redline.counter_question" not in rules and "model.redline_text" not in rules
    [row] = load_features(tmp_path / "store").to_pylist()
    assert not row["redline"] and not row["fatal_failed"]
    assert store.read("hits", current=False).num_rows > store.read("hits").num_rows  # old rows kept, superseded


def test_rescore_reanalyses_stored_transcripts_and_keeps_timing(tmp_path, stereo_call, scripted):
    audio = stereo_call("c1.wav")
    config = load_config()
    run_batch(audio, tmp_path / "store", config)
    store = Store(tmp_path / "store")
    before = {h["rule_id"]: h for h in store.current_hits().to_pylist()}
    timing_before = {k: h["hit_id"] for k, h in before.items() if h["rules_version"].startswith("timing-")}
    assert timing_before  # the scripted call ends 1.1 s after the customer's last words: hang-up hit

    # a QA lead drops the counter-question rule: a new rules version
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "lexicons", rules_dir, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.md"))
    qa = rules_dir / "qa_rules.toml"
    qa.write_text(qa.read_text(encoding="utf-8").replace('"你这话什么意思"', '"你这话到底是什么意思"'),
                  encoding="utf-8")
    new_rules = load_rules(rules_dir)
    summary = rescore(store, new_rules, config)
    assert (summary.calls, summary.chunks) == (1, 1)

    after = {h["rule_id"]: h for h in store.current_hits().to_pylist()}
    assert "redline.counter_question" not in after
    assert {k: h["hit_id"] for k, h in after.items() if h["rules_version"].startswith("timing-")} == timing_before
    [row] = load_features(tmp_path / "store").to_pylist()
    assert split_rules_version(row["rules_version"])[0] == new_rules.version
    assert "redline_counter_question" not in row["failed_items"]
    # the old version's hits are still in the store for comparison
    assert "redline.counter_question" in {h["rule_id"] for h in store.read("hits").to_pylist()}
    # the stored score is reproducible from the stored rows
    [again] = rescore_rows(load_features(tmp_path / "store"), store.read("hits"), load_scorecard())
    assert (again["score"], again["failed_items"]) == (row["score"], row["failed_items"])


def test_rerun_after_a_rule_edit_skips_the_call_and_says_rescore_applies_it(tmp_path, stereo_call, scripted):
    audio = stereo_call("c1.wav")
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "lexicons", rules_dir, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.md"))
    config = load_config().with_overrides({"text": {"rules_dir": str(rules_dir)}})
    run_batch(audio, tmp_path / "store", config)
    qa = rules_dir / "qa_rules.toml"
    qa.write_text(qa.read_text(encoding="utf-8").replace('version = "qa-', 'version = "qa-edited-'), encoding="utf-8")
    again = run_batch(audio, tmp_path / "store", config)
    assert (again.skipped, again.done, again.skipped_other_rules) == (1, 0, 1)  # transcripts are not redone
    rescore(Store(tmp_path / "store"), load_rules(rules_dir), config)
    assert run_batch(audio, tmp_path / "store", config).skipped_other_rules == 0
