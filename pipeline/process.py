"""One call from file to rows: decode, analyse, and turn any failure into that call's error rows.

:func:`process_job` is what every engine runs per call (in this process, in a
local worker process, or on a Ray worker); it never raises for a bad call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.analysis import Resources, analyse_call
from pipeline.audio.decode import load_call
from pipeline.errors import CallqaError, ManifestError
from pipeline.inputs import CallJob
from pipeline.records import Call
from pipeline.store.delta import CallResult
from pipeline.store.rows import call_facts, call_result, failed_result
from pipeline.versions import Versions


@dataclass
class JobOutcome:
    """What processing one call produced: its rows, ready to commit."""

    call_id: str
    ok: bool
    audio_s: float
    result: CallResult
    error_type: str = ""
    error: str = ""


def process_job(job: CallJob, audio_sha256: str, resources: Resources) -> JobOutcome:
    """Run every stage on one call. Never raises for a bad call: returns a failed outcome."""
    started = time.perf_counter()
    stage = "ingest"
    call: Call | None = None
    versions = resources.versions

    def enter(name: str) -> None:
        nonlocal stage
        stage = name

    try:
        if job.input_error:  # found while planning (pipeline.inputs): recorded without opening the file
            raise ManifestError(job.path, job.input_error)
        call = load_call(job.path, resources.config, call_id=job.call_id, metadata=job.metadata,
                         channel_roles=job.channel_roles, audio_sha256=audio_sha256)
        facts = call_facts(job.call_id, job.call_date, job.path, audio_sha256, job.metadata, call)
        analysed = analyse_call(call, resources, facts, on_stage=enter)
        result = call_result(facts, analysed, versions, time.perf_counter() - started)
        return JobOutcome(job.call_id, True, call.duration_s, result)
    except Exception as exc:  # noqa: BLE001 - one bad call must never stop the batch
        return failed_outcome(job, audio_sha256, versions, stage, exc, call)


def failed_outcome(job: CallJob, audio_sha256: str, versions: Versions, stage: str, error: Exception,
                   call: Call | None = None) -> JobOutcome:
    """The outcome of a call that failed at ``stage`` (also used by engines when a worker dies)."""
    reason = error.reason if isinstance(error, CallqaError) else f"{type(error).__name__}: {error}"
    facts = call_facts(job.call_id, job.call_date, job.path, audio_sha256, job.metadata, call)
    result = failed_result(facts, versions, stage, error, reason)
    return JobOutcome(job.call_id, False, call.duration_s if call else 0.0, result, type(error).__name__, reason)


__all__ = ["JobOutcome", "failed_outcome", "process_job"]
