"""Current rows for everyone: DuckDB, Polars and pyarrow (through deltalake, no callqa) read what Store reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import deltalake
import duckdb
import polars as pl
import pyarrow.compute as pc
import pytest

from pipeline.analysis import Resources, ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.rescore import rescore_store, score_store, store_scoring
from pipeline.store import Store
from pipeline.text.rules import load_rules
from tests.store.helpers import EchoTranscriber

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
POINTER = {"segments": "transcript_id", "utterances": "transcript_id", "hits": "analysis_id",
           "errors": "analysis_id", "features": "score_id"}


def _pyarrow_current(root: Path, table: str) -> set[str]:
    calls = deltalake.DeltaTable(f"{root}/calls").to_pyarrow_table(columns=[POINTER[table]])
    rows = deltalake.DeltaTable(f"{root}/{table}").to_pyarrow_table()
    return _keys(rows.filter(pc.is_in(rows[POINTER[table]], calls[POINTER[table]])).to_pylist())


def _duckdb_current(root: Path, table: str) -> set[str]:
    calls = deltalake.DeltaTable(f"{root}/calls").to_pyarrow_dataset()  # noqa: F841 - DuckDB reads the variable
    rows = deltalake.DeltaTable(f"{root}/{table}").to_pyarrow_dataset()  # noqa: F841
    result = duckdb.sql(f"SELECT t.* FROM rows t SEMI JOIN calls c USING ({POINTER[table]})").to_arrow_table()
    return _keys(result.to_pylist())


def _polars_current(root: Path, table: str) -> set[str]:
    pointer = POINTER[table]
    frame = pl.scan_delta(f"{root}/{table}").join(pl.scan_delta(f"{root}/calls").select(pointer), on=pointer,
                                                   how="semi").collect()
    return _keys(frame.to_dicts())


def _keys(rows: list[dict]) -> set[str]:
    return {f"{r['call_id']}|{r.get('hit_id') or r.get('utterance_index') or r.get('start_s') or ''}"
            f"|{r.get('score')}" for r in rows}


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    calls = tmp_path / "in"
    calls.mkdir()
    for name in ("asr_example.wav", "BAC009S0764W0121.wav", "news_5s.wav"):
        shutil.copy(CLIPS / name, calls / name)
    return calls


def test_engines_read_the_current_rows_after_run_force_score_and_rescore(tmp_path: Path, store_dir: Path) -> None:
    config = load_config()
    root = tmp_path / "store"
    spec = ResourceSpec(config, transcriber=EchoTranscriber({"mixed": "你这话什么意思,我不清楚"}))
    options = RunOptions(isolate=False)
    run_batch(store_dir, root, config, options, resources=spec)
    run_batch(store_dir, root, config, RunOptions(isolate=False, force=True), resources=spec)
    store = Store(root)
    scoring = store_scoring(store, config)
    score_store(store, Resources.load(config, transcriber=None, scorecard=scoring.scorecard, text=False))
    rescore_store(store, Resources.load(config, transcriber=None, rules=load_rules(), scorecard=scoring.scorecard,
                                        text=True))
    features = store.read("features")
    assert sorted(features["call_id"].to_pylist()) == ["BAC009S0764W0121", "asr_example", "news_5s"]
    for table in ("segments", "utterances", "hits", "features"):
        expected = _keys(store.read(table).to_pylist())
        assert expected, table
        assert _pyarrow_current(root, table) == expected, table
        assert _duckdb_current(root, table) == expected, table
        assert _polars_current(root, table) == expected, table
    # the history is in the files, not in the current rows
    assert deltalake.DeltaTable(f"{root}/features").to_pyarrow_table().num_rows == 3 * 4
