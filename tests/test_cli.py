"""The command line: exit codes, one-line errors, help with examples, output to pipes."""

import os
import subprocess
import sys

import pytest
import typer

from pipeline.cli.app import app


def callqa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point, with stdout and stderr going to pipes (as in a cron job)."""
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80", **(env or {})})


@pytest.fixture
def fast_config(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text("[asr]\nenabled = false\n")
    return path


def test_run_then_status_then_rerun(tmp_path, stereo_call, fast_config, cli):
    # long directory names: lines naming them are well over 80 columns
    long = tmp_path / ("recordings-" + "x" * 60)
    calls = long / "2026-11-22"
    stereo_call("ok.wav", directory=calls)
    (calls / "empty.wav").write_bytes(b"")
    store = long / "store"
    first = callqa("run", calls, "--out", store, "--config", fast_config, "-q")
    assert first.returncode == 1, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("2 calls: 1 done, 1 failed, 0 already done · ")
    # the summary is printed although stdout is a pipe, and its long lines are neither cut nor wrapped
    assert "  failed: 1 × UnsupportedAudioError (see `callqa status " + str(store) + "`)" in lines
    assert f"results: {store.resolve()}" in lines and len(f"results: {store.resolve()}") > 100
    status = cli("status", store)
    assert status.exit_code == 0
    assert "done: 1 · failed: 1 · pending (last run): 0 · audio: 0.003 h" in status.stdout
    assert f"  - {calls / 'empty.wav'}: empty file (0 bytes)" in status.stdout.splitlines()
    again = cli("run", calls, "--out", store, "--config", fast_config, "-q")
    assert again.stdout.startswith("2 calls: 0 done, 0 failed, 2 already done")
    assert "  1 of the calls already done had failed in an earlier run (--force retries)" in again.stdout
    assert again.exit_code == 1  # the earlier failure still stands


def test_all_good_exits_zero(tmp_path, stereo_call, fast_config, cli):
    path = stereo_call("ok.wav")
    result = cli("run", path, "--out", tmp_path / "s", "--config", fast_config, "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 calls: 1 done, 0 failed, 0 already done")
    assert "scoring: scorecard callcentre-2026.11.1 · classifier none promoted" in result.stdout


def test_config_error_is_one_line_exit_2(tmp_path, stereo_call, cli):
    bad = tmp_path / "bad.toml"
    bad.write_text("[vad]\nthreshhold = 0.3\n")
    result = cli("run", stereo_call(), "--out", tmp_path / "s", "--config", bad)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"callqa: error: {bad}: unknown key 'vad.threshhold'"
    assert not (tmp_path / "s").exists()


def test_the_installed_entry_point_prints_one_error_line_on_stderr(tmp_path):
    result = callqa("show", tmp_path / "missing")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"callqa: error: {tmp_path / 'missing'}: no store here (run `callqa run INPUT " \
                                    "--out STORE` first)"


def test_missing_input_and_broken_manifest(tmp_path, fast_config, cli):
    result = cli("run", tmp_path / "nope", "--out", tmp_path / "s", "--config", fast_config)
    assert result.exit_code == 2 and result.stderr.strip() == f"callqa: error: {tmp_path / 'nope'}: input not found"
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,file\nx,y.wav\n")
    result = cli("run", manifest, "--out", tmp_path / "s", "--config", fast_config)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"callqa: error: {manifest}: manifest lacks required column(s) ['call_id', 'path']"
    assert cli("run", manifest, "--out", tmp_path / "s", "--workers", "0").exit_code == 2


def test_usage_errors_exit_2(cli):
    assert cli("run").exit_code == 2  # INPUT and --out missing
    assert cli("show").exit_code == 2
    assert cli("no-such-command").exit_code == 2
    assert cli("transcribe", "a.wav", "--no-such-flag").exit_code == 2


def _commands(group, path=()):
    """Every leaf command of the CLI with its path, e.g. ("models", "list")."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_every_command_is_listed():
    assert {("run",), ("status",), ("show",), ("transcribe",), ("rescore",), ("score",), ("redact",),
            ("rules", "match"), ("models", "list"), ("models", "promote"), ("model", "info"),
            ("store", "upgrade")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example_and_shows_flags_as_flags(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    text = result.stdout
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith("Example:")]
    assert examples, f"callqa {' '.join(command)} --help has no Example: line"
    assert examples[0].startswith(f"Example:  callqa {' '.join(command)}")
    assert "<bool>" not in text and "BOOLEAN" not in text  # flags are flags, not options taking a value
    assert "[/]" not in text and "[bold" not in text  # no console markup leaks into plain help


def test_help_keeps_section_names_and_flag_syntax(cli):
    run_help = cli("run", "--help").stdout
    assert "(default: [run] workers)" in run_help  # a [section] name is not eaten as markup
    assert "  --force " in run_help and "--force <" not in run_help
    score_help = cli("score", "--help").stdout
    assert "--scorecard <path>" in score_help


def test_status_and_show_of_a_directory_that_is_not_a_store(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for command in ("status", "show"):
        for target in (tmp_path, tmp_path / "missing"):
            result = cli(command, target)
            assert result.exit_code == 2, (command, target)
            assert result.stderr.startswith("callqa: error: ") and len(result.stderr.strip().splitlines()) == 1
            assert result.stdout == ""  # no empty table
