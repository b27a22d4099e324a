"""SIGKILL a real `callqa run` at random moments and at commit boundaries, with 1 and 2 workers:
every restart resumes, the final store equals an uninterrupted run's, and no worker outlives
the killed parent (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _support import (
    SCALE,
    commit_files,
    descendants,
    difference,
    kill_group,
    make_corpus,
    record_figures,
    run_to_end,
    start_run,
    store_rows,
    survivors,
    write_config,
)

N_CALLS = 20 * SCALE  # + 2 bad files: every kind of row (ok and failed) must survive the kills
ATTEMPTS = 11 * SCALE  # per worker count; kills that land after the run finished are not counted
MIN_KILLS = 10 * SCALE


@dataclass(frozen=True)
class Reference:
    store: Path
    rows: dict
    startup_s: float  # until the first commit appeared
    total_s: float

    @property
    def call_s(self) -> float:
        """Wall time per call once started (commits included)."""
        return (self.total_s - self.startup_s) / (N_CALLS + 2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("kill") / "calls"
    make_corpus(directory, N_CALLS, seed=13)
    return directory


@pytest.fixture(scope="module")
def config(corpus) -> Path:
    return write_config(corpus.parent / "vad.toml", commit_every_calls=1)


@pytest.fixture(scope="module")
def reference(corpus, config) -> Reference:
    """An uninterrupted run (one worker), timed so kills can be spread over a run's life."""
    store = corpus.parent / "reference"
    started = time.monotonic()
    process = start_run(corpus, store, config)
    first_commit_s = None
    try:
        while process.poll() is None:
            if first_commit_s is None and commit_files(store) > 0:
                first_commit_s = time.monotonic() - started
            time.sleep(0.01)
    finally:
        kill_group(process)
    out, err = process.communicate()
    assert process.returncode == 1, err  # the two bad files failed
    assert f"{N_CALLS + 2} calls: {N_CALLS} done, 2 failed" in out
    rows = store_rows(store)
    assert len(rows["calls"]) == N_CALLS + 2 and len(rows["errors"]) == 2
    return Reference(store, rows, first_commit_s or 1.0, time.monotonic() - started)


def kill_at(process: subprocess.Popen[str], store: Path, mode: str, rng: random.Random,
            reference: Reference) -> tuple[bool, list]:
    """SIGKILL the run's parent process only; return whether it was still running, and its children then.

    ``random``: a random moment, either during start-up or within two calls' time after this run's
    first commit (timed from the run itself, so the kill lands while work remains whatever the load).
    ``commit``: when the 1st to 5th Delta log entry of this run appears: inside a commit (tables
    appended, ``calls`` not yet merged) or just after it.
    """
    started, baseline = time.monotonic(), commit_files(store)
    if mode == "random" and rng.random() < 0.4:
        deadline = started + rng.uniform(0.3, 0.9) * reference.startup_s
        due = lambda: time.monotonic() >= deadline  # noqa: E731
    elif mode == "random":
        delay = rng.uniform(0.0, 2 * reference.call_s)
        first: list[float] = []

        def due() -> bool:
            if not first and commit_files(store) > baseline:
                first.append(time.monotonic())
            return bool(first) and time.monotonic() >= first[0] + delay
    else:
        target = baseline + rng.randint(1, 5)
        due = lambda: commit_files(store) >= target  # noqa: E731
    while process.poll() is None:
        if due():
            children = descendants(process.pid)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True, children
        time.sleep(0.003)
    return False, []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_and_resume_gives_the_uninterrupted_store(tmp_path, corpus, config, reference, workers):
    rng = random.Random(1300 + workers)
    store = tmp_path / "store"
    kills = {"random": 0, "commit": 0}
    restarts = 0
    for attempt in range(ATTEMPTS):
        mode = "commit" if attempt % 2 else "random"
        process = start_run(corpus, store, config, workers)
        restarts += 1
        try:
            killed, children = kill_at(process, store, mode, rng, reference)
        finally:
            kill_group(process)
            process.communicate()
        if killed:
            kills[mode] += 1
            assert survivors(children) == [], f"workers outlived the killed run (attempt {attempt}, {mode})"
        else:
            assert process.returncode == 1, f"a restart did not complete (attempt {attempt})"
    final = run_to_end(corpus, store, config, workers)
    assert final.returncode == 1, final.stderr  # the two bad files' failures, nothing else
    assert re.search(rf"^{N_CALLS + 2} calls: \d+ done, \d+ failed, \d+ already done", final.stdout, re.M)
    assert final.stderr.strip() == ""
    rows = store_rows(store)
    for table, expected in reference.rows.items():
        assert rows[table] == expected, f"{table}: not the uninterrupted run's: {difference(rows[table], expected)}"
    total = sum(kills.values())
    record_figures("sigkill", workers=workers, runs=restarts + 1, kills=total, kills_random=kills["random"],
                   kills_commit=kills["commit"], calls=N_CALLS + 2, rows_lost=0, rows_duplicated=0)
    assert total >= MIN_KILLS, kills
    assert kills["commit"] >= MIN_KILLS // 2 - 1
