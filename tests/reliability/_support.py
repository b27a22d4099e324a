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
#: ``CALLQA_RELIABILITY_SCALE=N`` multiplies the fuzz examples and kills (a longer soak than CI's).
SCALE = max(1, int(os.environ.get("CALLQA_RELIABILITY_SCALE", "1")))
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


def run_command(input_path: Path, store: Path, config: Path, workers: int = 1, engine: str = "local") -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", str(input_path), "--out", str(store), "--config", str(config),
            "--workers", str(workers), "--engine", engine, "-q"]


def user_env() -> dict[str, str]:
    """This environment as an operator's shell has it (no RUST_BACKTRACE, which this sandbox sets)."""
    return {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}


def start_run(input_path: Path, store: Path, config: Path, workers: int = 1,
              engine: str = "local") -> subprocess.Popen[str]:
    """``callqa run`` in its own process group (so a test can always clean up after it)."""
    return subprocess.Popen(run_command(input_path, store, config, workers, engine), cwd=REPO, text=True,
                            env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def run_to_end(input_path: Path, store: Path, config: Path, workers: int = 1, timeout_s: float = 240,
               engine: str = "local") -> subprocess.CompletedProcess[str]:
    return subprocess.run(run_command(input_path, store, config, workers, engine), cwd=REPO, text=True,
                          env=user_env(), capture_output=True, timeout=timeout_s)


def stable_rows(store: Path, table: str) -> list[tuple[Any, ...]]:
    """Current rows of ``table`` without the volatile columns, sorted (duplicates stay visible)."""
    from pipeline.store import Store

    rows = Store(store).read(table).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in VOLATILE)) for row in rows)


def difference(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], limit: int = 5) -> str:
    """The first differing rows and columns of two :func:`stable_rows` lists, for a failure message."""
    missing = [dict(r) for r in expected if r not in got]
    extra = [dict(r) for r in got if r not in expected]
    lines = [f"{len(missing)} expected rows missing, {len(extra)} unexpected rows"]
    for want in missing[:limit]:
        same = [dict(r) for r in extra if dict(r).get("call_id") == want.get("call_id")]
        if same:
            cols = [k for k in want if same[0].get(k) != want[k]]
            changes = "; ".join(f"{c}: {same[0].get(c)} != {want[c]}" for c in cols[:4])
            lines.append(f"{want.get('call_id')}: {changes}")
        else:
            lines.append(f"{want.get('call_id')}: missing")
    return "\n".join(lines)


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


# -- a decoder in its own process, for fuzzing (a crash or a hang is reported, not suffered) ------
def _serve_decodes(conn: Any) -> None:
    from pipeline.audio.decode import load_call
    from pipeline.config import load_config
    from pipeline.errors import CallqaError

    config = load_config().with_overrides({"asr": {"enabled": False}})
    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            call = load_call(path, config)
            finite = all(bool(np.isfinite(c.samples).all()) for c in call.channels)
            conn.send(("ok", call.duration_s, len(call.channels), finite))
        except CallqaError as exc:
            conn.send((type(exc).__name__, exc.reason, str(exc)))
        except Exception as exc:  # noqa: BLE001 - an undocumented error is what the fuzz test looks for
            import traceback

            where = " < ".join(f"{f.name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[::-1][:4])
            conn.send(("undocumented", f"{type(exc).__name__}: {exc}", where))


class DecodeServer:
    """:func:`pipeline.audio.decode.load_call` in a spawned process; ``decode`` says ok, the error,
    ``crash`` (the process died, with its exit code) or ``hang`` (no answer in time)."""

    def __init__(self) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.process: Any = None
        self.conn: Any = None
        self.tried = 0

    def _start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(target=_serve_decodes, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.conn = parent

    def decode(self, path: Path, timeout_s: float = 30.0) -> tuple[Any, ...]:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.tried += 1
        self.conn.send(str(path))
        if not self.conn.poll(timeout_s):
            self.process.kill()
            self.process.join()
            self.process = None
            return ("hang",)
        try:
            return tuple(self.conn.recv())
        except (EOFError, OSError):
            self.process.join()
            code = self.process.exitcode
            self.process = None
            return ("crash", code)

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.send(None)
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
