"""SIGKILL a real `callqa run --engine ray` (its own local Ray cluster) at random moments: every
restart resumes, the final store equals an uninterrupted *local* run's, and none of the Ray
processes the run started outlives it. Ray's dashboard and runtime-env agents see their raylet die
at once but then spend 60 s failing to report it to the dead GCS (a fixed timeout in Ray's
``publish_error_to_driver``), so each restart follows its kill at once, as an operator's would,
while those agents are still exiting, and they are checked once at the end.

Ray takes about ten seconds to start on 2 cores, so this suite kills fewer times than the local
one (``tests/reliability/test_kill_resume.py``); the store's commit path is the same.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
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

pytest.importorskip("ray", reason="Ray is an optional engine (pip install 'callqa[ray]')")

N_CALLS = 16 * SCALE  # + 2 bad files; enough that MIN_KILLS kills land before a fast machine finishes them
ATTEMPTS = 6 * SCALE
MIN_KILLS = 4 * SCALE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("kill_ray") / "calls"
    make_corpus(directory, N_CALLS, seed=29)
    return directory


@pytest.fixture(scope="module")
def config(corpus) -> Path:
    return write_config(corpus.parent / "vad.toml", commit_every_calls=1)


@pytest.mark.slow
def test_sigkill_of_a_ray_run_and_resume_gives_the_uninterrupted_store(tmp_path, corpus, config) -> None:
    reference = run_to_end(corpus, tmp_path / "local", config)
    assert reference.returncode == 1, reference.stderr  # the two bad files
    expected = store_rows(tmp_path / "local")
    rng = random.Random(2900)
    store = tmp_path / "ray"
    kills, restarts, orphans = 0, 0, []
    for attempt in range(2 * ATTEMPTS):
        # On a loaded machine a run can finish every call before the later attempts find a commit
        # to kill after; kills during Ray's start-up (odd attempts) never run out, so go on to MIN_KILLS.
        if attempt >= ATTEMPTS and kills >= MIN_KILLS:
            break
        process = start_run(corpus, store, config, workers=2, engine="ray")
        started = time.monotonic()
        restarts += 1
        baseline, first_commit = commit_files(store), None
        delay = rng.uniform(0.0, 1.5)
        killed = False
        try:
            while process.poll() is None:
                if first_commit is None and commit_files(store) > baseline:
                    first_commit = time.monotonic()
                # odd attempts: during Ray's start-up, or at the first commit if Ray started sooner (a run
                # that got through every call before its kill leaves nothing for later attempts to kill);
                # even attempts: after this run's first commit
                if (attempt % 2 and (time.monotonic() - started > 4.0 + delay or first_commit is not None)) or (
                        first_commit is not None and time.monotonic() >= first_commit + delay):
                    children = descendants(process.pid)
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    killed = True
                    orphans += children
                    break
                time.sleep(0.005)
        finally:
            kill_group(process)
            process.communicate()
        kills += killed
        if not killed:
            assert process.returncode == 1, f"a restart did not complete (attempt {attempt})"
    final = run_to_end(corpus, store, config, workers=2, engine="ray", timeout_s=300)
    # every process of the killed runs is gone within Ray's 60 s (the last kill was before the final run)
    left_behind = survivors(orphans, timeout_s=90.0)
    assert left_behind == [], f"Ray processes outlived the killed runs: {left_behind}"
    assert final.returncode == 1, final.stderr
    assert re.search(rf"^{N_CALLS + 2} calls: \d+ done, \d+ failed, \d+ already done", final.stdout, re.M)
    rows = store_rows(store)
    for table, want in expected.items():
        assert rows[table] == want, f"{table}: not the uninterrupted run's: {difference(rows[table], want)}"
    record_figures("sigkill_ray", workers=2, runs=restarts + 1, kills=kills, calls=N_CALLS + 2, rows_lost=0,
                   rows_duplicated=0)
    assert kills >= MIN_KILLS

