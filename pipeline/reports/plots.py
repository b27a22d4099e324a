"""The report's charts as PNG bytes (matplotlib, Agg, Chinese labels via :mod:`pipeline.reports.fonts`).

Each function takes one of the report's tables and returns PNG bytes, or
None when there is nothing to draw. Figures are built with the object API
(no pyplot state) inside an ``rc_context``, so global matplotlib settings are
left alone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from pipeline.reports.fonts import cjk_rc

matplotlib.use("Agg", force=False)

CURRENT, PREVIOUS = "#2f6db5", "#a9c4e6"
GRADE_COLOURS = ("#2e8b57", "#8fbc5a", "#f0b400", "#d9534f", "#7f3f3f", "#555555")
DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def text_png(text: str, size: tuple[float, float] = (3.0, 0.6)) -> bytes:
    """``text`` drawn alone on a small canvas (used to check that Chinese glyphs render)."""
    with matplotlib.rc_context(cjk_rc()):
        figure = Figure(figsize=size)
        figure.text(0.05, 0.3, text, fontsize=18)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def team_pass_rates(teams: dict[str, list]) -> bytes | None:
    """Horizontal bars: 合格率 per team, this period and the previous one."""
    names = teams["team"]
    if not names:
        return None
    with matplotlib.rc_context(cjk_rc()):
        figure = Figure(figsize=(7.5, 0.5 + 0.45 * len(names)))
        axes = figure.add_subplot()
        rows = list(range(len(names)))[::-1]
        current = [v or 0.0 for v in teams["pass_rate"]]
        previous = [v or 0.0 for v in teams["prev_pass_rate"]]
        axes.barh([r + 0.2 for r in rows], current, height=0.4, color=CURRENT, label="本期 this period")
        axes.barh([r - 0.2 for r in rows], previous, height=0.4, color=PREVIOUS, label="上期 previous")
        for r, value in zip(rows, current, strict=True):
            axes.text(value + 0.01, r + 0.2, f"{value:.0%}", va="center", fontsize=8)
        axes.set_yticks(rows, names)
        axes.set_xlim(0, 1.12)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title("各组合格率 pass rate by team (ACD组)")
        axes.legend(loc="lower right", fontsize=8)
        return _png(figure)


def grade_mix(teams: dict[str, list], grades: Sequence[str]) -> bytes | None:
    """Stacked horizontal bars: the grade mix of each team."""
    names = teams["team"]
    if not names:
        return None
    with matplotlib.rc_context(cjk_rc()):
        figure = Figure(figsize=(7.5, 0.8 + 0.4 * len(names)))
        axes = figure.add_subplot()
        rows = list(range(len(names)))[::-1]
        left = [0.0] * len(names)
        for i, grade in enumerate(grades):
            shares = [v or 0.0 for v in teams.get(f"grade_{grade}", [0.0] * len(names))]
            axes.barh(rows, shares, left=left, height=0.6, color=GRADE_COLOURS[i % len(GRADE_COLOURS)],
                      label=f"{grade}级")
            left = [a + b for a, b in zip(left, shares, strict=True)]
        axes.set_yticks(rows, names)
        axes.set_xlim(0, 1)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title("等级分布 grade mix by team")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(grades), fontsize=8, frameon=False)
        return _png(figure)


def problem_categories(categories: dict[str, list], top: int = 12) -> bytes | None:
    """Horizontal bars: share of calls with a problem of each category (top ``top``)."""
    names = categories["category_name"][:top]
    if not names:
        return None
    with matplotlib.rc_context(cjk_rc()):
        figure = Figure(figsize=(7.5, 0.6 + 0.38 * len(names)))
        axes = figure.add_subplot()
        rows = list(range(len(names)))[::-1]
        rates = categories["call_rate"][:top]
        fatal = categories["fatal_hits"][:top]
        colours = ["#d9534f" if f else CURRENT for f in fatal]
        axes.barh(rows, rates, color=colours, height=0.6)
        for r, value in zip(rows, rates, strict=True):
            axes.text(value + 0.005, r, f"{value:.1%}", va="center", fontsize=8)
        axes.set_yticks(rows, names)
        axes.set_xlim(0, max(rates) * 1.2 if max(rates) > 0 else 1)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title("问题类别 share of calls with each problem (red: 致命 fatal)")
        return _png(figure)


def trend(points: dict[str, list]) -> bytes | None:
    """合格率 (left axis) and mean score (right axis) over the trend periods."""
    labels = points["period"]
    if not any(points["calls"]):
        return None
    with matplotlib.rc_context(cjk_rc()):
        figure = Figure(figsize=(7.5, 3.2))
        axes = figure.add_subplot()
        x = list(range(len(labels)))
        pass_rates = [float("nan") if v is None else v for v in points["pass_rate"]]
        scores = [float("nan") if v is None else v for v in points["mean_score"]]
        axes.plot(x, pass_rates, marker="o", color=CURRENT, label="合格率 pass rate")
        axes.set_ylim(0, 1.05)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        right = axes.twinx()
        right.plot(x, scores, marker="s", color="#e07b39", label="平均分 mean score")
        right.set_ylim(0, 105)
        axes.set_title("趋势 trend over the last periods")
        handles = axes.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        axes.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
        return _png(figure)
