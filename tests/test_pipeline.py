"""The whole pipeline through ``run_batch``: hits, features, score and PII masking land in the store,
a forced re-run replaces a call's old hits, and ``rescore`` re-analyses stored transcripts.

Real audio and VAD; the transcriber is scripted (no Whisper) and handed to the
batch as a resource (no monkeypatching), so the text, and therefore every
expected hit, is known.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from conftest import REPO, ScriptedTranscriber
from deltalake import DeltaTable

from pipeline.analysis import Resources, ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.records import CATEGORIES
from pipeline.rescore import rescore_store, store_scoring
from pipeline.scoring.scorecard import load_scorecard, score_call
from pipeline.store import Store
from pipeline.store.rows import hit_of
from pipeline.text.rules import load_rules
from pipeline.timing.detect import TIMING_FEATURES, TIMING_VERSION

RUDE = {"agent": "你这话什么意思", "customer": "我的手机号是13812345678"}
POLITE = {"agent": "您好请问有什么可以帮您", "customer": "我想查询一下订单"}
IN_PROCESS = RunOptions(isolate=False)
SHIPPED_REDLINE = REPO / "models" / "redline_text" / "redline_text.skops"


def run(audio, store, config, texts, force: bool = False):
    spec = ResourceSpec(config, transcriber=ScriptedTranscriber(texts))
    return run_batch(audio, store, config, RunOptions(force=force, isolate=False), resources=spec)


def all_rows(store: Store, table: str) -> int:
    """Rows ever appended to a table, superseded ones included (the Delta table read directly)."""
    return DeltaTable(str(store.path(table))).to_pyarrow_table().num_rows


def test_run_stores_hits_features_and_masked_text(tmp_path, stereo_call):
    audio = stereo_call("c1.wav")
    config = load_config()
    summary = run(audio, tmp_path / "store", config, RUDE)
    assert (summary.done, summary.failed) == (1, 0)
    # every version the rows record, each from its own source
    redline = "redline_text@" + hashlib.sha256(SHIPPED_REDLINE.read_bytes()).hexdigest()[:12]
    rules = load_rules().version
    versions = summary.versions
    assert (versions.asr_model, versions.rules_version, versions.timing_version, versions.redline_model,
            versions.config_hash) == ("fake@1", rules, TIMING_VERSION, redline, config.config_hash)
    store = Store(tmp_path / "store")
    [call] = store.read("calls").to_pylist()
    assert {k: call[k] for k in versions.columns()} == versions.columns()
    hits = {h["rule_id"]: h for h in store.read("hits").to_pylist()}
    red = hits["redline.counter_question"]
    agent_speech = [s for s in store.read("segments").to_pylist() if s["role"] == "agent"]
    # the hit lies on the agent's speech, on the call clock (the clip starts at 0.5 s)
    assert red["role"] == "agent" and red["severity"] == "fatal" and red["detector_version"] == rules
    assert red["start_s"] == pytest.approx(agent_speech[0]["start_s"]) and red["start_s"] > 0.5
    assert hits["model.redline_text"]["detector_version"] == redline
    assert {h["detector_version"] for h in hits.values()} <= {rules, TIMING_VERSION, redline}
    assert all(h["rules_version"] == rules and h["redline_model"] == redline for h in hits.values())
    # personal data never reaches the store: text and words are masked, same length
    [customer] = [u for u in store.read("utterances").to_pylist() if u["role"] == "customer"]
    assert customer["text"] == "我的手机号是" + "*" * 11
    assert customer["words"][0]["text"] == "我的手机号是" + "*" * 11
    # ...and where it was spoken is kept, for review and `callqa redact`
    assert [p["kind"] for p in customer["pii_spans"]] == ["mobile"]
    assert customer["pii_spans"][0]["start_s"] == pytest.approx(customer["start_s"])
    assert not any("13812345678" in (h["context"] + h["matched_text"]) for h in hits.values())
    [row] = store.read("features").to_pylist()
    assert row["rules_version"] == rules and row["redline_model"] == redline
    assert row["redline"] and row["fatal_failed"] and not row["passed"] and row["outcome"] == "fail"
    assert row["outcome_reasons"][0] == "scorecard_fail" and row["score"] == 0.0
    assert "redline_counter_question" in row["failed_items"]
    assert red["hit_id"] in row["failed_hit_ids"]
    assert row["hits_total"] == len(hits) and row["classifier_model"] is None  # none promoted
    assert row["scorecard_version"] == load_scorecard().version


def test_forced_rerun_replaces_old_hits_even_when_there_are_none(tmp_path, stereo_call):
    audio = stereo_call("c1.wav")
    config = load_config()
    run(audio, tmp_path / "store", config, RUDE)
    store = Store(tmp_path / "store")
    first = store.read("hits").num_rows
    run(audio, tmp_path / "store", config, POLITE, force=True)
    rules = {h["rule_id"] for h in store.read("hits").to_pylist()}
    assert "redline.counter_question" not in rules and "model.redline_text" not in rules
    [row] = store.read("features").to_pylist()
    assert not row["redline"] and not row["fatal_failed"]
    assert [u["text"] for u in store.read("utterances").to_pylist()] == [POLITE["agent"], POLITE["customer"]]
    # the old rows are still in the tables, superseded: no current row points at them
    assert all_rows(store, "hits") == first + store.read("hits").num_rows
    assert all_rows(store, "utterances") == 4 and store.read("utterances").num_rows == 2


def _edited_rules(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "lexicons", rules_dir, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.md"))
    return rules_dir


def test_rescore_reanalyses_stored_transcripts_and_keeps_timing(tmp_path, stereo_call):
    audio = stereo_call("c1.wav")
    config = load_config()
    run(audio, tmp_path / "store", config, RUDE)
    store = Store(tmp_path / "store")
    before = {h["rule_id"]: h for h in store.read("hits").to_pylist()}
    timing_before = {k: h["hit_id"] for k, h in before.items() if h["detector_version"] == TIMING_VERSION}
    assert "timing.agent_hung_up_first" in timing_before  # the call ends 0.8 s after the customer's last words
    [features_before] = store.read("features").to_pylist()

    # a QA lead changes the counter-question rule: a new rules version
    rules_dir = _edited_rules(tmp_path)
    qa = rules_dir / "qa_rules.toml"
    text = qa.read_text(encoding="utf-8")
    assert '"(你)这话什么意思"' in text  # the phrase the rude agent says
    qa.write_text(text.replace('"(你)这话什么意思"', '"(你)这话到底是什么意思"'), encoding="utf-8")
    new_rules = load_rules(rules_dir)
    assert new_rules.version != load_rules().version
    scoring = store_scoring(store, config)
    resources = Resources.load(config, transcriber=None, rules=new_rules, scorecard=scoring.scorecard,
                               classifier=scoring.classifier, text=True)
    update = rescore_store(store, resources)
    assert (update.calls, update.commits, update.skipped) == (1, 1, 0)

    after = {h["rule_id"]: h for h in store.read("hits").to_pylist()}
    assert "redline.counter_question" not in after
    assert {k: h["hit_id"] for k, h in after.items() if h["detector_version"] == TIMING_VERSION} == timing_before
    [row] = store.read("features").to_pylist()
    assert row["rules_version"] == new_rules.version and row["asr_model"] == "fake@1"
    assert "redline_counter_question" not in row["failed_items"]
    for feature in TIMING_FEATURES:  # measured on the audio, carried over
        assert row[feature.name] == features_before[feature.name], feature.name
    [call] = store.read("calls").to_pylist()
    assert call["rules_version"] == new_rules.version and call["transcript_id"] is not None
    # the old version's hits are still in the store for comparison
    old = DeltaTable(str(store.path("hits"))).to_pyarrow_table().to_pylist()
    assert "redline.counter_question" in {h["rule_id"] for h in old}
    # the stored score is reproducible from the stored hits and feature row
    again = score_call([hit_of(h) for h in store.read("hits").to_pylist()], row, load_scorecard())
    assert (again.score, [f.item_id for f in again.failed_items], again.outcome) == (
        row["score"], row["failed_items"], row["outcome"])
    assert all(c in CATEGORIES for c in (h["category"] for h in after.values()))


def test_rescore_rows_reproduces_the_stored_score_from_stored_rows(tmp_path, stereo_call):
    from pipeline.rescore import rescore_rows

    config = load_config()
    run(stereo_call("c1.wav"), tmp_path / "store", config, RUDE)
    store = Store(tmp_path / "store").snapshot()
    resources = Resources.load(config, transcriber=None, scorecard=load_scorecard(), text=False)
    [again] = rescore_rows(store.read("features"), store.read("hits"), resources)
    [row] = store.read("features").to_pylist()
    assert (again["score"], again["failed_items"]) == (row["score"], row["failed_items"])


def test_rerun_after_a_rule_edit_skips_the_call_and_says_rescore_applies_it(tmp_path, stereo_call):
    audio = stereo_call("c1.wav")
    rules_dir = _edited_rules(tmp_path)
    config = load_config().with_overrides({"text": {"rules_dir": str(rules_dir)}})
    run(audio, tmp_path / "store", config, RUDE)
    qa = rules_dir / "qa_rules.toml"
    qa.write_text(qa.read_text(encoding="utf-8").replace('version = "qa-', 'version = "qa-edited-'), encoding="utf-8")
    again = run(audio, tmp_path / "store", config, RUDE)
    assert (again.skipped, again.done, again.skipped_other_rules) == (1, 0, 1)  # transcripts are not redone
    store = Store(tmp_path / "store")
    scoring = store_scoring(store, config)
    rescore_store(store, Resources.load(config, transcriber=None, scorecard=scoring.scorecard, text=True))
    assert run(audio, tmp_path / "store", config, RUDE).skipped_other_rules == 0
    assert "qa-edited-" in store.read("calls")["rules_version"][0].as_py()
