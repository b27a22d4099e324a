"""``callqa train | evaluate | models list/compare/promote | score``: classifiers and re-scoring.

Each command is a thin layer over a library function
(:func:`pipeline.scoring.train.train`, :func:`pipeline.scoring.evaluate.evaluate`,
:func:`~pipeline.scoring.evaluate.list_models`, :func:`~pipeline.scoring.evaluate.compare_models`,
:func:`~pipeline.scoring.evaluate.promote`, :func:`pipeline.scoring.scorecard.rescore_store`).
Register with::

    from pipeline.cli.models_cmd import evaluate, models_app, score, train
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("score")(score)
    app.add_typer(models_app, name="models")
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli.common import ConfigOption, fail, load_config_or_exit, out
from pipeline.errors import CallqaError

models_app = typer.Typer(help="Trained classifiers: list, compare, promote.", no_args_is_help=True)

StoreArg = Annotated[Path, typer.Argument(metavar="STORE", help="Store directory written by callqa run.")]
LabelsOption = Annotated[Path, typer.Option("--labels", "-l", help="CSV/Parquet with call_id,label (or verdict).")]
DatesOption = Annotated[str | None, typer.Option("--dates", help="Only these call dates, comma-separated.")]
ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Models directory (default: [classifier] models_dir).")
]


def _features(store: Path, dates: str | None) -> Any:
    from pipeline.scoring.features import load

    if not store.exists():
        raise fail(f"{store}: store not found")
    table = load(store, dates=dates.split(",") if dates else None)
    if table.num_rows == 0:
        raise fail(f"{store}: no feature rows (run callqa run first)", 1)
    return table


def _metrics_table(title: str, columns: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    keys = list(dict.fromkeys(k for metrics in columns.values() for k in metrics))
    for key in keys:
        table.add_row(key, *[str(metrics.get(key, "")) for metrics in columns.values()])
    return table


def train(
    store: StoreArg,
    labels: LabelsOption,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory, e.g. models/NAME.")],
    kind: Annotated[str, typer.Option(help="hgb (HistGradientBoosting) or logreg (baseline).")] = "hgb",
    target_precision: Annotated[float | None, typer.Option(help="Pick the threshold for this precision.")] = None,
    target_recall: Annotated[float | None, typer.Option(help="Pick the threshold for this recall.")] = None,
    ordinal: Annotated[bool, typer.Option("--ordinal", help="Labels are ordered grades.")] = False,
    grade_order: Annotated[str | None, typer.Option(help="Grades best first, e.g. A,B,C.")] = None,
    test_size: Annotated[float, typer.Option(help="Share of calls held out.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dates: DatesOption = None,
) -> None:
    """Train a calibrated classifier on STORE's feature rows and LABELS; writes the model and its card.

    Example:  callqa train store/ --labels verdicts.csv --out models/fail_v1 --target-precision 0.8
    """
    from pipeline.scoring.classifier import load_labels, save_model
    from pipeline.scoring.train import train as train_model

    if target_precision is not None and target_recall is not None:
        raise fail("give --target-precision or --target-recall, not both")
    try:
        features = _features(store, dates)
        model, report = train_model(
            features, load_labels(labels), out_dir.name, kind=kind, target_precision=target_precision,
            target_recall=target_recall, ordinal=ordinal,
            grade_order=grade_order.split(",") if grade_order else None, test_size=test_size, seed=seed)
        path = save_model(model, out_dir)
    except CallqaError as exc:
        raise fail(exc) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    out.print(_metrics_table(f"{model.version} ({model.card['target']})",
                             {"cv": report["cv"]["metrics"], "held out": report["held_out"]["metrics"]}))
    out.print(f"saved {path} (model card: {path / 'model_card.md'})")


def evaluate(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory (models/NAME).")],
    store: StoreArg,
    labels: LabelsOption,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Write plots and evaluation.json here.")] = None,
    cv: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    dates: DatesOption = None,
) -> None:
    """Evaluate MODEL on STORE's labelled calls: held-out metrics, cross-validation, per-threshold table, plots.

    Example:  callqa evaluate models/fail_v1 store_dec/ --labels dec_verdicts.csv --out reports/fail_v1
    """
    from pipeline.scoring.classifier import load_labels, load_model
    from pipeline.scoring.evaluate import evaluate as evaluate_model

    try:
        report = evaluate_model(load_model(model_dir), _features(store, dates), load_labels(labels),
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
    out.print(f"plots: {', '.join(report.get('plots', []))}")


@models_app.command("list")
def list_command(models_dir: ModelsDirOption = None, config: ConfigOption = None) -> None:
    """List trained models with their held-out metrics; * marks the promoted one."""
    from pipeline.scoring.evaluate import list_models

    root = models_dir or Path(load_config_or_exit(config).classifier.models_dir)
    models = list_models(root)
    if not models:
        out.print(f"no models in {root} (callqa train ...); the pipeline uses the scorecard alone")
        return
    table = Table(title=str(root))
    for name in ("", "name", "kind", "target", "created", "calls", "held-out metrics"):
        table.add_column(name)
    for m in models:
        metrics = ", ".join(f"{k} {v}" for k, v in m["held_out"].items() if k in
                            ("precision", "recall", "roc_auc", "accuracy", "mean_abs_grade_error"))
        table.add_row("*" if m["promoted"] else "", m["name"], m["kind"], m["target"], m["created_at"],
                      str(m["n_calls"]), metrics)
    out.print(table)


@models_app.command("compare")
def compare_command(
    first: Annotated[Path, typer.Argument(metavar="MODEL_A")],
    second: Annotated[Path, typer.Argument(metavar="MODEL_B")],
    store: StoreArg,
    labels: LabelsOption,
    dates: DatesOption = None,
) -> None:
    """Two models' metrics side by side on the same labelled calls."""
    from pipeline.scoring.classifier import load_labels, load_model
    from pipeline.scoring.evaluate import compare_models

    try:
        compared = compare_models([load_model(first), load_model(second)], _features(store, dates),
                                  load_labels(labels))
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(_metrics_table("same data", compared))


@models_app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="Model directory name under the models directory.")],
    models_dir: ModelsDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Make NAME the model the pipeline applies to every call."""
    from pipeline.scoring.evaluate import promote

    root = models_dir or Path(load_config_or_exit(config).classifier.models_dir)
    try:
        promote(root, name)
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(f"promoted {name} ({root / 'PROMOTED'})")


def score(
    store: StoreArg,
    scorecard: Annotated[Path | None, typer.Option(help="Scorecard TOML (default: [scoring] scorecard).")] = None,
    config: ConfigOption = None,
) -> None:
    """Re-score STORE's feature rows and hits with a scorecard, without touching audio.

    Example:  callqa score store/ --scorecard my_scorecard.toml
    """
    from pipeline.scoring.scorecard import load_scorecard, rescore_store

    settings = load_config_or_exit(config)
    try:
        card = load_scorecard(scorecard or settings.scoring.scorecard or None, settings.scoring.pass_score)
        rows = rescore_store(store, card)
    except CallqaError as exc:
        raise fail(exc) from None
    if not rows:
        raise fail(f"{store}: no feature rows to score", 1)
    grades = Counter(r["grade"] for r in rows)
    passed = sum(bool(r["passed"]) for r in rows)
    out.print(f"scored {len(rows)} calls with scorecard {card.version}: {passed} passed, "
              f"{len(rows) - passed} failed; grades " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items())))
    redline = sum(bool(r["redline"]) for r in rows)
    if redline:
        out.print(f"[bold red]{redline} red-line call(s)[/]")


__all__ = ["evaluate", "models_app", "score", "train"]
