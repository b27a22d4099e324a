"""``callqa run``: every call of an input into a store, resumable, on any engine.

:func:`run_batch` plans the calls (:mod:`pipeline.inputs`), skips those already
done for the same audio, configuration, analysis version and speech model,
hands the rest to an engine (:class:`pipeline.engines.local.LocalEngine` by
default) that runs :func:`pipeline.process.process_job` on each, and commits the
outcomes to the store in chunks (:meth:`pipeline.store.Store.commit`). A killed
batch resumes where it stopped: committed calls are skipped by the next run.
Calls already done whose stored scores came from another classifier than the
promoted one are re-scored from their stored rows (no transcription).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.analysis import ResourceSpec
from pipeline.audio.decode import file_sha256
from pipeline.config import Config
from pipeline.engines.local import LocalEngine
from pipeline.inputs import CallJob, discover_jobs, plan_input
from pipeline.process import JobOutcome
from pipeline.rescore import record_scoring, score_store, store_scoring
from pipeline.store.delta import Store
from pipeline.store.state import new_run_id, record_run, scoring_state
from pipeline.versions import Versions


class Engine(Protocol):
    """Runs :func:`pipeline.process.process_job` on every pending call (local processes, Ray...).

    ``spec`` says how workers load their resources; ``versions`` is what the
    rows record (failed calls included).
    """

    def outcomes(self, pending: Sequence[tuple[CallJob, str]], spec: ResourceSpec,
                 versions: Versions) -> Iterator[JobOutcome]: ...


@dataclass(frozen=True)
class RunOptions:
    """How a batch runs (from the CLI flags)."""

    force: bool = False
    workers: int = 1
    #: Run calls in worker processes even with one worker (a crash costs one call).
    isolate: bool = True


@dataclass
class RunSummary:
    """Totals of one ``callqa run``."""

    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    failed_before: int = 0
    #: Calls already done whose stored analysis used other rules: ``callqa rescore`` updates them.
    skipped_other_rules: int = 0
    #: Calls already done re-scored with the promoted classifier (no transcription).
    rescored: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    store: str = ""
    versions: Versions | None = None
    scorecard: str = ""
    classifier: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def real_time_factor(self) -> float:
        """Wall time per second of audio processed (lower is faster)."""
        return self.wall_s / self.audio_s if self.audio_s else 0.0


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback after each call."""

    done: int
    failed: int
    total: int
    audio_s: float
    call_id: str


def plan_jobs(input_path: str | Path, config: Config) -> list[CallJob]:
    """Discover the calls of INPUT (file, directory or manifest)."""
    return discover_jobs(input_path, config.input.extensions)


def _hash_or_stat(path: str) -> str:
    """The resume key's content part: the file hash, or a marker if unreadable."""
    try:
        return file_sha256(path)
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"


def _resume_key(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["audio_sha256"], row["config_hash"], row["analysis_version"], row["asr_model"])


def run_batch(
    input_path: str | Path,
    store_root: str | Path,
    config: Config,
    options: RunOptions = RunOptions(),
    progress: Callable[[Progress], None] | None = None,
    resources: ResourceSpec | None = None,
    engine: Engine | None = None,
) -> RunSummary:
    """Process every call of INPUT into the store at ``store_root``.

    Args:
        input_path: an audio file, a directory or a manifest.
        store_root: the store, a directory or an object-store URI (created when absent).
        config: the configuration.
        options: force, workers, isolation.
        progress: told after each call.
        resources: what workers load (default: from ``config``); tests pass a fake transcriber here.
        engine: where calls run (default: :class:`LocalEngine` with ``options.workers``).

    Returns:
        The run's totals; ``failed`` counts calls recorded as failed by this run.

    Raises:
        ManifestError: INPUT is missing or its manifest is malformed.
        ModelError, LexiconError, ConfigError: a model, rule set or scorecard cannot be used.
        StoreError: the store cannot be written (e.g. the disk is full);
            everything committed before stays.
    """
    started = time.perf_counter()
    plan = plan_input(input_path, config.input.extensions)
    jobs = list(plan.jobs)
    store = Store(store_root, create=True, storage_options=config.store.storage_options)
    spec = resources if resources is not None else ResourceSpec(config)
    versions = spec.versions()
    scoring = store_scoring(store, config)
    spec = spec.with_scoring(scoring.scorecard, scoring.classifier)
    stored = {} if options.force else {r["call_id"]: r for r in store.read(
        "calls", columns=["audio_sha256", "status", "config_hash", "analysis_version", "asr_model",
                          "rules_version", "redline_model"]).to_pylist()}
    summary = RunSummary(planned=len(jobs), store=store.name, versions=versions,
                         scorecard=scoring.scorecard.version,
                         classifier=scoring.classifier.version if scoring.classifier else "none promoted")
    summary.notes.extend(plan.notes())  # what directory mode skipped, and why
    if scoring.config_differs:
        summary.notes.append(f"the store is scored with scorecard {scoring.scorecard.version} (set by `callqa "
                             f"score`); [scoring] scorecard ({scoring.config_differs}) applies only to new stores: "
                             f"`callqa score {store_root} --scorecard FILE` changes it")
    pending: list[tuple[CallJob, str]] = []
    planned_ids: set[str] = set()
    for job in jobs:
        sha = _hash_or_stat(job.path)
        old = stored.get(job.call_id)
        key = (sha, versions.config_hash, versions.analysis_version, versions.asr_model)
        if old is None or _resume_key(old) != key or job.call_id in planned_ids:
            pending.append((job, sha))
            planned_ids.add(job.call_id)
        elif old["status"] == "failed":
            summary.failed_before += 1
        elif (old["rules_version"], old["redline_model"]) != (versions.rules_version, versions.redline_model):
            summary.skipped_other_rules += 1
    summary.skipped = len(jobs) - len(pending)
    run_id = new_run_id()
    record_run(store, run_id, [{"call_id": j.call_id, "path": j.path} for j in jobs], versions.columns())
    if scoring_state(store) is None:
        record_scoring(store, scoring)
    engine = engine or LocalEngine(options.workers, options.isolate, config.run.call_timeout_s)
    _run_pending(store, pending, engine, spec, versions, config, summary, progress, run_id)
    if store.remote and (summary.done or summary.failed):
        summary.notes.append("an object store has no lock for merging small files, so this run left them: "
                             f"`callqa compact {store.name} --exclusive` merges them (see docs/store.md)")
    if scoring.classifier is not None:
        update, _rows = score_store(store, spec.load_for_scoring(),
                                    only_if=lambda row: row["classifier_model"] != scoring.classifier.version)
        summary.rescored = update.calls
        record_scoring(store, scoring)
    summary.wall_s = time.perf_counter() - started
    return summary


def _run_pending(store: Store, pending: list[tuple[CallJob, str]], engine: Engine, spec: ResourceSpec,
                 versions: Versions, config: Config, summary: RunSummary,
                 progress: Callable[[Progress], None] | None, run_id: str) -> None:
    """Process the pending calls and commit them in chunks; finished calls are never lost."""
    buffer: list[JobOutcome] = []
    last_commit = time.monotonic()
    dates: set[str] = set()

    def flush() -> None:
        nonlocal last_commit
        if buffer:
            # Cleared first: if the commit fails (disk full) those calls stay
            # pending and are redone by the next run; nothing half-written shows.
            chunk = list(buffer)
            buffer.clear()
            store.commit([o.result for o in chunk], kind="run", metadata={"run_id": run_id})
            dates.update(o.result.call["call_date"] for o in chunk)
        last_commit = time.monotonic()

    try:
        for outcome in engine.outcomes(pending, spec, versions):
            if any(o.call_id == outcome.call_id for o in buffer):
                flush()  # a call id listed twice: commit the first before the second replaces it
            buffer.append(outcome)
            summary.audio_s += outcome.audio_s
            if outcome.ok:
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures[outcome.error_type] = summary.failures.get(outcome.error_type, 0) + 1
            if (len(buffer) >= config.run.commit_every_calls
                    or time.monotonic() - last_commit >= config.run.commit_every_s):
                flush()
            if progress:
                progress(Progress(summary.done, summary.failed, len(pending), summary.audio_s, outcome.call_id))
    finally:
        flush()  # finished calls are never lost, even on Ctrl-C
    if dates:  # each commit wrote small files: merge them, so reading a day opens a few large ones
        store.optimize(dates)


__all__ = ["Engine", "Progress", "RunOptions", "RunSummary", "plan_jobs", "run_batch"]
