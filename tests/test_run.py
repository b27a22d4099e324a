"""The batch runner on real audio: bad files recorded, resume, manifests, workers, SIGKILL, full disk."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ScriptedTranscriber

from pipeline.analysis import Resources, ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.errors import ManifestError
from pipeline.store import Store

#: Where speech starts in each clip, read off its 20 ms energy envelope (the first frame more than
#: 12 dB above the clip's own leading room noise; tests/data/clips/ATTRIBUTION.md lists the clips).
#: Measured once from the clip data, independently of the VAD under test.
REFERENCE_ONSET_S = {"asr_example.wav": 0.90, "BAC009S0764W0121.wav": 0.52, "BAC009S0764W0122.wav": 0.50,
                     "news_5s.wav": 0.65}
IN_PROCESS = RunOptions(isolate=False)
#: Columns that legitimately differ between two runs of the same input (result ids, times).
VOLATILE = {"transcript_id", "analysis_id", "score_id", "committed_at", "processing_s", "occurred_at"}


def assert_onset(found_s: float, placed_at_s: float, clip: str) -> None:
    """A turn found on the call clock starts where the clip was placed plus the clip's own onset.

    Up to 0.1 s late (one VAD frame), up to 0.3 s early: the VAD pads speech by 0.1 s and onset
    repair may take in the clip's leading room noise (about -50 dBFS, far above the digital
    silence around a placed clip) for up to another 0.2 s.
    """
    expected = placed_at_s + REFERENCE_ONSET_S[clip]
    assert expected - 0.3 <= found_s <= expected + 0.1, (clip, found_s, expected)


def stable_rows(store_dir: Path, table: str) -> list[tuple]:
    """Rows without the columns that legitimately differ between runs (result ids, timings)."""
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
    summary = run_batch(mixed_dir, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (summary.planned, summary.done, summary.failed) == (5, 2, 3)
    assert summary.failures == {"UnsupportedAudioError": 3}
    store = Store(tmp_path / "store")
    calls = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert {k for k, r in calls.items() if r["status"] == "ok"} == {"good1", "sub/good2"}
    errors = {r["call_id"]: r for r in store.read("errors").to_pylist()}
    assert {k: r["message"] for k, r in errors.items() if k != "corrupt"} == {
        "empty": "empty file (0 bytes)", "readme": "not an audio file (FFmpeg cannot read its format)"}
    assert errors["corrupt"]["message"].startswith("truncated")
    assert {r["stage"] for r in errors.values()} == {"ingest"}
    assert calls["empty"]["error_type"] == "UnsupportedAudioError"
    good = calls["good1"]
    assert good["roles"] == ["agent", "customer"] and good["duration_s"] == pytest.approx(12.0)
    assert good["config_hash"] == vad_only_config.config_hash and good["asr_model"] == "none"
    facts = {f["role"]: f for f in good["channels"]}
    assert 3.5 < facts["agent"]["speech_s"] < 5.6  # asr_example.wav: 5.5 s with pauses
    assert facts["customer"]["speech_s"] < 4.3  # BAC009S0764W0121.wav is 4.2 s
    segments = store.read("segments", call_ids=["good1"]).to_pylist()
    # on the call clock: placement offset (agent 0.5 s, customer 7.0 s) + where the clip's own speech starts
    assert_onset(min(s["start_s"] for s in segments if s["role"] == "agent"), 0.5, "asr_example.wav")
    assert_onset(min(s["start_s"] for s in segments if s["role"] == "customer"), 7.0, "BAC009S0764W0121.wav")
    other = store.read("segments", call_ids=["sub/good2"]).to_pylist()
    assert_onset(min(s["start_s"] for s in other if s["role"] == "agent"), 0.0, "news_5s.wav")
    assert_onset(min(s["start_s"] for s in other if s["role"] == "customer"), 6.0, "BAC009S0764W0122.wav")

    again = run_batch(mixed_dir, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (again.skipped, again.done, again.failed, again.failed_before) == (5, 0, 0, 3)  # no work redone


def test_changed_audio_or_config_is_redone(tmp_path, mixed_dir, vad_only_config, stereo_call):
    store_dir = tmp_path / "store"
    run_batch(mixed_dir, store_dir, vad_only_config, IN_PROCESS)
    stereo_call("good1.wav", total_s=14.0, directory=mixed_dir)  # same call id, new content
    assert run_batch(mixed_dir, store_dir, vad_only_config, IN_PROCESS).done == 1
    other = vad_only_config.with_overrides({"timing": {"silence_min_s": 7.0}})
    assert run_batch(mixed_dir, store_dir, other, IN_PROCESS).done == 2
    forced = run_batch(mixed_dir, store_dir, other, RunOptions(force=True, isolate=False))
    assert (forced.done, forced.failed) == (2, 3)
    # The store keeps one current row per call (the latest analysis): the runs with the first
    # config were superseded, not kept beside the new ones as callqa 0.1's ledger did.
    calls = Store(store_dir).read("calls").to_pylist()
    assert sorted(r["call_id"] for r in calls) == ["corrupt", "empty", "good1", "readme", "sub/good2"]
    assert {r["config_hash"] for r in calls} == {other.config_hash} != {vad_only_config.config_hash}
    durations = {r["call_id"]: r["duration_s"] for r in calls if r["status"] == "ok"}
    assert durations == {"good1": pytest.approx(14.0), "sub/good2": pytest.approx(12.0)}


def test_report_and_run_options_leave_the_resume_key_alone(tmp_path, stereo_call, vad_only_config):
    """[run] and [reports] do not change results, so changing them redoes nothing."""
    audio = stereo_call("c1.wav")
    run_batch(audio, tmp_path / "store", vad_only_config, IN_PROCESS)
    tuned = vad_only_config.with_overrides({"run": {"commit_every_calls": 3}, "reports": {"top_calls": 5}})
    assert tuned.config_hash == vad_only_config.config_hash
    assert run_batch(audio, tmp_path / "store", tuned, IN_PROCESS).skipped == 1


def test_manifest_metadata_reaches_every_row(tmp_path, stereo_call, vad_only_config):
    stereo_call("a.wav", directory=tmp_path / "audio")
    stereo_call("b.wav", directory=tmp_path / "audio")
    manifest = tmp_path / "calls.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["call_id", "path", "agent_id", "team", "started_at", "channel_roles", "queue"])
        writer.writerow(["C-1", "audio/a.wav", "A007", "售后一组", "2026-11-20T09:15:00+08:00", "", "vip"])
        writer.writerow(["C-2", "audio/b.wav", "A008", "售后二组", "2026-11-21T10:00:00", "customer,agent", ""])
    run_batch(manifest, tmp_path / "store", vad_only_config, IN_PROCESS)
    store = Store(tmp_path / "store")
    rows = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert rows["C-1"]["agent_id"] == "A007" and rows["C-1"]["team"] == "售后一组"
    assert rows["C-1"]["call_date"] == "2026-11-20" and rows["C-2"]["call_date"] == "2026-11-21"
    assert dict(rows["C-1"]["metadata"]) == {"queue": "vip"} and rows["C-2"]["metadata"] is None
    features = {r["call_id"]: r for r in store.read("features").to_pylist()}
    assert (features["C-2"]["agent_id"], features["C-2"]["team"]) == ("A008", "售后二组")
    segments = store.read("segments", call_ids=["C-2"]).to_pylist()
    first_agent = min(s["start_s"] for s in segments if s["role"] == "agent")
    # channel_roles swapped: the right channel (customer clip at 7 s) is the agent
    assert_onset(first_agent, 7.0, "BAC009S0764W0121.wav")


def test_a_manifest_row_whose_file_is_missing_is_that_calls_input_error(tmp_path, vad_only_config, stereo_call):
    stereo_call("a.wav", directory=tmp_path / "audio")
    manifest = tmp_path / "calls.csv"
    manifest.write_text("call_id,path\nok,audio/a.wav\nx,audio/missing.wav\n", encoding="utf-8")
    summary = run_batch(manifest, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (summary.done, summary.failed, summary.failures) == (1, 1, {"ManifestError": 1})
    [error] = Store(tmp_path / "store").read("errors").to_pylist()
    assert error["call_id"] == "x" and error["error_type"] == "ManifestError"
    assert error["message"] == f"file not found (manifest {manifest}, line 3)"


def test_a_parquet_manifest_is_read_like_a_csv_one(tmp_path, stereo_call, vad_only_config):
    import pyarrow as pa
    import pyarrow.parquet as pq

    stereo_call("a.wav", directory=tmp_path / "audio")
    stereo_call("b.wav", directory=tmp_path / "audio")
    manifest = tmp_path / "calls.parquet"
    pq.write_table(pa.table({
        "call_id": ["P-1", "P-2"], "path": ["audio/a.wav", str(tmp_path / "audio" / "b.wav")],
        "agent_id": ["A1", None], "team": ["售后一组", "售后二组"],
        "started_at": ["2026-11-20T23:30:00+08:00", None], "channel_roles": [None, "customer,agent"],
        "priority": pa.array([3, None], pa.int64()),  # a non-text column: stored as text metadata
    }), manifest)
    summary = run_batch(manifest, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (summary.planned, summary.done, summary.failed) == (2, 2, 0)
    store = Store(tmp_path / "store")
    rows = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert rows["P-1"]["path"] == str(tmp_path / "audio" / "a.wav")  # relative to the manifest
    assert (rows["P-1"]["agent_id"], rows["P-1"]["team"], rows["P-2"]["agent_id"]) == ("A1", "售后一组", None)
    assert rows["P-1"]["call_date"] == "2026-11-20"  # the call's own time zone, not UTC
    assert dict(rows["P-1"]["metadata"]) == {"priority": "3"} and rows["P-2"]["metadata"] is None
    segments = store.read("segments", call_ids=["P-2"]).to_pylist()
    assert_onset(min(s["start_s"] for s in segments if s["role"] == "agent"), 7.0, "BAC009S0764W0121.wav")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ManifestError, match="not a readable Parquet manifest"):
        run_batch(broken, tmp_path / "store", vad_only_config, IN_PROCESS)


def test_worker_processes_give_the_same_rows_as_one_process(tmp_path, mixed_dir):
    """Two spawned workers (the fake transcriber is pickled to them) store what one process stores."""
    config = load_config()
    spec = ResourceSpec(config, transcriber=ScriptedTranscriber({"agent": "您好请问有什么可以帮您",
                                                                 "customer": "我想查询一下订单"}))
    run_batch(mixed_dir, tmp_path / "one", config, IN_PROCESS, resources=spec)
    two = run_batch(mixed_dir, tmp_path / "two", config, RunOptions(workers=2), resources=spec)
    assert (two.done, two.failed) == (2, 3)
    for table in ("calls", "segments", "utterances", "hits", "errors", "features"):
        assert stable_rows(tmp_path / "one", table) == stable_rows(tmp_path / "two", table), table
    texts = {u["text"] for u in Store(tmp_path / "two").read("utterances").to_pylist()}
    assert texts == {"您好请问有什么可以帮您", "我想查询一下订单"}
    assert {r["asr_model"] for r in Store(tmp_path / "two").read("calls").to_pylist()} == {"fake@1"}


def _process_tree(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pids: list[int]) -> list[int]:
    import psutil

    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_gives_the_same_store_and_leaves_no_worker(tmp_path, stereo_call,
                                                                                  vad_only_config):
    calls = tmp_path / "in"
    layouts = [("asr_example.wav", "BAC009S0764W0121.wav"), ("news_8s.wav", "BAC009S0764W0122.wav"),
               ("news_5s.wav", "asr_example.wav")]
    for i in range(8):
        agent, customer = layouts[i % 3]
        stereo_call(f"call{i:02d}.wav", agent=[(agent, 0.3 + i % 3)], customer=[(customer, 7.0 + i % 4)],
                    total_s=16.0, directory=calls)
    (calls / "bad.wav").write_text("not audio")
    config = tmp_path / "c.toml"
    config.write_text("[asr]\nenabled = false\n[run]\ncommit_every_calls = 1\n")
    settings = vad_only_config.with_overrides({"run": {"commit_every_calls": 1}})
    run_batch(calls, tmp_path / "reference", settings, IN_PROCESS)

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(calls), "--config", str(config), "-q",
                                "--workers", "2", "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "calls" / "_delta_log"
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and len(list(log.glob("*.json"))) < 4:  # table creation + 3 commits
        workers = _process_tree(process.pid) or workers
        time.sleep(0.005)
    workers = _process_tree(process.pid) or workers
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(workers) >= 2, "the run must have started its worker processes"
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(workers) == [], "worker processes must die with the run that started them"
    committed = Store(killed).read("calls").num_rows
    assert 3 <= committed < 9, "the kill must land mid-batch"
    resumed = run_batch(calls, killed, settings, IN_PROCESS)
    assert resumed.skipped == committed and resumed.done + resumed.failed == 9 - committed
    for table in ("calls", "segments", "errors", "features"):
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

    def commit_until_full(self, results, kind="run", metadata=None):
        count["n"] += 1
        if count["n"] == 3:
            raise StoreError(str(self.root), "cannot write results (No space left on device)")
        return real_commit(self, results, kind, metadata)

    monkeypatch.setattr(Store, "commit", commit_until_full)
    with pytest.raises(StoreError, match="No space left on device"):
        run_batch(calls, tmp_path / "store", config, IN_PROCESS)
    monkeypatch.undo()
    assert sorted(Store(tmp_path / "store").read("calls")["call_id"].to_pylist()) == ["c0", "c1"]
    resumed = run_batch(calls, tmp_path / "store", config, IN_PROCESS)
    assert (resumed.skipped, resumed.done) == (2, 2)
    assert Store(tmp_path / "store").read("calls").num_rows == 4


def test_process_job_writes_role_tagged_simplified_utterances(tmp_path, stereo_call):
    from pipeline.inputs import CallJob
    from pipeline.process import process_job

    config = load_config()
    job = CallJob("c1", str(stereo_call()), "2026-11-22")
    transcriber = ScriptedTranscriber({"agent": "您好請問有什麼可以幫您", "customer": "我想查询一下订单"})
    outcome = process_job(job, "sha", Resources.load(config, transcriber=transcriber))
    assert outcome.ok, outcome.error
    assert outcome.audio_s == pytest.approx(12.0)
    utterances = outcome.result.rows["utterances"]
    assert [u["utterance_index"] for u in utterances] == list(range(len(utterances)))
    assert [u["start_s"] for u in utterances] == sorted(u["start_s"] for u in utterances)
    assert {u["text"] for u in utterances if u["role"] == "agent"} == {"您好请问有什么可以帮您"}  # t2s applied
    first_customer = min(u["start_s"] for u in utterances if u["role"] == "customer")
    assert_onset(first_customer, 7.0, "BAC009S0764W0121.wav")
    assert {u["asr_model"] for u in utterances} == {"fake@1"}
    assert all(u["words"][0]["probability"] == pytest.approx(0.9) for u in utterances)
    assert outcome.result.call["status"] == "ok" and outcome.result.call["audio_sha256"] == "sha"


def test_process_job_turns_a_crash_in_a_stage_into_that_calls_error_rows(tmp_path, stereo_call):
    from pipeline.inputs import CallJob
    from pipeline.process import process_job

    class Broken(ScriptedTranscriber):
        def transcribe(self, channels):
            raise RuntimeError("decoder exploded")

    job = CallJob("c1", str(stereo_call()), "2026-11-22")
    outcome = process_job(job, "sha", Resources.load(load_config(), transcriber=Broken({})))
    assert not outcome.ok and outcome.error_type == "RuntimeError"
    [error] = outcome.result.rows["errors"]
    assert (error["stage"], error["message"]) == ("transcribe", "RuntimeError: decoder exploded")
    assert outcome.result.call["status"] == "failed"
