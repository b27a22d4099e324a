"""The command line: exit codes, one-line errors, help with examples."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app

runner = CliRunner()


def callqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True)


@pytest.fixture
def fast_config(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text("[asr]\nenabled = false\n")
    return path


def test_run_then_status_then_rerun(tmp_path, stereo_call, fast_config):
    stereo_call("ok.wav", directory=tmp_path / "in")
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    store = tmp_path / "store"
    first = callqa("run", str(tmp_path / "in"), "--out", str(store), "--config", str(fast_config), "-q")
    assert first.returncode == 1
    assert "2 calls: 1 done, 1 failed" in first.stdout
    assert f"results: {store.resolve()}" in first.stdout
    status = runner.invoke(app, ["status", str(store)])
    assert status.exit_code == 0
    assert "done: 1 · failed: 1 · pending (last run): 0" in status.stdout
    assert "empty.wav: empty file (0 bytes)" in status.stdout
    again = callqa("run", str(tmp_path / "in"), "--out", str(store), "--config", str(fast_config), "-q")
    assert "0 done, 0 failed, 2 already done" in again.stdout
    assert again.returncode == 1  # the earlier failure still stands


def test_all_good_exits_zero(tmp_path, stereo_call, fast_config):
    path = stereo_call("ok.wav")
    result = callqa("run", str(path), "--out", str(tmp_path / "s"), "--config", str(fast_config), "-q")
    assert result.returncode == 0, result.stderr
    assert "1 calls: 1 done, 0 failed" in result.stdout


def test_config_error_is_one_line_exit_2(tmp_path, stereo_call):
    bad = tmp_path / "bad.toml"
    bad.write_text("[vad]\nthreshhold = 0.3\n")
    result = callqa("run", str(stereo_call()), "--out", str(tmp_path / "s"), "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == f"callqa: error: {bad}: unknown key 'vad.threshhold'"
    assert not (tmp_path / "s").exists()


def test_missing_input_and_broken_manifest(tmp_path, fast_config):
    result = callqa("run", str(tmp_path / "nope"), "--out", str(tmp_path / "s"), "--config", str(fast_config))
    assert result.returncode == 2 and "nope: input not found" in result.stderr
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,file\nx,y.wav\n")
    result = callqa("run", str(manifest), "--out", str(tmp_path / "s"), "--config", str(fast_config))
    assert result.returncode == 2
    assert "m.csv: manifest lacks required column(s) ['call_id', 'path']" in result.stderr


def test_usage_error_exit_2_and_help_has_example():
    assert runner.invoke(app, ["run"]).exit_code == 2
    help_text = runner.invoke(app, ["run", "--help"]).stdout
    assert "Example:" in help_text and "--workers" in help_text


def test_status_of_non_store(tmp_path):
    result = runner.invoke(app, ["status", str(tmp_path / "missing")])
    assert result.exit_code == 2
