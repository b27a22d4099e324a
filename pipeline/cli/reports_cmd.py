"""``callqa report``, ``callqa sample`` and ``callqa agreement``: thin layers over :mod:`pipeline.reports`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import ConfigOption, StoreArg, fail, load_config_or_exit, local_store_dir, out
from pipeline.errors import CallqaError

DEFAULT_REVIEW_URL = "http://127.0.0.1:8000"
PeriodOption = Annotated[str, typer.Option("--period", "-p", help="day, week (ISO, Monday to Sunday) or month.")]
DateOption = Annotated[str | None, typer.Option("--date", help="A day inside the period, YYYY-MM-DD "
                                                "(default: the latest call date in the store).")]


def _inputs_and_period(store_dir: str, period: str, date: str | None,  # type: ignore[no-untyped-def]
                       config_path: Path | None = None):
    from pipeline.reports.inputs import read_inputs
    from pipeline.reports.periods import PERIOD_KINDS
    from pipeline.reports.report import report_period
    from pipeline.store.location import is_uri

    if not is_uri(store_dir) and not Path(store_dir).is_dir():
        raise fail(f"{store_dir}: not a store directory (write one with `callqa run INPUT --out {store_dir}`)")
    if period not in PERIOD_KINDS:
        raise fail(f"--period: must be one of {', '.join(PERIOD_KINDS)}, got {period!r}")
    try:
        # an object store's endpoint and credentials may come from [store] storage_options
        inputs = read_inputs(store_dir, load_config_or_exit(config_path).store.storage_options)
    except CallqaError as exc:
        raise fail(exc) from None
    try:
        return inputs, report_period(inputs, period, date)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(f"{store_dir}: {exc}" if date is None else f"--date: {exc}") from None


def report(
    store_dir: StoreArg,
    out_html: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write; tables go to NAME_tables/.")],
    period: PeriodOption = "week",
    date: DateOption = None,
    review_url: Annotated[str, typer.Option(help="Review app base URL for call links.")] = DEFAULT_REVIEW_URL,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print a PDF with headless Chromium.")] = True,
    config_path: ConfigOption = None,
) -> None:
    """Write a QA report (日报/周报/月报) for one period: HTML with charts, CSV and Parquet tables, PDF.

    Example:  callqa report store/ --period week --date 2026-11-22 --out reports/2026-W47.html
    """
    from pipeline.reports.render import write_report
    from pipeline.reports.report import ReportSettings, build_report
    from pipeline.scoring.scorecard import load_scorecard

    config = load_config_or_exit(config_path)
    try:
        scorecard = load_scorecard(config.scoring.scorecard or None)
    except CallqaError as exc:
        raise fail(exc) from None
    grades = [g for g, _ in sorted(scorecard.grades.items(), key=lambda kv: -kv[1])]
    inputs, report_period = _inputs_and_period(store_dir, period, date, config_path)
    settings = ReportSettings.from_config(config, review_url=review_url, grades=grades)
    result = build_report(inputs, report_period, settings)
    try:
        files = write_report(result, out_html, store=str(store_dir), pdf=pdf)
    except CallqaError as exc:
        raise fail(exc) from None
    facts = result.facts
    rate = facts.get("pass_rate")
    out.print(f"{report_period.kind} {report_period.label}: {facts.get('calls', 0)} calls, pass rate "
              f"{'n/a' if rate is None else f'{rate:.1%}'}, {facts['redline_total']} red-line"
              + (f" ({facts['redline_unconfirmed_total']} unconfirmed, to review)"
                 if facts.get("redline_unconfirmed_total") else ""))
    out.print(f"report: {escape(str(files.html))}")
    out.print(f"tables: {escape(str(files.tables_dir))}/ (CSV and Parquet)")
    if pdf:
        out.print(f"pdf: {escape(str(files.pdf))}" if files.pdf else "pdf: skipped (no headless chromium found)")


def _parse_sizes(text: str | None) -> dict[str, int]:
    if not text:
        return {}
    sizes: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise fail(f"--sizes: expected STRATUM=N[,STRATUM=N...], got {part!r}")
        sizes[name.strip()] = int(value)
    return sizes


def sample(
    store_dir: StoreArg,
    design: Annotated[str, typer.Option("--design", "-d", help="random, stratified or targeted.")] = "random",
    size: Annotated[int | None, typer.Option(help="Total sample size (random, stratified).")] = None,
    fraction: Annotated[float | None, typer.Option(
        help="Share of the calls (random), of each stratum (stratified), of the non-targeted rest (targeted).")] = None,
    by: Annotated[str | None, typer.Option(help="Stratify by team, agent or score_band.")] = None,
    per_stratum: Annotated[int | None, typer.Option(help="The same size in every stratum.")] = None,
    sizes: Annotated[str | None, typer.Option(help="Size per stratum: 'T1=5,T2=3' (others get 0).")] = None,
    min_per_agent: Annotated[int, typer.Option(help="At least this many calls per agent (or all theirs).")] = 0,
    period: PeriodOption = "week",
    date: DateOption = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and store give the same sample.")] = 0,
    name: Annotated[str | None, typer.Option(help="Queue name (default DESIGN-PERIOD-seedN).")] = None,
    out_csv: Annotated[Path | None, typer.Option("--out", "-o", help="Queue CSV to write "
                                                 "(default STORE/_review/queues/NAME.csv).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing queue of that name.")] = False,
) -> None:
    """Draw a reproducible sample of one period's calls for human QA and write it as a review queue.

    Example:  callqa sample store/ --design stratified --by team --size 40 --min-per-agent 2 --seed 7
    """
    from pipeline.reports.sampling import QUEUE_DIR, SamplingPlan, build_sample, write_queue

    try:
        plan = SamplingPlan(design=design, size=size, fraction=fraction, by=by,  # type: ignore[arg-type]
                            per_stratum=per_stratum, stratum_sizes=_parse_sizes(sizes),
                            min_per_agent=min_per_agent, seed=seed)
    except ValueError as exc:
        raise fail(f"callqa sample: {exc}") from None
    if out_csv is None:
        local_store_dir(store_dir, "the review queues live in the store's review folder (give --out FILE)")
    inputs, sample_period = _inputs_and_period(store_dir, period, date)
    queue_name = name or f"{design}{'-' + by if by else ''}-{sample_period.label}-seed{seed}"
    target = out_csv or Path(store_dir) / QUEUE_DIR / f"{queue_name}.csv"
    try:
        drawn = build_sample(inputs, sample_period, plan, queue_name, store=str(store_dir))
        write_queue(drawn, target, overwrite=force)
    except CallqaError as exc:
        raise fail(exc) from None
    table = Table(title=f"{escape(queue_name)}: {drawn.queue.num_rows} of {drawn.design['population']} calls")
    for column in ("stratum", "population", "sample", "inclusion probability"):
        table.add_column(column, justify="left" if column == "stratum" else "right")
    for row in drawn.strata.to_pylist():
        table.add_row(escape(row["stratum"]), str(row["population"]), str(row["sample"]),
                      f"{row['inclusion_probability']:.3f}")
    out.print(table)
    out.print(f"queue: {escape(str(target))}")


def agreement(
    store_dir: StoreArg,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the tables as CSV here.")] = None,
) -> None:
    """Reviewer agreement (Cohen's κ, Krippendorff's α), reviewers vs scorecard/classifier, rule precision.

    Example:  callqa agreement store/ --out reports/agreement/
    """
    from pipeline.reports.agreement import compute_agreement
    from pipeline.reports.csv_safe import write_csv
    from pipeline.reports.inputs import read_inputs
    from pipeline.review.verdicts import rule_precision

    root = local_store_dir(store_dir, "reviewer agreement comes from the review database beside a local store")
    if not root.is_dir():
        raise fail(f"{store_dir}: not a store directory")
    try:
        inputs = read_inputs(root)
    except CallqaError as exc:
        raise fail(exc) from None
    result = compute_agreement(inputs, rule_precision=rule_precision(root))
    if not inputs.call_verdicts.num_rows and not inputs.hit_verdicts.num_rows:
        out.print(f"{escape(str(store_dir))}: no verdicts yet (review calls with `callqa review STORE`)")
    _print_table("Cohen's κ: reviewer pairs and reviewers vs the system",
                 ("kind", "reviewer_a", "reviewer_b", "items", "agreement", "kappa"),
                 [*result.pairs.to_pylist(), *result.system.to_pylist()])
    if result.alpha.num_rows:
        _print_table("Krippendorff's α (3+ reviewers)", ("kind", "reviewers", "units", "alpha"),
                     result.alpha.to_pylist())
    _print_table("Rule precision (confirmed share, Wilson 95%)",
                 ("rule_id", "reviewed", "confirmed", "rejected", "unsure", "share", "ci_low", "ci_high"),
                 result.rule_precision.to_pylist())
    if out_dir is not None:
        import pyarrow as pa

        out_dir.mkdir(parents=True, exist_ok=True)
        write_csv(pa.concat_tables([result.pairs, result.system]), out_dir / "agreement_pairs.csv")
        write_csv(result.alpha, out_dir / "agreement_alpha.csv")
        write_csv(result.rule_precision, out_dir / "rule_precision.csv")
        out.print(f"tables: {escape(str(out_dir))}/")


def _print_table(title: str, columns: tuple[str, ...], rows: list[dict]) -> None:  # type: ignore[type-arg]
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column not in ("kind", "reviewer_a", "reviewer_b", "rule_id")
                         else "left")
    for row in rows:
        table.add_row(*[escape(_show(row.get(c))) for c in columns])
    out.print(table)


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
