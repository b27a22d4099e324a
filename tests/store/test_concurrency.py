"""Many writers at once, and writers killed mid-commit: no lost, duplicated or half-visible results."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.store import Store
from tests.store.helpers import check_consistent, run_result

WRITER = Path(__file__).with_name("writer.py")
REPO = Path(__file__).resolve().parents[2]


def writer(store: Path, seed: int, rounds: int, calls: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WRITER), str(store), str(seed), str(rounds), str(calls)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


@pytest.mark.slow
def test_four_processes_committing_to_the_same_calls(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store(root, create=True)
    processes = [writer(root, seed, rounds=6, calls=5) for seed in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
    store = Store(root)
    calls = store.read("calls")["call_id"].to_pylist()
    assert len(calls) == len(set(calls)) and set(calls) <= {f"c{i}" for i in range(5)}
    check_consistent(store)
    # every call's current result is the last one committed for it, by some writer
    assert {r["path"].split("#")[2][:2] for r in store.read("calls").to_pylist()} <= {"w0", "w1", "w2", "w3"}


@pytest.mark.slow
def test_sigkill_during_commits_leaves_a_consistent_store(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store(root, create=True).commit([run_result(f"c{i}", 1, tag="seed") for i in range(6)])
    rng = random.Random(3)
    kills = 0
    for seed in range(12):
        process = writer(root, 100 + seed, rounds=50, calls=6)
        time.sleep(rng.uniform(1.0, 3.0))  # start-up is ~1 s; then it commits every ~0.1-0.3 s
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.communicate(timeout=60)
        check_consistent(Store(root))  # what a reader sees right after the kill
    assert kills >= 10
    store = Store(root)
    store.commit([run_result("c0", 2, tag="after")])  # and the store still takes commits
    assert check_consistent(store)["c0"] == 2


def test_a_reader_never_sees_half_a_commit(tmp_path: Path) -> None:
    """Read continuously while another process commits: every snapshot is consistent."""
    root = tmp_path / "s"
    Store(root, create=True).commit([run_result(f"c{i}", 1, tag="seed") for i in range(4)])
    process = writer(root, 7, rounds=25, calls=4)
    reads = 0
    try:
        while process.poll() is None:
            check_consistent(Store(root))
            reads += 1
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()[-2000:]
    assert reads >= 3
    check_consistent(Store(root))


def test_concurrent_store_creation(tmp_path: Path) -> None:
    root = tmp_path / "new"
    code = ("import sys; sys.path.insert(0, '.'); from pipeline.store import Store; "
            f"Store({str(root)!r}, create=True)")
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in processes]
    assert [p.returncode for p in processes].count(0) >= 1, errors
    Store(root).commit([run_result("a", 1)])
    assert check_consistent(Store(root)) == {"a": 1}


def test_a_merge_waits_its_turn_while_another_process_rewrites_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    for i in range(3):
        store.commit([run_result(f"c{i}", 2)])
    files_before = len(store.delta("hits").file_uris())
    with store.maintenance_lock() as held:
        assert held
        # what another process sees meanwhile (flock: a second open file conflicts, even in one process)
        assert set(Store(store.root).optimize()) == {"calls", "segments", "utterances", "gaps", "hits", "features",
                                                    "errors"}
        assert len(store.delta("hits").file_uris()) == files_before  # nothing was rewritten
    assert Store(store.root).optimize() == [] and len(store.delta("hits").file_uris()) == 1
    check_consistent(store)


_MERGE = """
import sys, time
from pipeline.store import Store
store = Store(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
store.optimize()
"""


@pytest.mark.slow
def test_three_processes_merging_at_once_leave_every_row_once(tmp_path: Path) -> None:
    """delta-rs lets concurrent rewrites that change no data all commit: each process's merged copy
    of the same small files became current (every row three times) until merges took the lock."""
    root = tmp_path / "s"
    store = Store(root, create=True)
    for i in range(12):
        store.commit([run_result(f"c{i % 4}", 2, tag=f"r{i}")])
    for round_ in range(3):
        start = time.time() + 3.0  # all three start merging at the same instant
        merges = [subprocess.Popen([sys.executable, "-c", _MERGE, str(root), str(start)], cwd=REPO,
                                   stderr=subprocess.PIPE) for _ in range(3)]
        for merge in merges:
            _out, err = merge.communicate(timeout=120)
            assert merge.returncode == 0, err.decode()[-2000:]
        check_consistent(Store(root))  # exactly one feature row and the right hits per call
        store.commit([run_result(f"c{round_}", 3, tag=f"after{round_}")])  # new small files for the next round
