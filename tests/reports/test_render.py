"""Rendering: Chinese glyphs really drawn, HTML self-contained and escaped, CSV formula-safe, Parquet beside it."""

from __future__ import annotations

import csv
import io
import re
import subprocess

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fontTools.ttLib import TTFont
from matplotlib.figure import Figure
from PIL import Image

from pipeline.reports.csv_safe import neutralise, table_csv
from pipeline.reports.fonts import cjk_font_family, cjk_font_path, subset_font_woff
from pipeline.reports.inputs import ReportInputs
from pipeline.reports.plots import text_png
from pipeline.reports.render import chromium_command, find_chromium, format_value, render_html, write_report
from pipeline.reports.report import ReportSettings, build_report

from .sample_month import WEEK, feature_rows, make_inputs

LABEL_TEXT = "合格率红线坐席共性个性致命顾客业务合规"


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def test_cjk_font_covers_the_report_labels():
    cmap = TTFont(str(cjk_font_path()), lazy=True).getBestCmap()
    assert all(ord(ch) in cmap for ch in LABEL_TEXT + "服务禁语辱骂反问冷漠")
    assert cjk_font_family() == "Noto Sans CJK SC"


def test_rendered_png_draws_chinese_not_boxes():
    first, second = pixels(text_png("合格率")), pixels(text_png("红线通"))
    assert (first < 128).sum() > 50 and (second < 128).sum() > 50  # something is drawn
    assert not np.array_equal(first, second)  # different characters, different pictures
    # Control: without the CJK font both strings are the same three "missing glyph" boxes.
    def dejavu(text: str) -> np.ndarray:
        with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}), pytest.warns(UserWarning, match="missing"):
            figure = Figure(figsize=(3.0, 0.6))
            figure.text(0.05, 0.3, text, fontsize=18)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80)
        return pixels(buffer.getvalue())
    assert np.array_equal(dejavu("合格率"), dejavu("红线通"))


def test_embedded_font_subset_is_small_and_has_the_glyphs():
    font = TTFont(io.BytesIO(subset_font_woff("合格率 abc")))
    cmap = font.getBestCmap()
    assert {ord(c) for c in "合格率abc"} <= set(cmap) and ord("红") not in cmap
    assert font.flavor == "woff"


def test_format_value():
    assert format_value("pass_rate", 0.6667) == "66.7%"
    assert format_value("pass_rate_change", -1 / 3) == "-33.3 pp"
    assert format_value("mean_score_change", 1.6667) == "+1.7"
    assert format_value("kappa", float("nan")) == "n/a" and format_value("agent_coverage", None) == "n/a"
    assert format_value("value", 0.25, "reviewed_share") == "25.0%" and format_value("value", 7.0, "calls") == "7"
    assert format_value("redline_status", "unconfirmed") == "待确认 unconfirmed"


def test_csv_cells_cannot_run_formulas():
    assert [neutralise(v) for v in ("=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "T1", None)] == \
        ["'=1+1", "'+1", "'-cmd", "'@SUM(A1)", "'\tx", "T1", ""]
    text = table_csv(pa.table({"team": ["=HYPERLINK(\"http://x\")", "T2"], "rate": [-0.5, 0.25],
                               "agents": [["@a", "b"], []]}))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["team", "rate", "agents"], ["'=HYPERLINK(\"http://x\")", "-0.5", "'@a, b"], ["T2", "0.25", ""]]


@pytest.fixture
def hostile_inputs(tmp_path):
    rows = feature_rows()
    rows[0]["team"] = "<script>alert(1)</script>"
    rows[1]["agent_id"] = "=cmd|' /C calc'!A0"
    inputs = make_inputs(tmp_path / "s", verdicts_too=False)
    return ReportInputs.from_tables(pa.Table.from_pylist(rows), inputs.hits, inputs.calls, inputs.errors)


def test_html_is_self_contained_and_escaped(hostile_inputs, tmp_path):
    report = build_report(hostile_inputs, WEEK, ReportSettings(trend_periods=3, review_url="http://r:1"))
    html = render_html(report, store="S")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r'(src|href)="(?!data:|http://r:1/calls/)', html)  # no external file, only call links
    assert html.count("data:image/png;base64,") == 4 and "@font-face" in html and "data:font/woff;base64," in html
    assert "质检周报" in html and "共性" in html and "个性" in html
    # c3's red line only the text model heard is shown as unconfirmed, on the card and in its row
    assert "其中待确认 1 unconfirmed (to review)" in html
    red_rows = [row for row in re.findall(r"<tr>.*?</tr>", html, re.S) if re.search(r">(待)?确认 (un)?confirmed<", row)]
    assert [("calls/c4" in row, "待确认 unconfirmed" in row) for row in red_rows] == [(True, False), (False, True)]
    files = write_report(report, tmp_path / "out" / "week.html", pdf=False)
    assert files.pdf is None and files.html.is_file()
    teams_csv = (files.tables_dir / "agents.csv").read_text(encoding="utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in teams_csv
    parquet = pq.read_table(files.tables_dir / "teams.parquet")
    assert parquet.equals(report.tables["teams"])
    assert sorted(p.stem for p in files.tables_dir.glob("*.csv")) == sorted(report.tables)


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium")
def test_chromium_opens_the_report_prints_pdf_and_draws_chinese(tmp_path, inputs):
    report = build_report(inputs, WEEK, ReportSettings(trend_periods=3))
    files = write_report(report, tmp_path / "r.html", pdf=True)
    assert files.pdf is not None and files.pdf.read_bytes().startswith(b"%PDF")
    shot = tmp_path / "shot.png"
    subprocess.run(chromium_command(find_chromium(), files.html, f"--screenshot={shot}", "--window-size=1200,900"),
                   check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (900, 1200) and (image < 128).mean() > 0.01  # text and charts drawn


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium")
def test_chromium_draws_the_embedded_chinese_font(tmp_path):
    from pipeline.reports.fonts import EMBEDDED_FAMILY, font_face_css

    def shot(text: str) -> np.ndarray:
        page = tmp_path / f"{ord(text[0])}.html"
        page.write_text(f'<meta charset="utf-8"><style>{font_face_css(text)} body {{ font-family: '
                        f'"{EMBEDDED_FAMILY}"; font-size: 48px; }}</style><p>{text}</p>', encoding="utf-8")
        out = tmp_path / f"{ord(text[0])}.png"
        subprocess.run(chromium_command(find_chromium(), page, f"--screenshot={out}", "--window-size=400,200"),
                       check=True, capture_output=True, timeout=120)
        return np.asarray(Image.open(out).convert("L"))

    first, second = shot("合格率"), shot("红线通")
    assert (first < 128).sum() > 200 and not np.array_equal(first, second)
