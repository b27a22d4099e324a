"""A store on S3 (moto's real S3 endpoint on loopback): the same transactions, rows and resume as a local store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.analysis import ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.errors import StoreError
from pipeline.store import TABLES as ALL_TABLES
from pipeline.store import Store
from tests.store.helpers import EchoTranscriber, check_consistent, run_result

pytest.importorskip("moto", reason="moto (the dev extra) serves the S3 endpoint these tests use")

from tests.store.moto_s3 import CREDENTIALS, MotoS3  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("writer.py")
TABLES = ("calls", "segments", "utterances", "gaps", "hits", "errors", "features")
#: Columns that differ between two runs of the same input (result ids, times).
VOLATILE = {"transcript_id", "analysis_id", "score_id", "committed_at", "processing_s", "occurred_at"}
IN_PROCESS = RunOptions(isolate=False)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(log=tmp_path_factory.mktemp("moto") / "puts.log")
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process (and the processes it starts) pointed at the moto endpoint, as an operator's shell would be."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3.env()


@pytest.fixture
def uri(s3: MotoS3, s3_env: dict[str, str]) -> str:
    """A store URI in a new, empty bucket."""
    return f"s3://{s3.bucket()}/callqa"


def rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Current rows without the volatile columns, sorted (duplicates stay visible)."""
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k not in VOLATILE))
                  for r in store.read(table).to_pylist())


def spec() -> ResourceSpec:
    # the agent's words hit a rule, so hits and scores differ from call to call
    return ResourceSpec(load_config(), transcriber=EchoTranscriber({"mixed": "您好,这个我不清楚,你自己去查"}))


def test_a_store_on_s3_takes_commits_and_reads_them_back(s3: MotoS3, uri: str, tmp_path: Path) -> None:
    first = [run_result("c1", 2, tag="a"), run_result("c2", 3, tag="a")]
    remote, local = Store(uri, create=True), Store(tmp_path / "local", create=True)
    assert remote.remote and not local.remote
    for store in (remote, local):
        report = store.commit(first, metadata={"run_id": "r1"})
        assert report.calls == 2 and report.rows["hits"] == 5
    again = Store(uri)  # a reader that opens the store afresh
    for table in TABLES:
        assert rows(again, table) == rows(local, table), table
    assert check_consistent(again) == {"c1": 2, "c2": 3}
    view = again.snapshot()
    remote.commit([run_result("c1", 4, tag="b")])
    assert view.read("calls", ["path"], call_ids=["c1"])["path"].to_pylist() == ["c1#2#a"]  # what it saw
    assert len(view.read("hits", call_ids=["c1"])) == 2
    assert check_consistent(Store(uri)) == {"c1": 4, "c2": 3}
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    keys = s3.keys(bucket, prefix)
    assert f"{prefix}/_callqa_store.json" in keys
    assert f"{prefix}/calls/_delta_log/00000000000000000000.json" in keys
    assert any(k.startswith(f"{prefix}/hits/call_date=2026-11-21/") and k.endswith(".parquet") for k in keys)


def test_every_delta_commit_on_s3_is_a_conditional_put(s3: MotoS3, uri: str) -> None:
    """delta-rs commits version N by creating its log file with ``If-None-Match: *``: of two writers racing
    for N only one can, the other retries on N+1. That is what makes concurrent commits safe on S3."""
    store = Store(uri, create=True)
    store.commit([run_result("c1", 1)])
    store.commit([run_result("c1", 2, tag="b")])
    assert s3.log is not None
    log = s3.log.read_text(encoding="utf-8").splitlines()
    store_key = uri.removeprefix("s3://")
    commits = [line.split("\t") for line in log if line.startswith(f"{store_key}/") and "/_delta_log/0" in line
               and line.split("\t")[0].endswith(".json")]
    assert len(commits) == 7 + 2 * 4  # 7 tables created, 2 commits x (3 appends + 1 merge)
    assert {condition for _key, condition in commits} == {"*"}, commits


def test_a_run_to_s3_gives_the_same_rows_as_a_local_run_and_resumes(uri: str, calls: Path, tmp_path: Path,
                                                                    cli) -> None:
    config = load_config()
    local = run_batch(calls, tmp_path / "local", config, IN_PROCESS, resources=spec())
    remote = run_batch(calls, uri, config, IN_PROCESS, resources=spec())
    assert (remote.done, remote.failed) == (local.done, local.failed) == (4, 1)
    assert remote.store == uri
    assert any("--exclusive" in note for note in remote.notes)  # small files left: say how to merge them
    on_s3, on_disk = Store(uri), Store(tmp_path / "local")
    for table in TABLES:
        assert rows(on_s3, table) == rows(on_disk, table), table
    assert on_s3.read("hits").num_rows > 0 and on_s3.read("errors").num_rows == 1
    again = run_batch(calls, uri, config, IN_PROCESS, resources=spec())
    assert (again.skipped, again.done, again.failed_before) == (5, 0, 1)
    assert rows(Store(uri), "calls") == rows(on_disk, "calls")
    reports = [cli("report", where, "--out", tmp_path / name / "day.html", "--period", "day", "--no-pdf")
               for where, name in ((uri, "s3"), (tmp_path / "local", "local"))]
    assert [r.exit_code for r in reports] == [0, 0], reports[0].output
    first_line = [r.stdout.splitlines()[0] for r in reports]
    assert first_line[0] == first_line[1] and ": 4 calls, pass rate" in first_line[0]
    assert (tmp_path / "s3" / "day.html").stat().st_size > 1000


class StopAfter:
    """An engine that hands on the first ``n`` outcomes of a real one, then is interrupted (Ctrl-C)."""

    def __init__(self, n: int) -> None:
        from pipeline.engines.local import LocalEngine

        self.n, self.engine = n, LocalEngine(1, False, 60.0)

    def outcomes(self, pending: Any, resources: Any, versions: Any) -> Iterator[Any]:
        for index, outcome in enumerate(self.engine.outcomes(pending, resources, versions)):
            if index == self.n:
                raise KeyboardInterrupt
            yield outcome


def test_an_interrupted_run_on_s3_resumes_where_it_stopped(uri: str, calls: Path, tmp_path: Path, cli) -> None:
    config = load_config().with_overrides({"run": {"commit_every_calls": 1}})
    with pytest.raises(KeyboardInterrupt):
        run_batch(calls, uri, config, IN_PROCESS, resources=spec(), engine=StopAfter(2))
    assert Store(uri).read("calls").num_rows == 2  # what finished before the interrupt is committed
    status = cli("status", uri)
    assert status.exit_code == 0, status.output
    assert "pending (last run): 3" in status.stdout  # the run record lives on S3 too
    resumed = run_batch(calls, uri, config, IN_PROCESS, resources=spec())
    assert (resumed.skipped, resumed.done + resumed.failed) == (2, 3)
    run_batch(calls, tmp_path / "local", config, IN_PROCESS, resources=spec())
    for table in TABLES:
        assert rows(Store(uri), table) == rows(Store(tmp_path / "local"), table), table
    status = cli("status", uri)
    assert "done: 4 · failed: 1 · pending (last run): 0" in status.stdout
    shown = cli("show", uri)
    assert shown.exit_code == 0 and f"5 calls in {uri}" in shown.stdout


def test_callqa_run_cli_writes_to_s3(uri: str, calls: Path, tmp_path: Path, cli) -> None:
    config = tmp_path / "vad.toml"
    config.write_text("[asr]\nenabled = false\n", encoding="utf-8")
    result = cli("run", calls, "--out", uri, "-c", config, "-q", "--workers", "1")
    assert result.exit_code == 1, result.output  # broken.wav failed (and was recorded)
    assert f"results: {uri}" in result.stdout and "4 done, 1 failed" in result.stdout
    assert f"callqa compact {uri} --exclusive" in result.stdout
    assert Store(uri).read("segments").num_rows > 0
    score = cli("score", uri, "-c", config)
    assert score.exit_code == 0, score.output
    assert "scored 4 calls" in score.stdout
    rescore = cli("rescore", uri, "-c", config)
    assert rescore.exit_code == 0, rescore.output
    assert "rescored 4 calls" in rescore.stdout
    after = Store(uri)
    assert after.read("calls").num_rows == 5 and after.read("features").num_rows == 4  # one current row per ok call


def test_two_processes_committing_to_one_s3_store_lose_and_duplicate_nothing(uri: str, s3_env: dict[str, str]) -> None:
    Store(uri, create=True)
    env = {**os.environ, **s3_env}
    writers = [subprocess.Popen([sys.executable, str(WRITER), uri, str(seed), "4", "4"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(2)]
    for process in writers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    store = Store(uri)
    ids = store.read("calls")["call_id"].to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) <= {f"c{i}" for i in range(4)}
    check_consistent(store)  # each call shows exactly the rows of its current result, once
    history = store.delta("calls").history()
    merges = [h for h in history if h.get("operation") == "MERGE"]
    assert len(merges) == 8  # every commit of both writers landed as its own version: none was lost


def test_storage_options_from_the_config_reach_delta_and_pyarrow(s3: MotoS3, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    for key in (*CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"):
        monkeypatch.delenv(key, raising=False)
    bucket = s3.bucket()
    config = tmp_path / "s3.toml"
    config.write_text("[store.storage_options]\n" + "".join(f'{k} = "{v}"\n' for k, v in s3.env().items()),
                      encoding="utf-8")
    options = load_config(config).store.storage_options
    store = Store(f"s3://{bucket}/callqa", create=True, storage_options=options)
    store.commit([run_result("c1", 3)])
    assert check_consistent(Store(f"s3://{bucket}/callqa", storage_options=options)) == {"c1": 3}
    assert load_config(config).config_hash == load_config().config_hash  # where results live is not a result


def test_an_unreachable_endpoint_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, cli, calls: Path) -> None:
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"}.items():
        monkeypatch.setenv(key, value)
    for args in (("status", "s3://callqa-nowhere/store"), ("run", calls, "--out", "s3://callqa-nowhere/store")):
        result = cli(*args)
        assert result.exit_code in (1, 2), result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert lines[0].startswith("callqa: error: s3://callqa-nowhere/store: cannot reach the store:"), lines
        assert "Could not connect" in lines[0]


def test_a_missing_bucket_or_a_bad_uri_is_named(uri: str) -> None:
    with pytest.raises(StoreError, match="no bucket 'callqa-no-such-bucket'"):
        Store("s3://callqa-no-such-bucket/store", create=True)
    with pytest.raises(StoreError, match="not a store URI"):
        Store("s3://", create=True)
    with pytest.raises(StoreError, match="no store here"):
        Store(uri)  # the bucket exists, the store does not (and nothing is created without create=True)


def test_compacting_an_s3_store_needs_the_callers_word_that_it_is_alone(uri: str, cli) -> None:
    from pipeline.store.maintenance import compact

    store = Store(uri, create=True)
    for tag in ("a", "b", "c"):
        store.commit([run_result(f"c{i}", i + 1, tag=tag) for i in range(3)])
    refused = cli("compact", uri)
    assert refused.exit_code == 1 and "--exclusive" in refused.stderr
    assert store.optimize() == [spec.name for spec in ALL_TABLES]  # no lock on S3: nothing is merged
    before = store.delta("hits").to_pyarrow_table().num_rows
    report = compact(store, min_age_s=0.0, exclusive=True)
    assert before == 3 * (1 + 2 + 3) and report.rows_after["hits"] == 1 + 2 + 3  # superseded rows removed
    assert len(Store(uri).delta("hits").file_uris()) == 1  # small files merged
    assert check_consistent(Store(uri)) == {"c0": 1, "c1": 2, "c2": 3}
    assert report.bytes_before > 0 and report.bytes_after > 0


def test_commands_that_need_a_local_store_say_why(uri: str, cli) -> None:
    Store(uri, create=True)
    review = cli("review", uri)
    assert review.exit_code == 2 and "SQLite" in review.stderr and "object store" in review.stderr
    promote = cli("models", "promote", "m1", "--store", uri)
    assert promote.exit_code == 2 and "models_dir" in promote.stderr and "local" in promote.stderr
