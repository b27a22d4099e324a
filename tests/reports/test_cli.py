"""The report, sample and agreement commands on the sample month (the store read is replaced by its inputs)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from pipeline.cli import common, reports_cmd

from .sample_month import make_inputs

# The commands as `callqa` registers them (pipeline/cli/app.py), without the rest of the CLI.
app = typer.Typer(pretty_exceptions_enable=False)
app.command("report")(reports_cmd.report)
app.command("sample")(reports_cmd.sample)
app.command("agreement")(reports_cmd.agreement)


class Output:
    """What the commands print (the CLI's consoles write to the real stdout/stderr, so swap them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.buffer = io.StringIO()
        console = Console(file=self.buffer, width=200, highlight=False)
        monkeypatch.setattr(reports_cmd, "out", console)
        monkeypatch.setattr(common, "err", console)

    def invoke(self, *args: str) -> tuple[int, str]:
        self.buffer.seek(0)
        self.buffer.truncate()
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, self.buffer.getvalue() + result.output


@pytest.fixture
def cli(monkeypatch) -> Output:
    return Output(monkeypatch)


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "store"
    inputs = make_inputs(root)
    monkeypatch.setattr("pipeline.reports.inputs.read_inputs", lambda _root, _storage_options=None: inputs)
    return root


def test_report_command_writes_html_tables_and_says_so(cli, store, tmp_path):
    out = tmp_path / "r" / "week.html"
    code, text = cli.invoke("report", str(store), "--out", str(out), "--no-pdf", "--review-url", "http://review:9000")
    assert code == 0, text
    assert "week 2026-W47: 6 calls, pass rate 33.3%, 2 red-line (1 unconfirmed, to review)" in text
    html = out.read_text(encoding="utf-8")
    assert 'href="http://review:9000/calls/c4"' in html
    assert (tmp_path / "r" / "week_tables" / "teams.csv").is_file()


def test_report_errors_are_one_line(cli, store, tmp_path):
    code, text = cli.invoke("report", str(store), "--out", str(tmp_path / "x.html"), "--period", "year")
    assert code == 2 and "--period: must be one of day, week, month" in text
    code, text = cli.invoke("report", str(store), "--out", str(tmp_path / "x.html"), "--date", "22.11.2026")
    assert code == 2 and "--date: not a date" in text
    code, text = cli.invoke("report", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html"))
    assert code == 2 and "not a store directory" in text and len(text.strip().splitlines()) == 1


def test_sample_command_writes_a_queue_in_the_store(cli, store):
    args = ("sample", str(store), "--design", "stratified", "--by", "team", "--per-stratum", "2", "--seed", "3",
            "--date", "2026-11-20")
    code, text = cli.invoke(*args)
    assert code == 0, text
    queue = store / "_review" / "queues" / "stratified-team-2026-W47-seed3.csv"
    with queue.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["stratum"] for r in rows) == ["T1", "T1", "T2", "T2"]
    assert json.loads(queue.with_name(queue.stem + ".design.json").read_text(encoding="utf-8"))["seed"] == 3
    code, text = cli.invoke(*args)
    assert code == 1 and "already exists" in text
    code, text = cli.invoke("sample", str(store), "--design", "stratified", "--size", "3")
    assert code == 2 and "needs by" in text
    code, text = cli.invoke("sample", str(store), "--design", "stratified", "--by", "team", "--sizes", "T1")
    assert code == 2 and "--sizes: expected STRATUM=N" in text


def test_agreement_command(cli, store, tmp_path):
    code, text = cli.invoke("agreement", str(store), "--out", str(tmp_path / "agr"))
    assert code == 0, text
    assert "0.400" in text and "forbidden.buqingchu" in text  # κ of r1 and r2 on their three common calls
    with (tmp_path / "agr" / "rule_precision.csv").open(encoding="utf-8-sig") as handle:
        precision = {r["rule_id"]: r for r in csv.DictReader(handle)}
    assert (precision["forbidden.buqingchu"]["confirmed"], precision["forbidden.buqingchu"]["reviewed"]) == ("1", "2")
