"""``callqa train | evaluate | models list/compare/promote | score``: classifiers and re-scoring.

Each command is a thin layer over a library function (:func:`pipeline.scoring.train.train`,
:func:`pipeline.scoring.evaluate.evaluate`, :mod:`pipeline.scoring.registry`,
:func:`pipeline.rescore.score_store`). Models live in ``[classifier] models_dir``,
by default the store's ``models/`` folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli.common import (
    EXIT_FAILED,
    ConfigOption,
    StoreArg,
    fail,
    load_config_or_exit,
    local_store_dir,
    open_store,
    out,
    safe,
)
from pipeline.errors import CallqaError

models_app = typer.Typer(help="Trained classifiers: list, compare, promote.", no_args_is_help=True,
                         rich_markup_mode=None)

LabelsOption = Annotated[Path | None, typer.Option(
    "--labels", "-l", help="CSV/Parquet with call_id,label (or verdict); default: the reviewers' verdicts in the "
    "store (callqa review).")]
DatesOption = Annotated[str | None, typer.Option("--dates", help="Only these call dates, comma-separated.")]
ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Models directory (default: [classifier] models_dir).")
]
StoreOption = Annotated[str | None, typer.Option("--store", help="The store whose models directory to use.")]


def _features(store: str, dates: str | None, config_path: Path | None = None) -> Any:
    table = open_store(store, load_config_or_exit(config_path)).read("features",
                                                                    dates=dates.split(",") if dates else None)
    if table.num_rows == 0:
        raise fail(f"{store}: no feature rows (run callqa run first)", EXIT_FAILED)
    return table


def _labels(store: str, labels: Path | None) -> Any:
    from pipeline.scoring.classifier import load_labels

    if labels is not None:
        return load_labels(labels)
    from pipeline.review.verdicts import call_labels

    table = call_labels(local_store_dir(store, "the reviewers' verdicts live in the review database beside a "
                                        "local store (give --labels FILE)"))
    if table.num_rows == 0:
        raise fail(f"{store}: no reviewers' verdicts yet (callqa review {store}) and no --labels file", EXIT_FAILED)
    return table.select(["call_id", "label"]).to_pandas()


def _models_dir(models_dir: Path | None, store: str | None, config_path: Path | None) -> Path:
    if models_dir is not None:
        return models_dir
    try:
        return load_config_or_exit(config_path).models_dir(store)
    except CallqaError as exc:
        raise fail(exc) from None


def _metrics_table(title: str, columns: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=safe(title))
    table.add_column("metric")
    for name in columns:
        table.add_column(safe(name), justify="right")
    keys = list(dict.fromkeys(k for metrics in columns.values() for k in metrics))
    for key in keys:
        table.add_row(key, *[str(metrics.get(key, "")) for metrics in columns.values()])
    return table


def train(
    store: StoreArg,
    labels: LabelsOption = None,
    name: Annotated[str | None, typer.Option(help="Model name: saved as MODELS_DIR/NAME.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Model directory (instead of --name).")] = None,
    kind: Annotated[str, typer.Option(help="hgb (HistGradientBoosting) or logreg (baseline).")] = "hgb",
    target_precision: Annotated[float | None, typer.Option(help="Pick the threshold for this precision.")] = None,
    target_recall: Annotated[float | None, typer.Option(help="Pick the threshold for this recall.")] = None,
    ordinal: Annotated[bool, typer.Option("--ordinal", help="Labels are ordered grades.")] = False,
    grade_order: Annotated[str | None, typer.Option(help="Grades best first, e.g. A,B,C.")] = None,
    test_size: Annotated[float, typer.Option(help="Share of calls held out.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dates: DatesOption = None,
    models_dir: ModelsDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Train a calibrated classifier on STORE's feature rows and reviewers' verdicts; writes the model and its card.

    Example:  callqa train store/ --name fail-v1 --target-precision 0.8
    """
    from pipeline.scoring.classifier import save_model
    from pipeline.scoring.train import train as train_model

    if target_precision is not None and target_recall is not None:
        raise fail("give --target-precision or --target-recall, not both")
    if (name is None) == (out_dir is None):
        raise fail("give --name NAME (saved in the models directory) or --out DIR")
    target = out_dir or _models_dir(models_dir, store, config) / str(name)
    try:
        features = _features(store, dates, config)
        model, report = train_model(
            features, _labels(store, labels), target.name, kind=kind, target_precision=target_precision,
            target_recall=target_recall, ordinal=ordinal,
            grade_order=grade_order.split(",") if grade_order else None, test_size=test_size, seed=seed)
        path = save_model(model, target)
    except CallqaError as exc:
        raise fail(exc) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    out.print(_metrics_table(f"{model.version} ({model.card['target']})",
                             {"cv": report["cv"]["metrics"], "held out": report["held_out"]["metrics"]}))
    for warning in report.get("warnings", []):
        out.print(f"[yellow]warning:[/] {safe(warning)}")
    out.print(f"saved {safe(path)} (model card: {safe(path / 'model_card.md')}); "
              f"`callqa models promote {safe(path.name)} --store {safe(store)}` makes `callqa run` apply it")


def evaluate(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory (models/NAME).")],
    store: StoreArg,
    labels: LabelsOption = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Write plots and evaluation.json here.")] = None,
    cv: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    dates: DatesOption = None,
) -> None:
    """Evaluate MODEL on STORE's labelled calls: held-out metrics, cross-validation, per-threshold table, plots.

    Example:  callqa evaluate store/models/fail-v1 store_dec/ --out reports/fail-v1
    """
    from pipeline.scoring.classifier import load_model
    from pipeline.scoring.evaluate import evaluate as evaluate_model

    try:
        report = evaluate_model(load_model(model_dir), _features(store, dates), _labels(store, labels),
                                out_dir=out_dir or model_dir / "evaluation", cv=cv)
    except CallqaError as exc:
        raise fail(exc) from None
    columns = {"held out": report["held_out"]["metrics"]}
    if "cv" in report:
        columns["cv"] = report["cv"]["metrics"]
    out.print(_metrics_table(report["model"], columns))
    out.print(f"confusion matrix {report['held_out']['confusion']}")
    thresholds = report["held_out"]["thresholds"]
    if thresholds:
        table = Table(title="per threshold (held out)")
        for key in thresholds[0]:
            table.add_column(key, justify="right")
        for row in thresholds:
            table.add_row(*[str(v) for v in row.values()])
        out.print(table)
    out.print(f"plots: {safe(', '.join(report.get('plots', [])))}")


@models_app.command("list")
def list_command(store: StoreOption = None, models_dir: ModelsDirOption = None, config: ConfigOption = None) -> None:
    """List trained models with their held-out metrics; * marks the promoted one.

    Example:  callqa models list --store store/
    """
    from pipeline.scoring.registry import list_models

    root = _models_dir(models_dir, store, config)
    models = list_models(root)
    if not models:
        out.print(f"no models in {safe(root)} (callqa train ...); the pipeline uses the scorecard alone")
        return
    table = Table(title=safe(root))
    for name in ("", "name", "kind", "target", "created", "calls", "held-out metrics"):
        table.add_column(name)
    for m in models:
        metrics = ", ".join(f"{k} {v}" for k, v in m["held_out"].items() if k in
                            ("precision", "recall", "roc_auc", "accuracy", "mean_abs_grade_error"))
        table.add_row("*" if m["promoted"] else "", safe(m["name"]), m["kind"], m["target"], m["created_at"],
                      str(m["n_calls"]), metrics)
    out.print(table)


@models_app.command("compare")
def compare_command(
    first: Annotated[Path, typer.Argument(metavar="MODEL_A")],
    second: Annotated[Path, typer.Argument(metavar="MODEL_B")],
    store: StoreArg,
    labels: LabelsOption = None,
    dates: DatesOption = None,
) -> None:
    """Two models' metrics side by side on the same labelled calls.

    Example:  callqa models compare store/models/fail-v1 store/models/fail-v2 store/
    """
    from pipeline.scoring.classifier import load_model
    from pipeline.scoring.registry import compare_models

    try:
        compared = compare_models([load_model(first), load_model(second)], _features(store, dates),
                                  _labels(store, labels))
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(_metrics_table("same data", compared))


@models_app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="Model directory name under the models directory.")],
    store: StoreOption = None,
    models_dir: ModelsDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Make NAME the model the pipeline applies to every call.

    `callqa run` then re-scores the calls already done with it (from their
    stored rows, no transcription); `callqa score STORE` does the same at once.

    Example:  callqa models promote fail-v1 --store store/
    """
    from pipeline.scoring.registry import promote

    root = _models_dir(models_dir, store, config)
    try:
        promote(root, name)
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(f"promoted {safe(name)} ({safe(root / 'PROMOTED')}); calls already done are re-scored by the next "
              f"`callqa run`, or now by `callqa score {safe(store or 'STORE')}`")


def score(
    store: StoreArg,
    scorecard: Annotated[Path | None, typer.Option(
        help="Score with this scorecard from now on (recorded in the store); default: the store's own.")] = None,
    config: ConfigOption = None,
) -> None:
    """Re-score STORE's calls with its scorecard and promoted classifier, without touching audio.

    With --scorecard the store is scored with that scorecard from now on:
    `callqa run` and `callqa rescore` use it too.

    Example:  callqa score store/ --scorecard my_scorecard.toml
    """
    from pipeline.analysis import Resources
    from pipeline.rescore import record_scoring, require_calls, score_store, store_scoring

    settings = load_config_or_exit(config)
    target = open_store(store, settings)
    try:
        require_calls(target)
        scoring = store_scoring(target, settings, str(scorecard) if scorecard is not None else None)
        resources = Resources.load(settings, transcriber=None, scorecard=scoring.scorecard,
                                   classifier=scoring.classifier, text=False)
        update, rows = score_store(target, resources)
        record_scoring(target, scoring)
    except CallqaError as exc:
        raise fail(exc) from None
    outcomes = Counter(r["outcome"] for r in rows)
    grades = Counter(r["grade"] for r in rows if r["grade"] is not None)
    out.print(f"scored {update.calls} calls with scorecard {safe(scoring.scorecard.version)}"
              + (f" and classifier {safe(scoring.classifier.version)}" if scoring.classifier else "") + ": "
              + ", ".join(f"{outcomes[o]} {o.replace('_', ' ')}" for o in ("pass", "fail", "needs_review",
                                                                           "needs_listening") if outcomes[o])
              + "; grades " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items())))
    redline = sum(bool(r["redline"]) for r in rows)
    if redline:
        out.print(f"[bold red]{redline} red-line call(s)[/]")


__all__ = ["evaluate", "models_app", "score", "train"]
