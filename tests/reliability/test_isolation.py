"""A call that crashes its process or runs too long costs only that call (pipeline/engines/local.py),
lying headers never reach a decoder in a batch, and calls without usable audio are never a pass."""

from __future__ import annotations

import signal
import struct
import time

import numpy as np
import pytest
import soundfile
from _support import CLIPS, SR, CrashingTranscriber, SleepingTranscriber, clip, record_figures

from pipeline.analysis import ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.store import Store

TRIGGER_S = 6.0  # only the 6-s call trips the fake transcribers; the others are 3 s


@pytest.fixture
def vad_config():
    return load_config().with_overrides({"asr": {"enabled": False}})


@pytest.fixture
def calls_dir(tmp_path):
    directory = tmp_path / "calls"
    directory.mkdir()
    speech = clip("news_8s.wav")
    for name in ("a", "b", "c"):
        soundfile.write(directory / f"{name}.wav", speech[: 3 * SR], SR, subtype="PCM_16")
    soundfile.write(directory / "trigger.wav", speech[: int(TRIGGER_S * SR)], SR, subtype="PCM_16")
    # The lying headers: a mono 16-bit file whose channel field says 8 or 64.
    for channels in (8, 64):
        data = bytearray((CLIPS / "asr_example.wav").read_bytes())
        struct.pack_into("<H", data, 22, channels)
        (directory / f"lying{channels}.wav").write_bytes(bytes(data))
    return directory


def calls_of(store):
    return {r["call_id"]: r for r in Store(store).read(
        "calls", columns=["status", "error_type", "error_message"]).to_pylist()}


@pytest.mark.parametrize(("workers", "signal_number"), [(1, signal.SIGSEGV), (2, signal.SIGSEGV), (2, signal.SIGKILL)])
def test_a_worker_that_dies_costs_one_call(tmp_path, calls_dir, vad_config, workers, signal_number):
    spec = ResourceSpec(vad_config, transcriber=CrashingTranscriber(signal_number, min_samples=int(5 * SR)))
    summary = run_batch(calls_dir, tmp_path / "store", vad_config, RunOptions(workers=workers), resources=spec)
    assert (summary.planned, summary.done, summary.failed) == (6, 3, 3)
    assert summary.failures == {"WorkerCrash": 1, "UnsupportedAudioError": 2}
    calls = calls_of(tmp_path / "store")
    assert {k for k, r in calls.items() if r["status"] == "ok"} == {"a", "b", "c"}
    assert calls["trigger"]["error_type"] == "WorkerCrash"
    assert signal.Signals(signal_number).name in calls["trigger"]["error_message"]
    assert "contradicts itself" in calls["lying8"]["error_message"]
    assert "declares 64 channels" in calls["lying64"]["error_message"]
    # A restart gets past the crashing file: it is recorded, not retried for ever.
    again = run_batch(calls_dir, tmp_path / "store", vad_config, RunOptions(workers=workers), resources=spec)
    assert (again.skipped, again.done, again.failed, again.failed_before) == (6, 0, 0, 3)


def test_a_call_past_the_time_limit_is_stopped_and_the_batch_goes_on(tmp_path, calls_dir, vad_config):
    config = vad_config.with_overrides({"run": {"call_timeout_s": 3.0}})
    spec = ResourceSpec(config, transcriber=SleepingTranscriber(120.0, min_samples=int(5 * SR)))
    started = time.monotonic()
    summary = run_batch(calls_dir, tmp_path / "store", config, RunOptions(workers=2), resources=spec)
    assert time.monotonic() - started < 60  # not the 120 s the call would take
    assert summary.failures == {"CallTimeout": 1, "UnsupportedAudioError": 2}
    calls = calls_of(tmp_path / "store")
    assert calls["trigger"]["error_message"].endswith("stopped after 3 s ([run] call_timeout_s)")
    assert {k for k, r in calls.items() if r["status"] == "ok"} == {"a", "b", "c"}


def test_calls_without_usable_speech_are_never_a_pass(tmp_path, vad_config):
    # Before: a 60-s silent call and 1- or 10-sample files scored 100/A/pass.
    directory = tmp_path / "calls"
    directory.mkdir()
    soundfile.write(directory / "silent60.wav", np.zeros(60 * SR, np.float32), SR, subtype="PCM_16")
    soundfile.write(directory / "stereo_silent.wav", np.zeros((20 * SR, 2), np.float32), SR, subtype="PCM_16")
    soundfile.write(directory / "one.wav", np.zeros(1, np.float32), SR, subtype="PCM_16")
    soundfile.write(directory / "ten.wav", np.full(10, 0.3, np.float32), SR, subtype="PCM_16")
    noise = np.random.default_rng(0).normal(0, 1e-4, 30 * SR).astype(np.float32)  # hiss, no speech
    soundfile.write(directory / "hiss.wav", noise, SR, subtype="PCM_16")
    soundfile.write(directory / "speech.wav", clip("news_8s.wav"), SR, subtype="PCM_16")
    summary = run_batch(directory, tmp_path / "store", vad_config, RunOptions(isolate=False))
    assert summary.failed == 0
    features = {r["call_id"]: r for r in Store(tmp_path / "store").read(
        "features", columns=["outcome", "outcome_reasons", "score", "grade", "passed"]).to_pylist()}
    for call_id in ("silent60", "stereo_silent", "one", "ten", "hiss"):
        row = features[call_id]
        assert row["outcome"] == "needs_listening", (call_id, row)
        assert "no_speech" in row["outcome_reasons"], (call_id, row)
        assert row["score"] is None and row["passed"] is not True, (call_id, row)
    assert features["speech"]["outcome"] != "needs_listening"
    record_figures("outcomes", calls_without_speech=5, passed=0)
