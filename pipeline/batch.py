"""The batch runner: the only module that knows the order of the stages.

For each call: ingest → audio facts → VAD → transcription → text detectors →
timing detectors → features → scoring. Heavy objects are built once per
worker (:func:`build_resources`). A call that fails is recorded in
``errors/`` (and as a ``failed`` row in ``calls/``) and the batch goes on.
Finished calls are committed to the store in chunks (see
:mod:`pipeline.store`), so a killed batch resumes where it stopped: calls
already done for the same audio hash, config hash and model id are skipped.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pipeline
from pipeline.analysis import Analysers, classifier_note, planned_rules_version
from pipeline.asr.model import resolve_model
from pipeline.config import Config
from pipeline.audio.loudness import loudness_tracks, refine_segments, with_segments
from pipeline.errors import CallqaError, UnsupportedAudioError
from pipeline.audio.decode import file_sha256, load_call, measure_channel
from pipeline.inputs import CallJob, discover_jobs
from pipeline.records import Call, CallEvidence, SpeechSegment
from pipeline.text.pii import locate_pii, mask_utterance
from pipeline.store import (
    CALL_KEY,
    METADATA_COLUMNS,
    Store,
    common_columns,
    hits_rows,
    segments_rows,
    split_rules_version,
    utterances_rows,
)
from pipeline.asr.transcribe import Transcriber, WhisperTranscriber, transcribe_call
from pipeline.audio.vad import detect_speech

NO_MODEL = "none"
#: Tables a call's outcome redoes as a whole (rows or not): see ``Store.commit(covers=...)``.
_DERIVED_TABLES = ("calls", "segments", "utterances", "features", "errors")


@dataclass(frozen=True)
class Resources:
    """Everything heavy a worker needs, built once and passed to every call."""

    config: Config
    analysers: Analysers
    model_id: str = NO_MODEL
    transcriber: Transcriber | None = None

    @property
    def rules_version(self) -> str:
        return self.analysers.rules_version


@dataclass(frozen=True)
class RunOptions:
    """How a batch runs (from the CLI flags)."""

    force: bool = False
    workers: int = 1
    transcribe: bool = True


@dataclass
class CallOutcome:
    """What processing one call produced: rows per table, ready to commit."""

    call_id: str
    ok: bool
    audio_s: float
    rows: dict[str, list[dict[str, Any]]]
    error: str = ""
    #: table -> keys this outcome redid (see ``Store.commit``).
    covers: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


@dataclass
class RunSummary:
    """Totals of one ``callqa run``."""

    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    failed_before: int = 0
    #: Skipped (already transcribed) calls whose stored analysis used other rules: ``callqa rescore`` updates them.
    skipped_other_rules: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    store: str = ""
    rules_version: str = ""
    #: Which classifier scored the calls ("... scorecard only" when none is promoted).
    classifier: str = ""

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


def build_resources(config: Config, options: RunOptions) -> Resources:
    """Load the models and rule sets once for this worker.

    Raises:
        ModelError: the speech model is missing, corrupt or cannot be loaded.
    """
    transcriber = WhisperTranscriber.from_config(config.asr) if config.asr.enabled else None
    return Resources(
        config=config,
        analysers=Analysers.load(config),
        model_id=transcriber.model_id if transcriber else NO_MODEL,
        transcriber=transcriber,
    )


def resolve_versions(config: Config, options: RunOptions) -> tuple[str, str]:
    """(model_id, rules_version) of this run, without loading any model into memory.

    Raises:
        ModelError: the configured speech model cannot be found or verified.
        LexiconError: a rule set is malformed.
    """
    model_id = resolve_model(config.asr.model).model_id if config.asr.enabled else NO_MODEL
    return model_id, planned_rules_version(config)


# -- one call ------------------------------------------------------------------
def _call_row(job: CallJob, call: Call | None, common: dict[str, Any], sha: str) -> dict[str, Any]:
    metadata = dict(job.metadata)
    row: dict[str, Any] = {
        **common, "call_date": job.call_date, "path": job.path, "audio_sha256": sha,
        "status": "ok", "callqa_version": pipeline.__version__,
        **{name: metadata.pop(name, None) for name in METADATA_COLUMNS},
        "metadata": metadata or None,
    }
    if call is not None:
        row.update(
            duration_s=call.duration_s, source_sample_rate_hz=call.source_sample_rate_hz,
            source_channels=call.source_channels, codec=call.codec, container=call.container,
            roles=[c.role for c in call.channels],
        )
    return row


def _channel_facts(call: Call, segments: Sequence[SpeechSegment], clip_level: float) -> list[dict[str, Any]]:
    facts = []
    for channel in call.channels:
        measured = measure_channel(channel, clip_level)
        speech_s = sum(s.duration_s for s in segments if s.role == channel.role)
        facts.append({"role": channel.role, "loudness_dbfs": measured.loudness_dbfs,
                      "peak_dbfs": measured.peak_dbfs, "clipping_ratio": measured.clipping_ratio,
                      "speech_s": speech_s})
    return facts


def _covers(key: tuple[str, ...], rules_version: str) -> dict[str, list[tuple[str, ...]]]:
    """Every table's keys one call's outcome replaces (hits: one key per detector version)."""
    covers: dict[str, list[tuple[str, ...]]] = {table: [key] for table in _DERIVED_TABLES}
    covers["hits"] = [(*key, version) for version in split_rules_version(rules_version)]
    return covers


def process_call(job: CallJob, sha: str, resources: Resources) -> CallOutcome:
    """Run every stage on one call. Never raises for a bad call: returns a failed outcome."""
    config = resources.config
    analysers = resources.analysers
    common = common_columns(job.call_id, config.config_hash, resources.model_id, resources.rules_version)
    covers = _covers(tuple(common[k] for k in CALL_KEY), resources.rules_version)
    started = time.perf_counter()
    stage = "ingest"
    call: Call | None = None
    try:
        call = load_call(job.path, config, call_id=job.call_id, metadata=job.metadata,
                         channel_roles=job.channel_roles, audio_sha256=sha)
        stage = "vad"
        segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
        # Repair late VAD onsets from frame loudness (pipeline/audio/loudness.py),
        # then measure loudness on the segments every later stage sees.
        tracks = loudness_tracks(call, segments)
        segments = sorted(refine_segments(segments, tracks), key=lambda s: (s.start_s, s.role))
        tracks = with_segments(tracks, segments)
        stage = "transcribe"
        utterances = (transcribe_call(call, segments, resources.transcriber, config.asr)
                      if resources.transcriber is not None else [])
        stage = "detect"
        evidence = CallEvidence(call.call_id, call.duration_s, tuple(c.role for c in call.channels),
                                tuple(segments), tuple(utterances), job.metadata)
        timing = analysers.timing(evidence, tracks)
        hits = sorted([*analysers.text_hits(evidence), *timing.hits], key=lambda h: (h.start_s, h.rule_id))
        pii = [locate_pii(u, config.pii.chinese_digits) for u in utterances] if config.pii.detect else None
        if config.pii.detect and config.pii.mask:  # after detection: stored text never holds the raw PII
            utterances = [mask_utterance(u, config.pii) for u in utterances]
        call_row = _call_row(job, call, common, sha)
        call_row["channels"] = _channel_facts(call, segments, config.vad.clip_level)
        stage = "score"
        versions = {k: common[k] for k in ("config_hash", "model_id", "rules_version")}
        features = analysers.feature_row(evidence, hits, timing.features, call_row, versions)
        call_row["processing_s"] = time.perf_counter() - started
        dated = {**common, "call_date": job.call_date}
        rows = {"calls": [call_row], "segments": segments_rows(segments, dated),
                "utterances": utterances_rows(utterances, dated, pii), "hits": hits_rows(hits, dated),
                "features": [{**features, "call_date": job.call_date}]}
        return CallOutcome(job.call_id, True, call.duration_s, rows, covers=covers)
    except Exception as exc:  # noqa: BLE001 - one bad call must never stop the batch
        return _failed(job, sha, common, stage, exc, call, covers)


def _failed(job: CallJob, sha: str, common: dict[str, Any], stage: str, exc: Exception,
            call: Call | None, covers: dict[str, list[tuple[str, ...]]]) -> CallOutcome:
    message = exc.reason if isinstance(exc, CallqaError) else f"{type(exc).__name__}: {exc}"
    call_row = _call_row(job, call, common, sha)
    call_row.update(status="failed", error_type=type(exc).__name__, error_message=message)
    error_row = {**common, "call_date": job.call_date, "path": job.path, "stage": stage,
                 "error_type": type(exc).__name__, "message": message,
                 "occurred_at": datetime.now(timezone.utc)}
    return CallOutcome(job.call_id, False, call.duration_s if call else 0.0,
                       {"calls": [call_row], "errors": [error_row]}, error=message, covers=covers)


# -- the batch -----------------------------------------------------------------
_WORKER_RESOURCES: Resources | None = None  # set once per pool process by _init_worker


def _init_worker(config: Config, options: RunOptions) -> None:
    global _WORKER_RESOURCES
    _WORKER_RESOURCES = build_resources(config, options)


def _work(job: CallJob, sha: str) -> CallOutcome:
    assert _WORKER_RESOURCES is not None, "worker not initialised"
    return process_call(job, sha, _WORKER_RESOURCES)


def _hash_or_stat(path: str) -> str:
    """The resume key's content part: the file hash, or a stat signature if unreadable."""
    try:
        return file_sha256(path)
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"


def _outcomes(pending: list[tuple[CallJob, str]], config: Config, options: RunOptions) -> Iterator[CallOutcome]:
    if options.workers <= 1:
        resources = build_resources(config, options)
        for job, sha in pending:
            yield process_call(job, sha, resources)
        return
    context = multiprocessing.get_context("spawn")  # no forked model/thread state
    with ProcessPoolExecutor(options.workers, mp_context=context, initializer=_init_worker,
                             initargs=(config, options)) as pool:
        queue = iter(pending)
        in_flight: set[Future[CallOutcome]] = set()
        for job, sha in queue:  # keep at most 2 calls per worker in memory
            in_flight.add(pool.submit(_work, job, sha))
            if len(in_flight) >= 2 * options.workers:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in finished)
        for future in in_flight:
            yield future.result()


def plan_jobs(input_path: str | Path, config: Config) -> list[CallJob]:
    """Discover the calls of INPUT (file, directory or manifest)."""
    return discover_jobs(input_path, config.input.extensions)


def run_batch(
    input_path: str | Path,
    store_root: str | Path,
    config: Config,
    options: RunOptions = RunOptions(),
    progress: Callable[[Progress], None] | None = None,
) -> RunSummary:
    """Process every call of INPUT into the store at ``store_root``.

    Returns:
        The run's totals; ``failed`` counts calls recorded in ``errors/``.

    Raises:
        ManifestError: INPUT is missing or its manifest is malformed.
        StoreError: the store cannot be written (e.g. the disk is full);
            everything committed before stays.
    """
    started = time.perf_counter()
    store = Store(store_root)
    store.recover()
    jobs = plan_jobs(input_path, config)
    model_id, rules_version = resolve_versions(config, options)
    done = {} if options.force else store.done_keys()
    analysed_with = {} if options.force else {
        r["call_id"]: r["rules_version"] for r in store.read("features", columns=["rules_version"]).to_pylist()
        if (r["config_hash"], r["model_id"]) == (config.config_hash, model_id)}
    pending = []
    failed_before = other_rules = 0
    for job in jobs:
        sha = _hash_or_stat(job.path)
        status = done.get((job.call_id, sha, config.config_hash, model_id))
        if status is None:
            pending.append((job, sha))
        elif status == "failed":
            failed_before += 1
        elif analysed_with.get(job.call_id, rules_version) != rules_version:
            other_rules += 1
    store.record_run(uuid.uuid4().hex[:12], [{"call_id": j.call_id, "path": j.path} for j in jobs],
                     {"config_hash": config.config_hash, "model_id": model_id, "rules_version": rules_version})
    summary = RunSummary(planned=len(jobs), skipped=len(jobs) - len(pending), failed_before=failed_before,
                         skipped_other_rules=other_rules,
                         store=str(store.root), rules_version=rules_version,
                         classifier=classifier_note(config))
    buffer: list[CallOutcome] = []
    last_commit = time.monotonic()

    def flush() -> None:
        nonlocal last_commit
        if buffer:
            tables: dict[str, list[dict[str, Any]]] = {}
            covers: dict[str, list[tuple[str, ...]]] = {}
            for outcome in buffer:
                for table, rows in outcome.rows.items():
                    tables.setdefault(table, []).extend(rows)
                for table, keys in outcome.covers.items():
                    covers.setdefault(table, []).extend(keys)
            # Cleared first: if the commit fails (disk full) those calls stay
            # pending and are redone by the next run; nothing half-written shows.
            buffer.clear()
            store.commit(tables, covers=covers)
        last_commit = time.monotonic()

    try:
        for outcome in _outcomes(pending, config, options):
            buffer.append(outcome)
            summary.audio_s += outcome.audio_s
            if outcome.ok:
                summary.done += 1
            else:
                summary.failed += 1
                kind = outcome.rows["errors"][0]["error_type"]
                summary.failures[kind] = summary.failures.get(kind, 0) + 1
            if (len(buffer) >= config.run.commit_every_calls
                    or time.monotonic() - last_commit >= config.run.commit_every_s):
                flush()
            if progress:
                progress(Progress(summary.done, summary.failed, len(pending), summary.audio_s, outcome.call_id))
    finally:
        flush()  # finished calls are never lost, even on Ctrl-C
        summary.wall_s = time.perf_counter() - started
    return summary


__all__ = ["RunOptions", "RunSummary", "Progress", "run_batch", "process_call", "build_resources",
           "UnsupportedAudioError"]
