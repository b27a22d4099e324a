"""compact (current rows plus the history asked for, safe while others read and write) and store upgrade."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import deltalake
import pytest

from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store.maintenance import compact, upgrade_store
from tests.store.helpers import check_consistent, run_result

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_store_v1"


def _raw_rows(root: Path, table: str) -> int:
    return deltalake.DeltaTable(str(root / table)).to_pyarrow_table().num_rows


def test_compact_keeps_current_rows_and_drops_superseded_ones(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store(root, create=True)
    for round_ in range(4):  # every call redone 4 times: 3 superseded results each
        store.commit([run_result(f"c{i}", 3, tag=f"r{round_}") for i in range(5)])
    before = check_consistent(store)
    assert _raw_rows(root, "hits") == 4 * 15
    report = compact(store, keep_history_days=0, min_age_s=0)
    assert check_consistent(Store(root)) == before
    assert _raw_rows(root, "hits") == 15 and _raw_rows(root, "features") == 5
    assert report.rows_before["hits"] == 60 and report.rows_after["hits"] == 15
    assert report.bytes_after < report.bytes_before


def test_compact_keeps_history_younger_than_asked_and_recent_rows_of_writers(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store(root, create=True)
    store.commit([run_result("a", 2, tag="old")])
    store.commit([run_result("a", 1, tag="new")])
    compact(store, keep_history_days=1)  # both results are younger than a day: kept
    assert _raw_rows(root, "hits") == 3
    compact(store)  # history 0, but rows younger than MIN_AGE_S stay (a writer may not have moved its pointers)
    assert _raw_rows(root, "hits") == 3
    compact(store, min_age_s=0)
    assert _raw_rows(root, "hits") == 1
    assert check_consistent(Store(root)) == {"a": 1}


def test_compact_while_others_read_and_write(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store(root, create=True)
    for round_ in range(3):  # results of two hours ago: the superseded ones are compacted away
        store.commit([run_result(f"c{i}", 2, tag=f"r{round_}", age_s=7200) for i in range(4)])
    problems: list[str] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            try:
                check_consistent(Store(root))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                problems.append(repr(exc))

    def write_loop() -> None:
        writer = Store(root)
        try:
            for round_ in range(5):
                writer.commit([run_result("c1", 4, tag=f"w{round_}")])
        except Exception:  # noqa: BLE001 - collected and asserted below
            import traceback

            problems.append("writer: " + traceback.format_exc())

    threads = [threading.Thread(target=read_loop), threading.Thread(target=write_loop)]
    for thread in threads:
        thread.start()
    report = compact(Store(root), keep_history_days=0)  # the default guard for rows writers just made
    threads[1].join(timeout=120)
    stop.set()
    threads[0].join(timeout=60)
    assert problems == []
    assert check_consistent(Store(root))["c1"] == 4  # the writer's last result survived the compaction
    assert report.rows_after["hits"] < report.rows_before["hits"]  # old superseded rows did go


def test_upgrade_a_callqa_0_1_store_keeps_its_current_rows(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(LEGACY / "store", root)
    expected = json.loads((LEGACY / "expected_current.json").read_text(encoding="utf-8"))
    with pytest.raises(StoreError, match="callqa store upgrade"):
        Store(root)
    backup = upgrade_store(root)
    assert (backup / "_commits").is_dir()
    store = Store(root)
    assert sorted(store.read("hits")["hit_id"].to_pylist()) == expected["hit_ids"]
    features = sorted(store.read("features").to_pylist(), key=lambda r: r["call_id"])
    assert [(f["call_id"], f["score"], f["grade"], f["passed"], f["scorecard_version"]) for f in features] == [
        (e["call_id"], e["score"], e["grade"], e["passed"], e["scorecard_version"]) for e in expected["features"]]
    assert [f["outcome"] for f in features] == ["pass" if e["passed"] else "fail" for e in expected["features"]]
    rules = {e["rules_version"].split(";")[0] for e in expected["features"]}
    assert {f["rules_version"] for f in features} == rules and {f["timing_version"] for f in features} == {"timing-1"}
    texts = sorted((u["call_id"], u["utterance_index"], u["text"]) for u in store.read("utterances").to_pylist())
    assert texts == [tuple(t) for t in expected["utterance_texts"]]
    assert store.read("calls").num_rows == expected["calls"]
    with pytest.raises(StoreError, match="not a callqa 0.1 store"):
        upgrade_store(root)
