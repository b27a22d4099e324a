"""The batch runner on real audio: bad files recorded, resume, manifests, workers, SIGKILL."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ScriptedTranscriber, read_clip

from pipeline.analysis import Analysers
from pipeline.config import load_config
from pipeline.records import Channel
from pipeline.batch import RunOptions, run_batch
from pipeline.store import Store
from pipeline.audio.vad import detect_speech


def speech_onset_s(clip: str) -> float:
    """Where VAD finds speech starting in the clip alone."""
    config = load_config()
    return detect_speech(Channel("agent", read_clip(clip)), config.vad)[0].start_s


VOLATILE = {"chunk_id", "processing_s", "occurred_at"}


def stable_rows(store_dir: Path, table: str) -> list[tuple]:
    """Rows without the columns that legitimately differ between runs (chunk ids, timings)."""
    rows = Store(store_dir).read(table).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k not in VOLATILE)) for r in rows)


@pytest.fixture
def mixed_dir(tmp_path, stereo_call):
    calls = tmp_path / "in"
    stereo_call("good1.wav", directory=calls)
    stereo_call("sub/good2.wav", agent=[("news_5s.wav", 0.0)], customer=[("BAC009S0764W0122.wav", 6.0)],
                directory=calls)
    (calls / "empty.wav").write_bytes(b"")
    (calls / "readme.wav").write_text("这不是音频文件", encoding="utf-8")
    good = (calls / "good1.wav").read_bytes()
    (calls / "corrupt.wav").write_bytes(good[:44] + os.urandom(2000) + good[44:][:100])  # header says more
    (calls / "notes.txt").write_text("ignored: not an audio extension")
    return calls


def test_bad_files_are_recorded_and_the_batch_goes_on(tmp_path, mixed_dir, vad_only_config):
    summary = run_batch(mixed_dir, tmp_path / "store", vad_only_config)
    assert (summary.planned, summary.done, summary.failed) == (5, 2, 3)
    store = Store(tmp_path / "store")
    calls = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert {k for k, r in calls.items() if r["status"] == "ok"} == {"good1", "sub/good2"}
    errors = {r["call_id"]: r["message"] for r in store.read("errors").to_pylist()}
    assert errors == {"empty": "empty file (0 bytes)",
                      "readme": "not an audio file (FFmpeg cannot read its format)",
                      "corrupt": errors["corrupt"]}
    assert errors["corrupt"].startswith("truncated")
    good = calls["good1"]
    assert good["roles"] == ["agent", "customer"] and good["duration_s"] == pytest.approx(12.0)
    assert good["config_hash"] == vad_only_config.config_hash
    facts = {f["role"]: f for f in good["channels"]}
    assert 3.5 < facts["agent"]["speech_s"] < 5.6  # asr_example.wav: 5.5 s with pauses
    assert facts["customer"]["speech_s"] < 4.3  # BAC009S0764W0121.wav is 4.2 s
    segments = [r for r in store.read("segments").to_pylist() if r["call_id"] == "good1"]
    agent = [s for s in segments if s["role"] == "agent"]
    # on the call clock: placement offset + where the clip's own speech starts (±3 VAD windows)
    assert agent[0]["start_s"] == pytest.approx(0.5 + speech_onset_s("asr_example.wav"), abs=0.1)
    customer_start = min(s["start_s"] for s in segments if s["role"] == "customer")
    assert customer_start == pytest.approx(7.0 + speech_onset_s("BAC009S0764W0121.wav"), abs=0.1)

    again = run_batch(mixed_dir, tmp_path / "store", vad_only_config)
    assert (again.skipped, again.done, again.failed) == (5, 0, 0)  # a second run does no work


def test_changed_audio_or_config_is_redone(tmp_path, mixed_dir, vad_only_config, stereo_call):
    store_dir = tmp_path / "store"
    run_batch(mixed_dir, store_dir, vad_only_config)
    stereo_call("good1.wav", total_s=14.0, directory=mixed_dir)  # same call id, new content
    assert run_batch(mixed_dir, store_dir, vad_only_config).done == 1
    other = vad_only_config.with_overrides({"timing": {"silence_min_s": 7.0}})
    assert run_batch(mixed_dir, store_dir, other).done == 2
    forced = run_batch(mixed_dir, store_dir, other, RunOptions(force=True))
    assert (forced.done, forced.failed) == (2, 3)
    durations = {(r["call_id"], r["config_hash"]): r["duration_s"] for r in Store(store_dir).read("calls").to_pylist()
                 if r["status"] == "ok"}
    assert durations[("good1", vad_only_config.config_hash)] == pytest.approx(14.0)
    assert len(durations) == 4  # forced re-run superseded, did not duplicate


def test_manifest_metadata_reaches_every_row(tmp_path, stereo_call, vad_only_config):
    stereo_call("a.wav", directory=tmp_path / "audio")
    stereo_call("b.wav", directory=tmp_path / "audio")
    manifest = tmp_path / "calls.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["call_id", "path", "agent_id", "team", "started_at", "channel_roles", "queue"])
        writer.writerow(["C-1", "audio/a.wav", "A007", "售后一组", "2026-11-20T09:15:00+08:00", "", "vip"])
        writer.writerow(["C-2", "audio/b.wav", "A008", "售后二组", "2026-11-21T10:00:00", "customer,agent", ""])
    run_batch(manifest, tmp_path / "store", vad_only_config)
    rows = {r["call_id"]: r for r in Store(tmp_path / "store").read("calls").to_pylist()}
    assert rows["C-1"]["agent_id"] == "A007" and rows["C-1"]["team"] == "售后一组"
    assert rows["C-1"]["call_date"] == "2026-11-20"
    assert dict(rows["C-1"]["metadata"]) == {"queue": "vip"}
    segments = Store(tmp_path / "store").read("segments").to_pylist()
    first_agent = min(s["start_s"] for s in segments if s["call_id"] == "C-2" and s["role"] == "agent")
    # channel_roles swapped: the right channel (customer clip at 7 s) is the agent
    assert first_agent == pytest.approx(7.0 + speech_onset_s("BAC009S0764W0121.wav"), abs=0.1)


def test_two_workers_give_the_same_rows(tmp_path, mixed_dir, vad_only_config):
    run_batch(mixed_dir, tmp_path / "one", vad_only_config)
    run_batch(mixed_dir, tmp_path / "two", vad_only_config, RunOptions(workers=2))
    for table in ("calls", "segments", "errors"):
        assert stable_rows(tmp_path / "one", table) == stable_rows(tmp_path / "two", table)


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_gives_the_same_store(tmp_path, stereo_call):
    calls = tmp_path / "in"
    layouts = [("asr_example.wav", "BAC009S0764W0121.wav"), ("news_8s.wav", "BAC009S0764W0122.wav"),
               ("news_5s.wav", "asr_example.wav")]
    for i in range(36):
        agent, customer = layouts[i % 3]
        stereo_call(f"call{i:02d}.wav", agent=[(agent, 0.3 + i % 5), (agent, 20.0)],
                    customer=[(customer, 10.0 + i % 4), (customer, 30.0)], total_s=40.0, directory=calls)
    (calls / "bad.wav").write_text("not audio")
    config = tmp_path / "c.toml"
    config.write_text("[asr]\nenabled = false\n[run]\ncommit_every_calls = 1\n")
    command = [sys.executable, "-m", "pipeline", "run", str(calls), "--config", str(config), "-q", "--out"]

    subprocess.run([*command, str(tmp_path / "reference")], check=False, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((killed / "_commits").glob("*.json"))) < 4:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = Store(killed).read("calls").num_rows
    assert 4 <= committed < 37, "the kill must land mid-batch"
    resumed = subprocess.run([*command, str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 1  # bad.wav is still a failure (recorded once)
    assert f"{committed} already done" in resumed.stdout
    for table in ("calls", "segments", "errors"):
        assert stable_rows(killed, table) == stable_rows(tmp_path / "reference", table)
    assert not list(killed.rglob("*.tmp"))
    shutil.rmtree(killed)


def test_full_disk_stops_cleanly_and_the_next_run_resumes(tmp_path, stereo_call, vad_only_config, monkeypatch):
    from pipeline.errors import StoreError

    calls = tmp_path / "in"
    for i in range(4):
        stereo_call(f"c{i}.wav", directory=calls)
    config = vad_only_config.with_overrides({"run": {"commit_every_calls": 1}})
    real_commit = Store.commit
    count = {"n": 0}

    def commit_until_full(self, rows, kind="run", covers=None):
        count["n"] += 1
        if count["n"] == 3:
            raise StoreError(str(self.root), "cannot write results (No space left on device)")
        return real_commit(self, rows, kind, covers)

    monkeypatch.setattr(Store, "commit", commit_until_full)
    with pytest.raises(StoreError, match="No space left on device"):
        run_batch(calls, tmp_path / "store", config)
    monkeypatch.undo()
    assert sorted(Store(tmp_path / "store").read("calls")["call_id"].to_pylist()) == ["c0", "c1"]
    resumed = run_batch(calls, tmp_path / "store", config)
    assert (resumed.skipped, resumed.done) == (2, 2)
    assert Store(tmp_path / "store").read("calls").num_rows == 4


def test_process_call_writes_role_tagged_simplified_utterances(tmp_path, stereo_call):
    from pipeline.inputs import CallJob
    from pipeline.batch import Resources, process_call

    config = load_config()
    job = CallJob("c1", str(stereo_call()), "2026-11-22")
    transcriber = ScriptedTranscriber({"agent": "您好請問有什麼可以幫您", "customer": "我想查询一下订单"})
    outcome = process_call(job, "sha", Resources(config=config, analysers=Analysers.load(config), model_id="fake@1",
                                                  transcriber=transcriber))
    assert outcome.ok, outcome.error
    utterances = outcome.rows["utterances"]
    assert [u["role"] for u in utterances] == sorted((u["role"] for u in utterances), key=["agent", "customer"].index)
    assert {u["text"] for u in utterances if u["role"] == "agent"} == {"您好请问有什么可以帮您"}  # t2s applied
    first_customer = min(u["start_s"] for u in utterances if u["role"] == "customer")
    assert first_customer == pytest.approx(7.0 + speech_onset_s("BAC009S0764W0121.wav"), abs=0.1)
    assert {u["model_id"] for u in utterances} == {"fake@1"}
    assert all(u["words"][0]["probability"] == pytest.approx(0.9) for u in utterances)
