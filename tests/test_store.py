"""The store seen from the pipeline: records in, current rows out, nothing half-visible.

The store's own transaction, concurrency and maintenance tests live in
``tests/store/``; these check the store with the pipeline's records and row
builders (:mod:`pipeline.store.rows`).
"""

from __future__ import annotations

import errno
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipeline.errors import StoreError
from pipeline.records import Hit, SpeechSegment
from pipeline.store import CallResult, Store, new_result_id
from pipeline.store.rows import hit_of, hit_rows
from pipeline.store.tables import SCHEMA_VERSION
from pipeline.versions import ANALYSIS_VERSION, Versions

VERSIONS = Versions("c1", ANALYSIS_VERSION, "m1", "rules-1", "timing-1", "none")
LEGACY = Path(__file__).resolve().parent / "data" / "legacy_store_v1" / "store"


def result(call_id: str, date: str = "2026-11-22", segments=(), hits=(), duration_s: float = 10.0,
           versions: Versions = VERSIONS) -> CallResult:
    """A ``run`` result of one call built from records."""
    transcript, analysis, score = new_result_id(), new_result_id(), new_result_id()
    key = {"call_id": call_id, "call_date": date, **versions.columns()}
    call = {**key, "transcript_id": transcript, "analysis_id": analysis, "score_id": score, "status": "ok",
            "path": f"{call_id}.wav", "audio_sha256": "ab" * 32, "duration_s": duration_s,
            "roles": ["agent", "customer"]}
    return CallResult(call, {
        "segments": [{**key, "transcript_id": transcript, **asdict(s)} for s in segments],
        "hits": hit_rows(hits, {**key, "analysis_id": analysis}),
    })


def hit(call_id: str, detector_version: str, start_s: float = 1.0) -> Hit:
    return Hit(call_id, "forbidden.buqingchu", detector_version, "forbidden_phrase", "non_fatal", "customer",
               "agent", start_s, start_s + 0.5, "exact", matched_text="不清楚")


def test_commit_and_read_round_trip(tmp_path):
    store = Store(tmp_path / "s", create=True)
    segments = [SpeechSegment("agent", 0.5, 2.0, -20.0), SpeechSegment("customer", 2.5, 4.0, -25.5)]
    report = store.commit([result("a", segments=segments, hits=[hit("a", "rules-1")]),
                           result("b", date="2026-11-23")])
    assert (report.calls, report.rows["segments"], report.rows["hits"]) == (2, 2, 1)
    calls = store.read("calls")
    assert sorted(calls["call_id"].to_pylist()) == ["a", "b"]
    assert sorted(calls["call_date"].to_pylist()) == ["2026-11-22", "2026-11-23"]
    assert (tmp_path / "s" / "calls" / "call_date=2026-11-23").is_dir()  # partitioned by call date
    seg = store.read("segments").to_pylist()
    assert [(r["role"], r["start_s"], r["end_s"], r["loudness_dbfs"]) for r in seg] == [
        ("agent", 0.5, 2.0, -20.0), ("customer", 2.5, 4.0, -25.5)]
    assert {r["schema_version"] for r in seg} == {SCHEMA_VERSION}
    assert {(r["config_hash"], r["asr_model"], r["rules_version"]) for r in seg} == {("c1", "m1", "rules-1")}
    [stored] = store.read("hits").to_pylist()
    assert hit_of(stored) == hit("a", "rules-1") and stored["hit_id"] == hit("a", "rules-1").hit_id


def test_a_redone_call_replaces_its_rows_in_every_table(tmp_path):
    store = Store(tmp_path, create=True)
    store.commit([result("a", hits=[hit("a", "rules-1", t) for t in (1.0, 2.0)]), result("b", hits=[hit("b", "v")])])
    redo = result("a", duration_s=11.0, versions=Versions("c1", ANALYSIS_VERSION, "large-v3", "rules-1",
                                                           "timing-1", "none"))
    store.commit([redo])  # a redone with another model, and no hits this time
    calls = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert {k: (r["asr_model"], r["duration_s"]) for k, r in calls.items()} == {
        "a": ("large-v3", 11.0), "b": ("m1", 10.0)}
    assert [h["call_id"] for h in store.read("hits").to_pylist()] == ["b"]
    assert DeltaTable(str(store.path("hits"))).to_pyarrow_table().num_rows == 3  # superseded, kept until compact


def test_rows_written_by_a_commit_that_never_finished_are_invisible(tmp_path, monkeypatch):
    """A writer killed after appending its rows but before moving the calls' pointers changes nothing."""
    store = Store(tmp_path, create=True)
    store.commit([result("a", hits=[hit("a", "rules-1")])])

    def killed(*args, **kwargs):
        raise OSError(errno.EIO, "killed before the commit point")

    monkeypatch.setattr(Store, "_merge_calls", killed)
    with pytest.raises(StoreError, match="nothing of this commit became visible"):
        store.commit([result("a", hits=[hit("a", "rules-2", t) for t in (1.0, 2.0, 3.0)]), result("b")])
    monkeypatch.undo()
    assert DeltaTable(str(store.path("hits"))).to_pyarrow_table().num_rows == 4  # the rows are on disk...
    assert [h["detector_version"] for h in store.read("hits").to_pylist()] == ["rules-1"]  # ...but not current
    assert store.read("calls")["call_id"].to_pylist() == ["a"]


def test_disk_full_keeps_nothing_of_the_commit(tmp_path, monkeypatch):
    import pipeline.store.delta as delta

    store = Store(tmp_path, create=True)
    store.commit([result("a")])
    real_write = delta.write_deltalake
    writes = {"n": 0}

    def failing_write(*args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 2:  # the commit's second table hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(delta, "write_deltalake", failing_write)
    with pytest.raises(StoreError, match="No space left on device"):
        store.commit([result("b", segments=[SpeechSegment("agent", 0, 1, -20)], hits=[hit("b", "rules-1")])])
    monkeypatch.undo()
    assert store.read("calls")["call_id"].to_pylist() == ["a"]  # finished work kept, the new commit invisible
    assert store.read("segments").num_rows == 0 and store.read("hits").num_rows == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_empty_store_reads_as_typed_empty_tables(tmp_path):
    store = Store(tmp_path / "new", create=True)
    table = store.read("hits")
    assert table.num_rows == 0 and {"hit_id", "call_id", "call_date", "detector_version"} <= set(table.column_names)
    assert json.loads((tmp_path / "new" / "_callqa_store.json").read_text())["schema_version"] == SCHEMA_VERSION
    with pytest.raises(KeyError, match="unknown table 'hit'"):
        store.read("hit")


def test_what_is_not_a_store_is_refused_with_the_reason(tmp_path):
    with pytest.raises(StoreError, match="no store here"):
        Store(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="not a callqa store"):
        Store(tmp_path / "other", create=True)  # never writes into a directory that is not a store
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]
    with pytest.raises(StoreError, match="callqa store upgrade"):
        Store(LEGACY)
