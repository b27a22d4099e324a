"""The store's commit protocol: atomic chunks, orphan recovery, latest-wins, disk-full safety."""

import errno
import json

import pyarrow.parquet as pq
import pytest

from pipeline.errors import StoreError
from pipeline.records import Hit, SpeechSegment
from pipeline.store import Store, common_columns, hits_rows, segments_rows


def call_row(call_id, config_hash="c1", model_id="m1", status="ok", date="2026-11-22"):
    return {**common_columns(call_id, config_hash, model_id, "r1"), "call_date": date, "path": f"{call_id}.wav",
            "audio_sha256": "ab" * 32, "status": status, "duration_s": 10.0, "roles": ["agent", "customer"]}


def test_commit_and_read_round_trip(tmp_path):
    store = Store(tmp_path / "s")
    common = {**common_columns("a", "c1", "m1", "r1"), "call_date": "2026-11-22"}
    segments = [SpeechSegment("agent", 0.5, 2.0, -20.0), SpeechSegment("customer", 2.5, 4.0, -25.5)]
    store.commit({"calls": [call_row("a"), call_row("b", date="2026-11-23")],
                  "segments": segments_rows(segments, common)})
    calls = store.read("calls")
    assert sorted(calls["call_id"].to_pylist()) == ["a", "b"]
    assert sorted(calls["call_date"].to_pylist()) == ["2026-11-22", "2026-11-23"]
    assert (tmp_path / "s" / "calls" / "date=2026-11-23").is_dir()  # hive partitions by call date
    seg = store.read("segments").to_pylist()
    assert [(r["role"], r["start_s"], r["end_s"]) for r in seg] == [("agent", 0.5, 2.0), ("customer", 2.5, 4.0)]
    assert {r["schema_version"] for r in seg} == {1}


def test_uncommitted_parts_are_invisible_and_recovered(tmp_path):
    store = Store(tmp_path)
    store.commit({"calls": [call_row("a")]})
    # simulate a kill after a data part was written but before the ledger file
    ledger = next((tmp_path / "_commits").glob("*.json"))
    orphan_chunk = "deadbeefdeadbeef"
    src = next((tmp_path / "calls").rglob("part-*.parquet"))
    (src.parent / f"part-{orphan_chunk}.parquet").write_bytes(src.read_bytes())
    (src.parent / ".part-x.parquet.123.tmp").write_bytes(b"half a file")
    assert store.read("calls").num_rows == 1
    assert store.recover() == 2
    assert sorted(p.name for p in src.parent.iterdir()) == [src.name]
    assert json.loads(ledger.read_text())["tables"] == ["calls"]


def test_latest_commit_wins_per_key_but_other_models_stay(tmp_path):
    store = Store(tmp_path)
    store.commit({"calls": [call_row("a", model_id="base"), call_row("b", model_id="base")]})
    redo = call_row("a", model_id="base")
    redo["duration_s"] = 11.0
    store.commit({"calls": [redo, call_row("a", model_id="large-v3")]})
    rows = {(r["call_id"], r["model_id"]): r["duration_s"] for r in store.read("calls").to_pylist()}
    assert rows == {("a", "base"): 11.0, ("b", "base"): 10.0, ("a", "large-v3"): 10.0}
    assert store.read("calls", current=False).num_rows == 4


def test_hits_keep_each_rules_version(tmp_path):
    store = Store(tmp_path)
    common = {**common_columns("a", "c1", "m1", "r1"), "call_date": "2026-11-22"}
    hit = dict(call_id="a", rule_id="forbidden.buqingchu", category="forbidden_phrase", severity="non_fatal",
               error_class="customer", role="agent", start_s=1.0, end_s=1.5, match_type="exact")
    store.commit({"hits": hits_rows([Hit(rules_version="v1", **hit)], common)})
    store.commit({"hits": hits_rows([Hit(rules_version="v2", **hit)], common)}, kind="rescore")
    store.commit({"hits": hits_rows([Hit(rules_version="v2", **hit)], common)}, kind="rescore")
    hits = store.read("hits").to_pylist()
    assert sorted(h["rules_version"] for h in hits) == ["v1", "v2"]
    assert len({h["hit_id"] for h in hits}) == 2
    # a later commit that redid (call a, v2) and found nothing supersedes v2's hit; v1's stays
    store.commit({"hits": []}, covers={"hits": [("a", "c1", "m1", "v2")]})
    assert [h["rules_version"] for h in store.read("hits").to_pylist()] == ["v1"]
    assert store.read("hits", current=False).num_rows == 3


def test_disk_full_keeps_nothing_of_the_chunk(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.commit({"calls": [call_row("a")]})
    real_write = pq.write_table
    calls = {"n": 0}

    def failing_write(table, where, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second table of the chunk hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr("pipeline.store.pq.write_table", failing_write)
    common = {**common_columns("b", "c1", "m1", "r1"), "call_date": "2026-11-22"}
    with pytest.raises(StoreError, match="No space left on device"):
        store.commit({"calls": [call_row("b")],
                      "segments": segments_rows([SpeechSegment("agent", 0, 1, -20)], common)})
    monkeypatch.undo()
    assert store.read("calls")["call_id"].to_pylist() == ["a"]  # finished work kept, new chunk invisible
    assert store.read("segments").num_rows == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_reading_an_empty_store_gives_typed_empty_tables(tmp_path):
    table = Store(tmp_path / "none").read("hits")
    assert table.num_rows == 0 and "hit_id" in table.column_names
