"""What an operator types by mistake gets one line and a non-zero exit, never a silent pass or a
traceback: a red-line model path without a model, and data holding rich markup (`[/]`) in the
paths, call ids and metadata that `status` and `show` print."""

from __future__ import annotations

import subprocess
import sys

import soundfile
from _support import REPO, SR, clip, user_env

from pipeline.analysis import ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.errors import ModelError


def callqa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env=user_env())


def test_a_red_line_model_path_without_a_model_is_an_error(tmp_path):
    # Before: the model was silently turned off (exit 0, the version string just lost it).
    empty = tmp_path / "model"
    empty.mkdir()
    config = load_config().with_overrides({"classifier": {"redline_model": str(empty)}})
    try:
        ResourceSpec(config).versions()
    except ModelError as exc:
        assert exc.path == str(empty) and "no red-line text model here" in exc.reason
    else:
        raise AssertionError("a red-line model path without a model was accepted")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[classifier]\nredline_model = "{empty}"\n', encoding="utf-8")
    (tmp_path / "in").mkdir()
    soundfile.write(tmp_path / "in" / "a.wav", clip("news_5s.wav"), SR, subtype="PCM_16")
    result = callqa("run", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--config", str(toml), "-q")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"callqa: error: {empty}: no red-line text model here")


def test_status_and_show_print_markup_in_data_as_text(tmp_path):
    # Before: `status` and `show` crashed with rich.errors.MarkupError on "[/]" in a path or call id.
    directory = tmp_path / "in"
    (directory / "call [").mkdir(parents=True)  # call ids are relative paths: "call [/]red", "bad [/]"
    (directory / "bad [").mkdir()
    soundfile.write(directory / "call [" / "]red.wav", clip("news_5s.wav"), SR, subtype="PCM_16")
    (directory / "bad [" / "].wav").write_text("not audio [/]", encoding="utf-8")
    config = load_config().with_overrides({"asr": {"enabled": False}})
    summary = run_batch(directory, tmp_path / "store", config, RunOptions(isolate=False))
    assert (summary.done, summary.failed) == (1, 1)
    status = callqa("status", str(tmp_path / "store"))
    assert status.returncode == 0, status.stderr
    assert "bad [/].wav: not an audio file" in status.stdout
    listing = callqa("show", str(tmp_path / "store"))
    assert listing.returncode == 0, listing.stderr
    assert "call [/]red" in listing.stdout
    one = callqa("show", str(tmp_path / "store"), "call [/]red")
    assert one.returncode == 0, one.stderr
    assert "call [/]red" in one.stdout and "MarkupError" not in one.stderr
