"""The store's transactions: a commit replaces a call's rows in every table at once, readers see current rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipeline.errors import StoreError
from pipeline.store import Store, new_result_id
from pipeline.store.delta import CallResult, result_time_ms
from tests.store.helpers import VERSIONS, check_consistent, run_result


def test_run_commit_then_redo_replaces_every_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    report = store.commit([run_result("a", 2, tag="v1"), run_result("b", 3, tag="v1")])
    assert (report.calls, report.rows["hits"], report.rows["utterances"]) == (2, 5, 4)
    assert check_consistent(store) == {"a": 2, "b": 3}
    store.commit([run_result("a", 0, tag="v2")])  # redone, and now without any hit
    assert check_consistent(store) == {"b": 3}
    assert store.read("hits", ["hit_id"])["hit_id"].to_pylist() == ["b-v1-0", "b-v1-1", "b-v1-2"]
    assert sorted(store.read("utterances", ["text"])["text"].to_pylist()) == ["v10", "v11", "v20", "v21"]
    # superseded rows are still in the files (history, until compact), but not current
    assert DeltaTable(str(tmp_path / "s" / "hits")).to_pyarrow_table().num_rows == 5


def test_read_filters_by_call_and_date_and_keeps_key_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    store.commit([run_result("a", 1, "2026-11-20"), run_result("b", 2, "2026-11-21"), run_result("c", 3, "2026-11-21")])
    assert sorted(store.read("hits", dates=["2026-11-21"])["call_id"].to_pylist()) == ["b", "b", "c", "c", "c"]
    only = store.read("features", columns=["score"], call_ids=["c"]).to_pylist()
    assert only == [{"call_id": "c", "call_date": "2026-11-21", "score": 97.0}]
    assert store.read("calls", call_ids=["zzz"]).num_rows == 0


def test_rescore_and_score_never_overwrite_a_newer_result(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    store.commit([run_result("a", 1, tag="run1"), run_result("b", 1, tag="run1")])
    before = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    store.commit([run_result("a", 4, tag="run2")])  # a is re-transcribed meanwhile

    def rescored(call_id: str, n: int) -> CallResult:
        stored = before[call_id]
        analysis, score = new_result_id(), new_result_id()
        key = {"call_id": call_id, "call_date": stored["call_date"], **VERSIONS, "rules_version": "rules-2"}
        return CallResult({"call_id": call_id, "call_date": stored["call_date"], "analysis_id": analysis,
                           "score_id": score, "rules_version": "rules-2", "redline_model": "none"},
                          {"hits": [{**key, "analysis_id": analysis, "hit_id": f"{call_id}-rescored-{i}",
                                     "rule_id": "r.new"} for i in range(n)],
                           "features": [{**key, "score_id": score, "features_schema_version": 2, "score": 1.0}]},
                          expect=stored["transcript_id"])

    report = store.commit([rescored("a", 9), rescored("b", 2)], kind="rescore")
    assert report.skipped == ("a",) and report.calls == 1  # a's transcript changed: its newer run result stays
    calls = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    assert calls["b"]["rules_version"] == "rules-2" and calls["a"]["rules_version"] == "rules-1"
    assert calls["b"]["transcript_id"] == before["b"]["transcript_id"]  # the transcript is not touched
    hits = store.read("hits", ["hit_id"])["hit_id"].to_pylist()
    assert sorted(h for h in hits if h.startswith("b")) == ["b-rescored-0", "b-rescored-1"]
    assert sorted(h for h in hits if h.startswith("a")) == [f"a-run2-{i}" for i in range(4)]
    assert len(store.read("utterances", call_ids=["b"])) == 2


def test_a_commit_holds_each_call_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    with pytest.raises(ValueError, match="once"):
        store.commit([run_result("a", 1), run_result("a", 2)])
    assert store.read("calls").num_rows == 0


def test_empty_store_reads_typed_empty_tables(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    hits = store.read("hits")
    assert hits.num_rows == 0 and "hit_id" in hits.column_names and hits.schema.field("start_s").type == pa.float64()
    with pytest.raises(KeyError, match="unknown table"):
        store.read("nope")


def test_opening_what_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store here"):
        Store(tmp_path / "missing")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="not a callqa store"):
        Store(tmp_path / "stuff", create=True)  # never turns a non-empty folder into a store
    legacy = tmp_path / "old"
    (legacy / "_commits").mkdir(parents=True)
    with pytest.raises(StoreError, match="callqa store upgrade"):
        Store(legacy)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "_callqa_store.json").write_text(json.dumps({"format": "callqa-delta", "schema_version": 99}))
    with pytest.raises(StoreError, match="newer than this callqa"):
        Store(newer)


def test_result_ids_carry_their_time() -> None:
    first, second = new_result_id(), new_result_id()
    assert first != second and len(first) == 24
    assert abs(result_time_ms(first) - result_time_ms(second)) < 1000


def test_table_versions_change_with_every_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    before = store.table_versions()
    store.commit([run_result("a", 1)])
    after = store.table_versions()
    assert after["calls"] == before["calls"] + 1 and after["hits"] == before["hits"] + 1
    assert after["segments"] == before["segments"]  # nothing written there


def test_a_snapshot_keeps_seeing_the_same_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", create=True)
    store.commit([run_result("a", 2, tag="old")])
    view = store.snapshot()
    store.commit([run_result("a", 5, tag="new"), run_result("b", 1, tag="new")])
    assert sorted(view.read("hits", ["hit_id"])["hit_id"].to_pylist()) == ["a-old-0", "a-old-1"]
    assert view.read("calls")["call_id"].to_pylist() == ["a"]
    assert len(store.read("hits")) == 6  # the store itself reads the latest
