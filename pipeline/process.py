"""One call from file to rows: decode, analyse, and turn any failure into that call's error rows.

:func:`process_job` is what an engine runs per call (in this process, in a
local worker process, or on a Ray worker); it never raises for a bad call.
Engines that transcribe and analyse in different places (Ray: GPU actors for
Whisper, CPU workers for the rest) run its two halves, :func:`hear_job` and
:func:`conclude_job`, and pass the :class:`HeardJob` between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipeline.analysis import HeardCall, Resources, conclude_call, hear_call
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


@dataclass
class HeardJob:
    """A call after decoding, the audio stages and PII masking."""

    job: CallJob
    audio_sha256: str
    facts: dict[str, Any]
    heard: HeardCall
    audio_s: float
    #: Seconds spent so far (decoding and the audio stages).
    spent_s: float
    #: The decoded audio, kept when the second half needs it (the second look at near misses).
    call: Call | None = None


def hear_job(job: CallJob, audio_sha256: str, resources: Resources, keep_audio: bool = True) -> HeardJob | JobOutcome:
    """Decode one call and run its audio stages; a failure becomes that call's failed outcome.

    ``keep_audio`` keeps the decoded call in the result for :func:`conclude_job`'s
    second look; an engine that ships the result to another machine turns it off
    when the text stage does not go back to the audio (``[text] second_look`` and ``sound_check``).
    """
    started = time.perf_counter()
    stage = "ingest"
    call: Call | None = None

    def enter(name: str) -> None:
        nonlocal stage
        stage = name

    try:
        if job.input_error:  # found while planning (pipeline.inputs): recorded without opening the file
            raise ManifestError(job.path, job.input_error)
        call = load_call(job.path, resources.config, call_id=job.call_id, metadata=job.metadata,
                         channel_roles=job.channel_roles, audio_sha256=audio_sha256)
        facts = call_facts(job.call_id, job.call_date, job.path, audio_sha256, job.metadata, call)
        heard = hear_call(call, resources, facts, on_stage=enter)
        return HeardJob(job, audio_sha256, facts, heard, call.duration_s, time.perf_counter() - started,
                        call if keep_audio else None)
    except Exception as exc:  # noqa: BLE001 - one bad call must never stop the batch
        return failed_outcome(job, audio_sha256, resources.versions, stage, exc, call)


def conclude_job(heard: HeardJob, resources: Resources) -> JobOutcome:
    """Text rules, timing, features and scoring of a heard call, as rows ready to commit."""
    started = time.perf_counter()
    try:
        analysed = conclude_call(heard.heard, resources, call=heard.call)
        result = call_result(heard.facts, analysed, resources.versions,
                             heard.spent_s + time.perf_counter() - started)
        return JobOutcome(heard.job.call_id, True, heard.audio_s, result)
    except Exception as exc:  # noqa: BLE001 - one bad call must never stop the batch
        outcome = failed_outcome(heard.job, heard.audio_sha256, resources.versions, "detect", exc)
        outcome.audio_s = heard.audio_s
        return outcome


def process_job(job: CallJob, audio_sha256: str, resources: Resources) -> JobOutcome:
    """Run every stage on one call. Never raises for a bad call: returns a failed outcome."""
    heard = hear_job(job, audio_sha256, resources)
    return heard if isinstance(heard, JobOutcome) else conclude_job(heard, resources)


def failed_outcome(job: CallJob, audio_sha256: str, versions: Versions, stage: str, error: Exception,
                   call: Call | None = None) -> JobOutcome:
    """The outcome of a call that failed at ``stage`` (also used by engines when a worker dies)."""
    reason = error.reason if isinstance(error, CallqaError) else f"{type(error).__name__}: {error}"
    facts = call_facts(job.call_id, job.call_date, job.path, audio_sha256, job.metadata, call)
    result = failed_result(facts, versions, stage, error, reason)
    return JobOutcome(job.call_id, False, call.duration_s if call else 0.0, result, type(error).__name__, reason)


__all__ = ["HeardJob", "JobOutcome", "conclude_job", "failed_outcome", "hear_job", "process_job"]
