"""Run calls on a Ray cluster: transcription in actors that load Whisper once, analysis in CPU actors.

``callqa run INPUT --out STORE --engine ray [--address auto]`` runs the same two
halves of every call as a local run (:func:`pipeline.process.hear_job`,
:func:`pipeline.process.conclude_job`):

- *transcribers*: actors that load the speech model once (one per GPU with
  ``--gpus-per-worker 1``, or N per CPU node) and decode, find speech and
  transcribe;
- *analysers*: CPU actors that load the rule sets, the red-line model, the
  scorecard and the classifier once (and the speech model when ``[text]
  second_look`` or ``sound_check`` goes back to the audio: the call's audio then travels with it),
  and run text rules, timing, features and scoring on what a transcriber heard
  (passed actor to actor by object reference, never through the driver).

The driver (the ``callqa run`` process) receives each call's rows and commits
them to the store with the store's transactions, exactly as a local run does,
so resume, failure isolation and the final store are the same. A worker that
dies mid-call (a node lost, a decoder crash) costs nothing committed: its call
is redone once on another worker, and recorded as failed if that one dies too.

Ray is an optional dependency (``pip install 'callqa[ray]'``).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.analysis import ResourceSpec
from pipeline.errors import CallqaError
from pipeline.inputs import CallJob
from pipeline.process import HeardJob, JobOutcome, conclude_job, failed_outcome, hear_job
from pipeline.versions import Versions


class WorkerLost(RuntimeError):
    """A Ray worker died twice while processing the same call."""


class _Transcriber:
    """Ray actor: loads the speech model once, then hears one call per request."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.resources = spec.load()
        # The audio travels to the analyser only when its second look or sound check needs it.
        self.keep_audio = self.resources.config.text.uses_audio

    def ready(self) -> bool:
        return True

    def hear(self, job: CallJob, audio_sha256: str) -> HeardJob | JobOutcome:
        return hear_job(job, audio_sha256, self.resources, keep_audio=self.keep_audio)


class _Analyser:
    """Ray actor: loads the rules, models and scorecard once, then concludes one heard call per request."""

    def __init__(self, spec: ResourceSpec) -> None:
        # The second look and the sound check decode or score short stretches: then the analyser needs the
        # speech model too.
        self.resources = spec.load() if spec.config.text.uses_audio else spec.load_for_analysis()

    def ready(self) -> bool:
        return True

    def conclude(self, heard: HeardJob | JobOutcome) -> JobOutcome:
        return heard if isinstance(heard, JobOutcome) else conclude_job(heard, self.resources)


@dataclass
class _InFlight:
    job: CallJob
    audio_sha256: str
    attempt: int
    started: float = 0.0
    sequence: int = 0
    transcriber: Any = None
    analyser: Any = None


class RayEngine:
    """Process calls on a Ray cluster (see the module docstring).

    Args:
        address: a running cluster (``"auto"``, ``"ray://head:10001"``); None starts a local one.
        transcribers: transcriber actors (default: as many as fit the cluster, at most 8).
        analysers: analyser actors (default: one per two transcribers).
        gpus_per_worker: GPUs each transcriber asks for (0 = CPU).
        call_timeout_s: a call still running after this long is recorded as failed.
        local_cpus: CPUs of the local cluster started when ``address`` is None (default: this
            machine's, or as many as the workers asked for need: Ray's CPUs are scheduling
            slots, and ``--workers 2`` on 2 cores runs like the local engine's two workers).
        start_timeout_s: how long to wait for every worker to start (they load models);
            past it the cluster cannot host them and the run stops with what it has and needs.
    """

    #: Logical CPUs each transcriber and analyser asks Ray for (analysis is light).
    TRANSCRIBER_CPUS = 1.0
    ANALYSER_CPUS = 0.5

    def __init__(self, address: str | None = None, transcribers: int | None = None, analysers: int | None = None,
                 gpus_per_worker: float = 0.0, call_timeout_s: float | None = None,
                 local_cpus: int | None = None, start_timeout_s: float = 300.0) -> None:
        self.address = address
        self.transcribers = transcribers
        self.analysers = analysers
        self.gpus_per_worker = gpus_per_worker
        self.call_timeout_s = call_timeout_s
        self.local_cpus = local_cpus
        self.start_timeout_s = start_timeout_s

    def outcomes(self, pending: Sequence[tuple[CallJob, str]], spec: ResourceSpec,
                 versions: Versions) -> Iterator[JobOutcome]:
        """Process every (job, audio hash) on the cluster; yield each outcome as it finishes.

        Raises:
            CallqaError: Ray is not installed, the cluster cannot be reached, or
                the workers cannot load their resources.
        """
        if not pending:
            return
        try:
            import ray
        except ImportError:
            raise CallqaError("--engine ray", "Ray is not installed: pip install 'callqa[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, num_cpus=self._local_cpus() if self.address is None else None,
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
            except Exception as exc:  # noqa: BLE001 - any connection failure becomes one line
                raise CallqaError(f"--address {self.address or 'local'}",
                                  f"cannot start or reach the Ray cluster: {exc}") from None
        try:
            yield from self._run(ray, pending, spec, versions)
        finally:
            if started_here:
                ray.shutdown()

    def _need_cpus(self, n_transcribers: int, n_analysers: int) -> float:
        return n_transcribers * self.TRANSCRIBER_CPUS + n_analysers * self.ANALYSER_CPUS

    def _analysers_for(self, n_transcribers: int) -> int:
        """Analyser actors: as asked, else one per two transcribers."""
        return self.analysers or (n_transcribers + 1) // 2

    def _local_cpus(self) -> int:
        """CPUs of a local cluster: this machine's, or enough for the workers asked for."""
        if self.local_cpus is not None:
            return self.local_cpus
        machine = os.cpu_count() or 1
        if not self.transcribers:
            return machine
        return max(machine, math.ceil(self._need_cpus(self.transcribers, self._analysers_for(self.transcribers))))

    def _run(self, ray: Any, pending: Sequence[tuple[CallJob, str]], spec: ResourceSpec,
             versions: Versions) -> Iterator[JobOutcome]:
        cluster = ray.cluster_resources()
        cpus = float(cluster.get("CPU", 1.0))
        fit = int((cpus - self.ANALYSER_CPUS) // (self.TRANSCRIBER_CPUS + self.ANALYSER_CPUS / 2)) or 1
        n_transcribers = max(1, min(len(pending), self.transcribers or min(fit, 8)))
        n_analysers = max(1, min(len(pending), self._analysers_for(n_transcribers)))
        need_cpu, need_gpu = self._need_cpus(n_transcribers, n_analysers), n_transcribers * self.gpus_per_worker
        if need_cpu > cpus or need_gpu > float(cluster.get("GPU", 0.0)):
            # Ray would wait for nodes that never come: say so now, not after start_timeout_s
            raise CallqaError("--engine ray", f"{n_transcribers} transcribers and {n_analysers} analysers need "
                              f"{need_cpu:g} CPUs and {need_gpu:g} GPUs; the cluster has {cpus:g} CPUs and "
                              f"{float(cluster.get('GPU', 0.0)):g} GPUs (lower --workers or add nodes)")
        # Ray does not restart them: the engine replaces a dead worker itself and knows which call killed it.
        transcriber_cls = ray.remote(num_cpus=self.TRANSCRIBER_CPUS, num_gpus=self.gpus_per_worker,
                                     max_restarts=0)(_Transcriber)
        analyser_cls = ray.remote(num_cpus=self.ANALYSER_CPUS, max_restarts=0)(_Analyser)
        pools = {"transcriber": [transcriber_cls.remote(spec) for _ in range(n_transcribers)],
                 "analyser": [analyser_cls.remote(spec) for _ in range(n_analysers)]}
        self._wait_until_started(ray, pools["transcriber"] + pools["analyser"], cluster, n_transcribers,
                                 n_analysers)
        queue = [_InFlight(job, sha, 1) for job, sha in reversed(pending)]
        in_flight: dict[Any, _InFlight] = {}
        limit = 2 * n_transcribers
        sequence = itertools.count()

        def submit(work: _InFlight) -> None:
            work.sequence = next(sequence)
            work.transcriber = pools["transcriber"][work.sequence % len(pools["transcriber"])]
            work.analyser = pools["analyser"][work.sequence % len(pools["analyser"])]
            heard = work.transcriber.hear.remote(work.job, work.audio_sha256)
            work.started = time.monotonic()
            in_flight[work.analyser.conclude.remote(heard)] = work

        def replace(role: str, dead: Any) -> list[_InFlight]:
            """Start a new worker for a dead one; requeue every call the dead one held.

            An actor runs its calls in the order they were sent, so the oldest
            call in flight on it is the one it died on: only that one used up an
            attempt; the others were waiting.
            """
            pool = pools[role]
            pool[pool.index(dead)] = (transcriber_cls if role == "transcriber" else analyser_cls).remote(spec)
            held = [(ref, w) for ref, w in in_flight.items() if getattr(w, role) == dead]
            for ref, _w in held:
                in_flight.pop(ref)
            if not held:
                return []
            culprit = min((w for _r, w in held), key=lambda w: w.sequence)
            return [_InFlight(w.job, w.audio_sha256, w.attempt + (w is culprit)) for _r, w in held]

        def alive(actor: Any) -> bool:
            try:
                ray.get(actor.ready.remote(), timeout=60)
                return True
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return False

        while queue or in_flight:
            while queue and len(in_flight) < limit:
                submit(queue.pop())
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                if ref not in in_flight:
                    continue  # requeued already, with the rest of a dead worker's calls
                work = in_flight[ref]
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # a worker died (node lost, native crash)
                    again = []
                    for role in ("transcriber", "analyser"):
                        actor = getattr(work, role)
                        if actor in pools[role] and not alive(actor):
                            again += replace(role, actor)
                    if ref in in_flight:  # neither worker is dead: a transient loss, try it again
                        again.append(_InFlight(work.job, work.audio_sha256, work.attempt))
                        in_flight.pop(ref)
                    for item in again:
                        if item.attempt <= 2:  # redo once, on another worker
                            queue.append(item)
                        else:
                            yield failed_outcome(item.job, item.audio_sha256, versions, "worker", WorkerLost(
                                f"the Ray worker processing this call died twice ({type(exc).__name__})"))
                    continue
                except ray.exceptions.RayTaskError as exc:  # raised inside a worker (a bug): that call fails
                    in_flight.pop(ref)
                    yield failed_outcome(work.job, work.audio_sha256, versions, "worker", exc.as_instanceof_cause())
                    continue
                in_flight.pop(ref)
                yield outcome
            if self.call_timeout_s is not None:
                now = time.monotonic()
                for ref, work in list(in_flight.items()):
                    if ref in in_flight and now - work.started > self.call_timeout_s:
                        ray.kill(work.transcriber)
                        for item in replace("transcriber", work.transcriber):
                            if item.job is work.job:
                                yield failed_outcome(work.job, work.audio_sha256, versions, "timeout", TimeoutError(
                                    f"stopped after {self.call_timeout_s:.0f} s ([run] call_timeout_s)"))
                            else:
                                queue.append(_InFlight(item.job, item.audio_sha256, max(1, item.attempt - 1)))

    def _wait_until_started(self, ray: Any, actors: list[Any], cluster: dict[str, float], n_transcribers: int,
                            n_analysers: int) -> None:
        """Block until every worker has loaded its resources; a cluster that cannot host them is an error."""
        pings = [actor.ready.remote() for actor in actors]
        ready, waiting = ray.wait(pings, num_returns=len(pings), timeout=self.start_timeout_s)
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                cause = exc.__cause__ or exc
                if isinstance(cause, CallqaError):
                    raise CallqaError(cause.path, f"{cause.reason} (while loading a Ray worker)") from None
                raise CallqaError("--engine ray", f"a worker could not start: {exc}") from None
        if waiting:
            need_cpu = self._need_cpus(n_transcribers, n_analysers)
            raise CallqaError("--engine ray", f"{len(waiting)} of {len(actors)} workers did not start within "
                              f"{self.start_timeout_s:.0f} s: {n_transcribers} transcribers and {n_analysers} "
                              f"analysers need {need_cpu:g} CPUs and {n_transcribers * self.gpus_per_worker:g} GPUs; "
                              f"the cluster has {cluster.get('CPU', 0):g} CPUs and {cluster.get('GPU', 0):g} GPUs "
                              "(lower --workers or add nodes)")


__all__ = ["RayEngine", "WorkerLost"]
