"""Disk full and read-only stores: one clear line, earlier results intact, and the next run
completes. On a real small tmpfs when the test may mount one (root), else skipped; a simulated
ENOSPC (in-process) always runs. Also: a store whose creation was cut short is finished."""

from __future__ import annotations

import errno
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _support import REPO, make_corpus, record_figures, run_to_end, store_rows, write_config

from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store import delta as store_delta

N_CALLS = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("disk") / "calls"
    make_corpus(directory, N_CALLS, seed=5, bad=False)
    return directory


@pytest.fixture(scope="module")
def config(corpus) -> Path:
    return write_config(corpus.parent / "vad.toml", commit_every_calls=1)


@pytest.fixture(scope="module")
def reference(corpus, config) -> tuple[dict, int]:
    """An uninterrupted run's rows, and how many bytes its store takes."""
    store = corpus.parent / "reference"
    done = run_to_end(corpus, store, config)
    assert done.returncode == 0, done.stderr
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    return store_rows(store), size


class Tmpfs:
    """A small tmpfs mounted for one test (root only); resized or made read-only on demand."""

    def __init__(self, where: Path, size_kib: int) -> None:
        where.mkdir()
        self.where = where
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.where)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounts: list[Tmpfs] = []

    def make(size_kib: int) -> Tmpfs:
        mounts.append(Tmpfs(tmp_path / f"mnt{len(mounts)}", size_kib))
        return mounts[-1]

    yield make
    for mount in mounts:
        mount.unmount()


#: What Rust's panic hook prints when delta-rs's object store panics in a background thread on
#: ENOSPC ("Already shut down"): written by the library to the process's stderr, outside callqa's
#: reach (known gap, docs/reliability.md). Every other line must be callqa's one error line.
RUST_PANIC = re.compile(r"^(thread '.*' \(\d+\) panicked at |Already shut down$|note: run with `RUST_BACKTRACE)")


def one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if not RUST_PANIC.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callqa: error: ") and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == lines[0]  # the last thing the operator reads
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def subset_of(rows: dict, reference: dict) -> int:
    """Every stored row is one of the uninterrupted run's (nothing half-written); the number of calls."""
    for table, stored in rows.items():
        assert set(stored) <= set(reference[table]), f"{table} holds rows the uninterrupted run does not"
    calls = {dict(r)["call_id"] for r in rows["calls"]}
    for table in ("segments", "features"):  # every committed call has all its rows
        assert {dict(r)["call_id"] for r in reference[table] if dict(r)["call_id"] in calls} == \
            {dict(r)["call_id"] for r in rows[table]}
    return len(calls)


@pytest.mark.slow
def test_disk_full_then_read_only_then_room_again(tmpfs, corpus, config, reference):
    """One store through every way its disk can refuse writes; each time one line, nothing lost."""
    rows, size = reference
    mount = tmpfs(max(256, size * 45 // 100 // 1024))  # room for about half the results
    store = mount.where / "store"
    # 1. The disk is full before the run starts (the store cannot even be created).
    filler = mount.where / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until it is full
    at_start = run_to_end(corpus, store, config)
    assert at_start.returncode == 1
    one_clear_line(at_start, str(store), "No space left on device")
    filler.unlink()
    # 2. The disk fills up in the middle of the run.
    mid_run = run_to_end(corpus, store, config)
    assert mid_run.returncode == 1
    one_clear_line(mid_run, str(store), "No space left on device")
    kept = subset_of(store_rows(store), rows)
    assert 0 < kept < N_CALLS, kept  # earlier results intact, the rest not half-written
    # 3. Room again: the next run completes what was left.
    mount.remount(f"size={size * 3 // 1024}k")
    again = run_to_end(corpus, store, config)
    assert again.returncode == 0, again.stderr
    assert f"{N_CALLS} calls: {N_CALLS - kept} done, 0 failed, {kept} already done" in again.stdout
    assert store_rows(store) == rows
    # 4. The store becomes read-only with every call done (a re-run still writes its run record).
    mount.remount("ro")
    blocked = run_to_end(corpus, store, config)
    assert blocked.returncode == 1
    one_clear_line(blocked, str(store), "Read-only file system")
    status = subprocess.run([sys.executable, "-m", "pipeline", "status", str(store)], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert status.returncode == 0 and f"done: {N_CALLS}" in status.stdout, status.stderr  # reading still works
    assert store_rows(store) == rows
    # 5. Writable again: the next run completes (nothing left to do).
    mount.remount("rw")
    last = run_to_end(corpus, store, config)
    assert last.returncode == 0, last.stderr
    assert f"{N_CALLS} calls: 0 done, 0 failed, {N_CALLS} already done" in last.stdout
    record_figures("disk", runs=5, disk_full_at_start=1, disk_full_mid_run=1, read_only=1, calls_kept=kept,
                   rows_lost=0)


def test_simulated_enospc_keeps_earlier_commits_and_the_next_run_completes(tmp_path, corpus, monkeypatch):
    """Where no tmpfs can be mounted: the Delta writer fails with ENOSPC from the 5th write on."""
    config = load_config().with_overrides({"asr": {"enabled": False}, "run": {"commit_every_calls": 2}})
    real_write = store_delta.write_deltalake
    writes = {"n": 0}

    def failing_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        writes["n"] += 1
        if writes["n"] >= 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store_delta, "write_deltalake", failing_write)
    with pytest.raises(StoreError) as info:
        run_batch(corpus, tmp_path / "store", config, RunOptions(isolate=False))
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    committed = Store(tmp_path / "store").read("calls").num_rows
    assert 0 < committed < N_CALLS
    monkeypatch.setattr(store_delta, "write_deltalake", real_write)
    summary = run_batch(corpus, tmp_path / "store", config, RunOptions(isolate=False))
    assert (summary.skipped, summary.done, summary.failed) == (committed, N_CALLS - committed, 0)


def test_a_store_whose_creation_was_cut_short_is_finished(tmp_path, corpus):
    """A run killed while creating its store (some tables, no marker yet) must not block every restart."""
    store = tmp_path / "store"
    Store(store, create=True)
    for leftover in ("_callqa_store.json", "features", "errors"):
        target = store / leftover
        subprocess.run(["rm", "-rf", str(target)], check=True)
    config = load_config().with_overrides({"asr": {"enabled": False}})
    summary = run_batch(corpus, store, config, RunOptions(isolate=False))
    assert (summary.done, summary.failed) == (N_CALLS, 0)
    assert Store(store).read("features").num_rows == N_CALLS
