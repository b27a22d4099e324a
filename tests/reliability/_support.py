"""Helpers of the reliability suite: corpora from the real clips, `callqa run` subprocesses,
store comparison, process trees, and fake transcribers that crash or hang (picklable, so the
engine's spawned workers can load them by module name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
CLIP_NAMES = ("asr_example.wav", "BAC009S0764W0121.wav", "BAC009S0764W0122.wav", "news_5s.wav", "news_8s.wav")
SR = 16_000
TABLES = ("calls", "segments", "utterances", "hits", "errors", "features")
#: Columns that legitimately differ between two runs of the same input (result ids, times).
VOLATILE = {"transcript_id", "analysis_id", "score_id", "committed_at", "processing_s", "occurred_at"}


def clip(name: str) -> np.ndarray:
    data, rate = soundfile.read(CLIPS / name, dtype="float32")
    assert rate == SR
    return data


def make_corpus(directory: Path, n_calls: int, seed: int = 0, bad: bool = True) -> list[Path]:
    """``n_calls`` short calls (3-4 s, mono and stereo) cut from the real clips, plus two bad files.

    Bad files (an empty one and a text file) make sure error rows survive kills too.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_calls):
        first, second = (clip(str(name)) for name in rng.choice(CLIP_NAMES, 2))
        start = int(rng.integers(0, SR))
        agent = first[start:start + 3 * SR]
        path = directory / f"call{i:03d}.wav"
        if i % 2:
            audio = np.zeros((4 * SR, 2), np.float32)
            audio[:len(agent), 0] = agent
            customer = second[: 3 * SR]
            audio[SR:SR + len(customer), 1] = customer
        else:
            audio = agent
        soundfile.write(path, audio, SR, subtype="PCM_16")
        paths.append(path)
    if bad:
        (directory / "empty.wav").write_bytes(b"")
        (directory / "notes.wav").write_text("这不是录音", encoding="utf-8")
        paths += [directory / "empty.wav", directory / "notes.wav"]
    return paths


def write_config(path: Path, **run: Any) -> Path:
    """A VAD-only configuration (no Whisper: minutes become seconds) with ``[run]`` overrides."""
    lines = ["[asr]", "enabled = false", "[run]"]
    lines += [f"{key} = {value!r}" if not isinstance(value, bool) else f"{key} = {str(value).lower()}"
              for key, value in run.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_command(input_path: Path, store: Path, config: Path, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", str(input_path), "--out", str(store), "--config", str(config),
            "--workers", str(workers), "-q"]


def start_run(input_path: Path, store: Path, config: Path, workers: int = 1) -> subprocess.Popen[str]:
    """``callqa run`` in its own process group (so a test can always clean up after it)."""
    return subprocess.Popen(run_command(input_path, store, config, workers), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def run_to_end(input_path: Path, store: Path, config: Path, workers: int = 1,
               timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(run_command(input_path, store, config, workers), cwd=REPO, text=True,
                          capture_output=True, timeout=timeout_s)


def stable_rows(store: Path, table: str) -> list[tuple[Any, ...]]:
    """Current rows of ``table`` without the volatile columns, sorted (duplicates stay visible)."""
    from pipeline.store import Store

    rows = Store(store).read(table).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in VOLATILE)) for row in rows)


def store_rows(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: stable_rows(store, table) for table in TABLES}


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def survivors(processes: Sequence[psutil.Process], timeout_s: float = 15.0) -> list[int]:
    """The processes still running (not zombies) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = list(processes)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if alive:
            time.sleep(0.1)
    return [p.pid for p in alive if _running(p)]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_group(process: subprocess.Popen[str]) -> None:
    """Last-resort cleanup of a test's own process group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def commit_files(store: Path) -> int:
    """Delta log entries over every table: grows by one per table a commit writes."""
    total = 0
    for table in TABLES:
        try:
            total += sum(1 for name in os.listdir(store / table / "_delta_log") if name.endswith(".json"))
        except FileNotFoundError:
            pass
    return total


# -- fake transcribers for the isolation tests (run inside spawned workers) ----------------------
class CrashingTranscriber:
    """Kills its own worker with ``signal_number`` on calls at least ``min_samples`` long; else no words."""

    model_id = "fake-crash@1"

    def __init__(self, signal_number: int = signal.SIGSEGV, min_samples: int = 0) -> None:
        self.signal_number = signal_number
        self.min_samples = min_samples

    def transcribe(self, channels: Sequence[Any]) -> list[Any]:
        if max(len(c.samples) for c in channels) >= self.min_samples:
            os.kill(os.getpid(), self.signal_number)
        return []


class SleepingTranscriber:
    """Sleeps ``seconds`` on calls at least ``min_samples`` long (a call that runs too long); else no words."""

    model_id = "fake-sleep@1"

    def __init__(self, seconds: float, min_samples: int = 0) -> None:
        self.seconds = seconds
        self.min_samples = min_samples

    def transcribe(self, channels: Sequence[Any]) -> list[Any]:
        if max(len(c.samples) for c in channels) >= self.min_samples:
            time.sleep(self.seconds)
        return []


def record_figures(suite: str, **figures: Any) -> None:
    """Append this suite's figures (runs, kills, inputs tried...) to ``$CALLQA_RELIABILITY_FIGURES``
    (JSON lines) when set: ``docs/reliability.md`` is written from them."""
    target = os.environ.get("CALLQA_RELIABILITY_FIGURES")
    if target:
        import json

        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"suite": suite, **figures}, ensure_ascii=False) + "\n")
