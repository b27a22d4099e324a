"""The ``callqa`` command line: a thin layer over the library.

Exit codes: 0 all fine; 1 some calls failed (summary printed) or the store
could not be written; 2 usage or configuration error. Every error is one line
on stderr naming the file and the reason.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.cli.common import (
    EXIT_FAILED,
    ConfigOption,
    StoreArg,
    err,
    exit_code_for,
    fail,
    load_config_or_exit,
    open_store,
    out,
    safe,
    shown_path,
)
from pipeline.errors import CallqaError

app = typer.Typer(
    name="callqa",
    help="Speech analytics for contact-centre QA: transcribe, check and score every recorded call.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def run(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Audio file, directory, or manifest (.csv/.parquet).")
    ],
    out_dir: Annotated[str, typer.Option(
        "--out", "-o", help="Store directory, or object-store URI (s3://bucket/prefix); created if needed.")],
    config_path: ConfigOption = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: [run] workers).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo calls already done for this config and model.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    engine: Annotated[str, typer.Option(help="local (worker processes on this machine) or ray (a Ray cluster).")]
    = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to use: auto, ray://HEAD:10001 (default: start one on this machine).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs each Ray transcription worker asks for.")] = 0.0,
) -> None:
    """Process every call of INPUT into the store at --out; resumes where a previous run stopped.

    Each call is decoded, its speech found and transcribed, checked against the
    rule sets and the timing detectors, scored, and committed to the store. A
    bad file becomes one error row and the batch goes on; a killed run started
    again skips the calls already committed.

    With --engine ray the calls run on a Ray cluster (transcription in workers
    that load the model once, analysis in CPU workers); results go to the same
    store with the same transactions.

    The store can be on an object store (--out s3://bucket/prefix, credentials
    and endpoint from the AWS_* environment or [store] storage_options).

    Example:  callqa run recordings/2026-11-22/ --out store/ --workers 2
    """
    from pipeline.batch import Engine, RunOptions, run_batch

    config = load_config_or_exit(config_path)
    if workers is not None and workers < 1:
        raise fail(f"--workers must be at least 1, got {workers}")
    if engine not in ("local", "ray"):
        raise fail(f"--engine must be local or ray, got {engine!r}")
    if engine == "local" and (address is not None or gpus_per_worker):
        raise fail("--address and --gpus-per-worker apply to --engine ray")
    options = RunOptions(force=force, workers=workers or config.run.workers)
    chosen: Engine | None = None
    if engine == "ray":
        from pipeline.engines.ray_engine import RayEngine

        chosen = RayEngine(address, transcribers=workers, gpus_per_worker=gpus_per_worker,
                           call_timeout_s=config.run.call_timeout_s)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed · {task.fields[hours]:.2f} h audio"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                  disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("calls", total=None, failed=0, hours=0.0)

        def on_progress(p):  # type: ignore[no-untyped-def]
            bar.update(task, completed=p.done + p.failed, total=p.total, failed=p.failed, hours=p.audio_s / 3600)

        try:
            summary = run_batch(input_path, out_dir, config, options, progress=on_progress, engine=chosen)
        except CallqaError as exc:
            raise fail(exc, exit_code_for(exc)) from None
    out.print(
        f"{summary.planned} calls: {summary.done} done, {summary.failed} failed, {summary.skipped} already done · "
        f"{summary.audio_s / 3600:.3f} h audio in {summary.wall_s:.1f} s "
        f"(real-time factor {summary.real_time_factor:.3f})"
    )
    if summary.skipped_other_rules:
        out.print(f"  {summary.skipped_other_rules} of the calls already done were analysed with other rules: "
                  f"`callqa rescore {safe(out_dir)}` applies the current ones without transcribing again")
    if summary.rescored:
        out.print(f"  {summary.rescored} calls already done were re-scored with classifier {safe(summary.classifier)}"
                  " (from their stored rows, no transcription)")
    if summary.failed_before:
        out.print(f"  {summary.failed_before} of the calls already done had failed in an earlier run (--force retries)")
    for kind, count in sorted(summary.failures.items()):
        out.print(f"  failed: {count} × {safe(kind)} (see `callqa status {safe(out_dir)}`)")
    for note in summary.notes:
        out.print(f"  note: {safe(note)}")
    if summary.versions is not None:
        v = summary.versions
        out.print(f"versions: rules {safe(v.rules_version)} · timing {v.timing_version} · red-line model "
                  f"{safe(v.redline_model)} · speech model {safe(v.asr_model)} · config {v.config_hash}")
    out.print(f"scoring: scorecard {safe(summary.scorecard)} · classifier {safe(summary.classifier)}")
    out.print(f"results: {safe(shown_path(summary.store))}")
    if summary.failed or summary.failed_before:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(
    store_dir: StoreArg,
    errors: Annotated[int, typer.Option(help="Show up to this many failed calls with their reason.")] = 20,
    config_path: ConfigOption = None,
) -> None:
    """Summarise a store: calls done, failed (by reason), pending, by date.

    Example:  callqa status store/
    """
    from pipeline.store.state import last_run

    store = open_store(store_dir, load_config_or_exit(config_path))
    calls = store.read("calls", columns=["status", "error_type", "error_message", "path", "duration_s"]).to_pylist()
    by_date: dict[str, Counter[str]] = {}
    for row in calls:
        by_date.setdefault(row["call_date"], Counter())[row["status"]] += 1
    table = Table(title=f"callqa store {safe(store_dir)}")
    for column in ("date", "ok", "failed"):
        table.add_column(column, justify="right" if column != "date" else "left")
    for date, counts in sorted(by_date.items()):
        table.add_row(safe(date), str(counts["ok"]), str(counts["failed"]))
    out.print(table)
    done_ids = {row["call_id"] for row in calls}
    last = last_run(store)
    pending = [p for p in (last or {}).get("planned", []) if p["call_id"] not in done_ids]
    ok = sum(1 for r in calls if r["status"] == "ok")
    failed = [r for r in calls if r["status"] == "failed"]
    hours = sum(r["duration_s"] or 0 for r in calls) / 3600
    out.print(f"done: {ok} · failed: {len(failed)} · pending (last run): {len(pending)} · audio: {hours:.3f} h")
    for kind, count in Counter(r["error_type"] for r in failed).most_common():
        out.print(f"  {safe(kind)}: {count}")
    for row in failed[:errors]:
        out.print(f"  - {safe(row['path'])}: {safe(row['error_message'])}")


def _register_commands() -> None:
    """Attach the commands that live in their own modules (each a thin layer over a library function)."""
    from pipeline.cli.asr_cmd import model_app, transcribe
    from pipeline.cli.models_cmd import evaluate, models_app, score, train
    from pipeline.cli.reports_cmd import agreement, report, sample
    from pipeline.cli.review_cmd import review, users_app, verdicts_app
    from pipeline.cli.rules_cmd import redact, rescore, rules_app
    from pipeline.cli.show_cmd import show
    from pipeline.cli.store_cmd import compact, store_app

    app.command("transcribe")(transcribe)
    app.command("show")(show)
    app.command("rescore")(rescore)
    app.command("score")(score)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("redact")(redact)
    app.command("compact")(compact)
    app.command("report")(report)
    app.command("sample")(sample)
    app.command("agreement")(agreement)
    app.add_typer(rules_app, name="rules")
    app.add_typer(models_app, name="models")
    app.add_typer(model_app, name="model")
    app.add_typer(store_app, name="store")
    app.command("review")(review)
    app.add_typer(users_app, name="users")
    app.add_typer(verdicts_app, name="verdicts")


_register_commands()


def main() -> None:
    """Entry point of the ``callqa`` console script."""
    try:
        app(prog_name="callqa")
    except CallqaError as exc:  # a library error no command caught: still one line
        err.print(f"callqa: error: {safe(exc)}")
        sys.exit(exit_code_for(exc))


if __name__ == "__main__":
    main()
