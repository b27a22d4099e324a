"""Write a report: one self-contained HTML file, its tables as CSV and Parquet, and a PDF when possible.

The HTML embeds its charts as base64 PNG and its CSS inline, so it opens
offline and can be mailed as one file. Links go to the review app
(``{review_url}/calls/{call_id}``). Every value from call metadata is escaped
by Jinja2's autoescape; CSV text cells are neutralised against spreadsheet
formulas (:mod:`pipeline.reports.csv_safe`).

Beside ``report.html``: ``report_tables/<table>.csv`` and ``.parquet`` (the
same tables, unformatted) and ``report.pdf`` printed by headless Chromium
(``chromium`` on PATH or ``/usr/bin/chromium``) when it is installed.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.errors import CallqaError
from pipeline.reports import plots
from pipeline.reports.csv_safe import write_csv
from pipeline.reports.fonts import font_face_css
from pipeline.reports.periods import PERIOD_NAMES
from pipeline.reports.report import Report

#: Display labels (Chinese, then English) of table columns.
LABELS: Mapping[str, str] = {
    "team": "组 team", "agent_id": "坐席 agent", "calls": "通话 calls", "scored": "已评分 scored",
    "pass_rate": "合格率 pass rate", "mean_score": "平均分 mean", "fatal_calls": "致命 fatal",
    "redline_calls": "红线 red line", "redline_unconfirmed_calls": "红线待确认 unconfirmed",
    "redline_status": "红线 red line", "review_calls": "待复核 to review", "prev_calls": "上期通话 prev calls",
    "prev_pass_rate": "上期合格率 prev", "prev_mean_score": "上期平均分 prev", "pass_rate_change": "合格率变化 Δ",
    "mean_score_change": "平均分变化 Δ", "rule_id": "规则 rule", "category": "类别 category",
    "category_name": "类别 category", "severity": "严重度 severity", "severity_name": "严重度 severity",
    "error_class": "COPC类别 class", "class_name": "COPC类别 class", "hits": "命中 hits",
    "call_rate": "通话占比 share of calls", "agents": "坐席数 agents", "prev_call_rate": "上期占比 prev",
    "call_rate_change": "占比变化 Δ", "fatal_hits": "致命命中 fatal hits", "non_fatal_hits": "非致命 non-fatal",
    "error_calls": "差错通话 error calls", "error_rate": "差错率 error rate", "accuracy": "准确率 accuracy",
    "prev_error_rate": "上期差错率 prev", "error_rate_change": "差错率变化 Δ", "kind": "类型 kind",
    "active_agents": "在岗坐席 active agents", "agent_share": "坐席占比 agent share",
    "top_agent_share": "最高坐席占比 top agent share", "named_agents": "涉及坐席 agents (calls)",
    "period": "周期 period", "start": "开始 start", "redline_rate": "红线率 red-line rate",
    "redline_unconfirmed_rate": "待确认红线率 unconfirmed",
    "fatal_rate": "致命率 fatal rate", "problems_per_call": "每通问题 problems/call", "call_id": "通话 call",
    "call_date": "日期 date", "started_at": "开始时间 started", "score": "得分 score", "grade": "等级 grade",
    "outcome": "结论 outcome", "outcome_reasons": "原因 reasons", "failed_items": "扣分项 failed items",
    "redline_hits": "红线命中 red-line hits", "label": "指标 metric", "value": "值 value",
    "reviewed": "已复核 reviewed", "confirmed": "确认 confirmed", "rejected": "否决 rejected",
    "unsure": "不确定 unsure", "share": "确认率 confirmed share", "ci_low": "95%下限 low",
    "ci_high": "95%上限 high", "queue": "队列 queue", "design": "抽样设计 design", "seed": "种子 seed",
    "population": "总体 population", "sample": "样本 sample", "reviewed_share": "复核率 reviewed",
    "fail_rate": "不合格率 fail rate", "weighted_fail_rate": "加权不合格率 weighted",
    "stage": "环节 stage", "error_type": "原因 reason", "version": "版本 version",
    "reviewer_a": "复核员 A", "reviewer_b": "对照 B", "items": "共同项 items", "agreement": "一致率 agreement",
    "kappa": "κ", "reviewers": "复核员数 reviewers", "units": "共同项 units", "alpha": "α",
}
_PERCENT = {"pass_rate", "prev_pass_rate", "call_rate", "prev_call_rate", "error_rate", "prev_error_rate",
            "accuracy", "agent_share", "top_agent_share", "redline_rate", "redline_unconfirmed_rate", "fatal_rate",
            "share", "ci_low", "ci_high", "reviewed_share", "fail_rate", "weighted_fail_rate", "agreement"}
_POINTS = {"pass_rate_change", "call_rate_change", "error_rate_change"}
_DECIMAL = {"mean_score", "prev_mean_score", "score", "problems_per_call"}
_SIGNED = {"mean_score_change"}
_RATIO = {"kappa", "alpha"}
#: How a red-line call's status is shown (tables.redline_calls).
_REDLINE_STATUS = {"confirmed": "确认 confirmed", "unconfirmed": "待确认 unconfirmed"}
#: health/review_summary metrics shown as percentages.
_PERCENT_METRICS = {"failed_rate", "agent_coverage", "customer_coverage", "suspect_share", "reviewed_share",
                    "reviewer_fail_rate", "scorecard_agreement", "reviewed_hit_share"}


#: Where the template's ``<style>`` receives the embedded font.
FONT_MARKER = "/* embedded-font */"


class RenderError(CallqaError):
    """The report files cannot be written."""


def format_value(column: str, value: Any, metric: str | None = None) -> str:
    """How a cell is shown in the HTML: percentages, signed changes, 'n/a' for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "是" if value else "否"
    if column == "redline_status":
        return _REDLINE_STATUS.get(value, str(value))
    if column.startswith("grade_") or column in _PERCENT or (metric in _PERCENT_METRICS and column == "value"):
        return f"{value:.1%}"
    if column in _POINTS:
        return f"{value * 100:+.1f} pp"
    if column in _SIGNED:
        return f"{value:+.1f}"
    if column in _DECIMAL:
        return f"{value:.1f}"
    if column in _RATIO:
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def label(column: str) -> str:
    """A column's display label ('grade_A' -> 'A级')."""
    if column.startswith("grade_"):
        return f"{column[len('grade_'):]}级"
    return LABELS.get(column, column)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    tables_dir: Path
    pdf: Path | None


def _b64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode("ascii")


def charts(report: Report) -> dict[str, str | None]:
    """The report's charts as base64 PNG strings (None where there is no data)."""
    teams = report.tables["teams"].to_pydict()
    return {
        "teams": _b64(plots.team_pass_rates(teams)),
        "grades": _b64(plots.grade_mix(teams, report.settings.grades)),
        "categories": _b64(plots.problem_categories(report.tables["problems_by_category"].to_pydict())),
        "trend": _b64(plots.trend(report.tables["trend"].to_pydict())),
    }


def render_html(report: Report, store: str = "") -> str:
    """The report as one self-contained HTML page."""
    environment = Environment(loader=PackageLoader("pipeline.reports", "templates"),
                              autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    environment.filters["cell"] = format_value
    environment.filters["label"] = label
    template = environment.get_template("report.html.j2")
    rows = {name: table.to_pylist() for name, table in report.tables.items()}
    columns = {name: table.column_names for name, table in report.tables.items()}
    html = template.render(report=report, rows=rows, columns=columns, charts=charts(report), store=store,
                           kind_name=PERIOD_NAMES[report.period.kind], facts=report.facts,
                           grade_columns=[f"grade_{g}" for g in report.settings.grades])
    # Chromium on a fresh machine has no CJK font: embed the characters the page uses.
    return html.replace(FONT_MARKER, font_face_css(html), 1)


def find_chromium() -> str | None:
    """The headless Chromium used for PDF and screenshots, if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def chromium_command(chromium: str, html: Path, *flags: str) -> list[str]:
    """A headless Chromium command line over a local HTML file."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-pdf-header-footer", *flags, html.resolve().as_uri()]


def print_pdf(html: Path, pdf: Path, timeout_s: float = 120.0) -> Path | None:
    """Print ``html`` to ``pdf`` with headless Chromium; None when Chromium is missing or fails."""
    chromium = find_chromium()
    if chromium is None:
        return None
    try:
        subprocess.run(chromium_command(chromium, html, f"--print-to-pdf={pdf.resolve()}"), check=True,
                       capture_output=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    return pdf if pdf.is_file() and pdf.stat().st_size > 0 else None


def write_tables(tables: Mapping[str, pa.Table], directory: Path) -> None:
    """Each table as ``NAME.csv`` (formula-safe) and ``NAME.parquet``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv(table, directory / f"{name}.csv")
        tmp = directory / f".{name}.parquet.{os.getpid()}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, directory / f"{name}.parquet")


def write_report(report: Report, out_html: str | Path, store: str = "", pdf: bool = True) -> ReportFiles:
    """Write the HTML report, its tables (CSV + Parquet) and, if Chromium is installed, a PDF.

    Raises:
        RenderError: a file cannot be written.
    """
    out_html = Path(out_html)
    tables_dir = out_html.with_name(out_html.stem + "_tables")
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        html = render_html(report, store)
        tmp = out_html.with_name(f".{out_html.name}.{os.getpid()}.tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out_html)
        write_tables(report.tables, tables_dir)
    except OSError as exc:
        raise RenderError(str(out_html), f"cannot write the report: {exc.strerror or exc}") from None
    pdf_path = print_pdf(out_html, out_html.with_suffix(".pdf")) if pdf else None
    return ReportFiles(html=out_html, tables_dir=tables_dir, pdf=pdf_path)
