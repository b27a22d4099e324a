"""The same calls through a real local Ray cluster give the same store as a local run, row for row."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.analysis import ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.store import Store
from tests.store.helpers import EchoTranscriber

ray = pytest.importorskip("ray", reason="Ray is an optional engine (pip install 'callqa[ray]')")

VOLATILE = {"transcript_id", "analysis_id", "score_id", "committed_at", "processing_s", "occurred_at"}


def _rows(root: Path | str, table: str) -> list[tuple]:
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k not in VOLATILE))
                  for r in Store(root).read(table).to_pylist())


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_run_gives_the_same_store_as_a_local_run(cluster, calls: Path, tmp_path: Path) -> None:
    from pipeline.engines.ray_engine import RayEngine

    config = load_config()
    spec = ResourceSpec(config, transcriber=EchoTranscriber({"mixed": "您好,这个我不清楚"}))
    local = run_batch(calls, tmp_path / "local", config, RunOptions(isolate=False), resources=spec)
    distributed = run_batch(calls, tmp_path / "ray", config, resources=spec, engine=RayEngine())
    assert (distributed.done, distributed.failed) == (local.done, local.failed) == (4, 1)
    for table in ("calls", "segments", "utterances", "hits", "features", "errors"):
        assert _rows(tmp_path / "ray", table) == _rows(tmp_path / "local", table), table
    again = run_batch(calls, tmp_path / "ray", config, resources=spec, engine=RayEngine())
    assert (again.skipped, again.done) == (5, 0)  # resume works the same way


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_its_call(cluster, calls: Path, tmp_path: Path) -> None:
    from pipeline.engines.ray_engine import RayEngine
    from tests.engines.fakes import CrashOnFiveSecondCalls

    config = load_config()
    spec = ResourceSpec(config, transcriber=CrashOnFiveSecondCalls({"mixed": "您好"}))
    summary = run_batch(calls, tmp_path / "ray", config, resources=spec, engine=RayEngine())
    assert (summary.done, summary.failed) == (3, 2)  # news_5s.wav dies twice; broken.wav is not audio
    errors = {r["call_id"]: r["message"] for r in Store(tmp_path / "ray").read("errors").to_pylist()}
    assert "died twice" in errors["news_5s"] and "broken" in errors


def test_a_local_cluster_is_sized_for_the_workers_asked_for() -> None:
    """`--workers 2 --engine ray` on 2 cores: 2 transcribers (1 CPU each) and an analyser (0.5) must fit."""
    import os

    from pipeline.engines.ray_engine import RayEngine

    machine = os.cpu_count() or 1
    assert RayEngine(transcribers=2)._local_cpus() == max(machine, 3)
    assert RayEngine(transcribers=machine + 4, analysers=2)._local_cpus() == machine + 5
    assert RayEngine()._local_cpus() == machine and RayEngine(local_cpus=1)._local_cpus() == 1


@pytest.mark.slow
def test_more_workers_than_the_cluster_holds_is_refused_at_once(cluster, calls: Path, tmp_path: Path) -> None:
    import time

    from pipeline.engines.ray_engine import RayEngine
    from pipeline.errors import CallqaError

    config = load_config()
    spec = ResourceSpec(config, transcriber=EchoTranscriber({"mixed": "您好"}))
    started = time.monotonic()
    with pytest.raises(CallqaError, match=r"4 transcribers and 2 analysers need 5 CPUs .* the cluster has 2 CPUs"):
        run_batch(calls, tmp_path / "ray", config, resources=spec, engine=RayEngine(transcribers=4))
    assert time.monotonic() - started < 60  # not the 300 s start timeout


@pytest.mark.slow
def test_a_ray_run_commits_to_a_store_on_s3(cluster, calls: Path, tmp_path: Path, monkeypatch) -> None:
    """The driver commits a Ray run to an object store with the same transactions: same rows, same resume."""
    pytest.importorskip("moto", reason="moto (the dev extra) serves the S3 endpoint")
    from pipeline.engines.ray_engine import RayEngine
    from tests.store.moto_s3 import MotoS3

    server = MotoS3()
    try:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        uri = f"s3://{server.bucket()}/callqa"
        config = load_config()
        spec = ResourceSpec(config, transcriber=EchoTranscriber({"mixed": "您好,这个我不清楚"}))
        local = run_batch(calls, tmp_path / "local", config, RunOptions(isolate=False), resources=spec)
        distributed = run_batch(calls, uri, config, resources=spec, engine=RayEngine())
        assert (distributed.done, distributed.failed) == (local.done, local.failed) == (4, 1)
        for table in ("calls", "segments", "utterances", "hits", "features", "errors"):
            got, want = _rows(uri, table), _rows(tmp_path / "local", table)
            assert got == want, (table, [sorted(set(g) ^ set(w)) for g, w in zip(got, want, strict=False) if g != w])
        again = run_batch(calls, uri, config, resources=spec, engine=RayEngine())
        assert (again.skipped, again.done) == (5, 0)
    finally:
        server.stop()
