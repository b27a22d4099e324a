"""Real `callqa` processes sharing one store: two runs, and run + rescore + score at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store import Store

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
REPO = Path(__file__).resolve().parents[2]


def _calls(directory: Path, names: list[str]) -> Path:
    directory.mkdir(parents=True)
    for index, name in enumerate(names):
        shutil.copy(CLIPS / name, directory / f"{index:02d}-{name}")
    return directory


def _callqa(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _assert_one_current_result_per_call(root: Path, expected_calls: set[str]) -> None:
    view = Store(root).snapshot()
    calls = view.read("calls")
    ids = calls["call_id"].to_pylist()
    assert sorted(ids) == sorted(expected_calls), ids
    features = view.read("features")["call_id"].to_pylist()
    assert sorted(features) == sorted(expected_calls)  # exactly one current feature row per call
    pointers = dict(zip(ids, calls["transcript_id"].to_pylist(), strict=True))
    for row in view.read("segments", ["transcript_id"]).to_pylist():
        assert row["transcript_id"] == pointers[row["call_id"]]


@pytest.fixture
def vad_config(tmp_path: Path) -> Path:
    path = tmp_path / "vad.toml"
    path.write_text("[asr]\nenabled = false\n[run]\ncommit_every_calls = 1\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_two_runs_into_one_store_same_and_different_inputs(tmp_path: Path, vad_config: Path) -> None:
    names = ["asr_example.wav", "news_5s.wav", "BAC009S0764W0121.wav", "BAC009S0764W0122.wav"]
    shared = _calls(tmp_path / "shared", names)
    other = _calls(tmp_path / "other", names[:2])
    root = tmp_path / "store"
    runs = [_callqa("run", shared, "--out", root, "-c", vad_config, "-q"),
            _callqa("run", shared, "--out", root, "-c", vad_config, "-q"),
            _callqa("run", other, "--out", root, "-c", vad_config, "-q")]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
    expected = {p.stem for p in shared.iterdir()}  # other/ holds files of the same names: same call ids
    _assert_one_current_result_per_call(root, expected)


@pytest.mark.slow
def test_run_rescore_and_score_at_once(tmp_path: Path, vad_config: Path) -> None:
    calls = _calls(tmp_path / "in", ["asr_example.wav", "news_5s.wav", "news_8s.wav"])
    root = tmp_path / "store"
    first = subprocess.run([sys.executable, "-m", "pipeline", "run", str(calls), "--out", str(root), "-c",
                            str(vad_config), "-q"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    processes = [_callqa("run", calls, "--out", root, "-c", vad_config, "-q", "--force"),
                 _callqa("rescore", root, "-c", vad_config),
                 _callqa("score", root, "-c", vad_config)]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, (process.args, err[-2000:])
    _assert_one_current_result_per_call(root, {p.stem for p in calls.iterdir()})
