"""Run calls on this machine: in this process, or in supervised worker processes.

Each worker process loads the heavy resources once (:meth:`pipeline.analysis.Resources.load`,
through a picklable factory) and then processes one call at a time
(:func:`pipeline.process.process_job`). The parent hands out calls and watches
its workers:

- a worker that dies while processing a call (a native crash in a decoder, the
  kernel's out-of-memory killer) costs only that call: it becomes the call's
  error row, naming the signal, and a fresh worker takes the next call;
- a call that runs longer than the time limit is stopped the same way;
- workers die with their parent (``PR_SET_PDEATHSIG`` on Linux): a killed
  batch leaves no process behind.

Isolation is the default even with one worker; ``isolate=False`` runs calls in
this process (fast start, used by tests with unpicklable fakes).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from pipeline.analysis import Resources, ResourceSpec
from pipeline.errors import CallqaError
from pipeline.inputs import CallJob
from pipeline.process import JobOutcome, failed_outcome, process_job
from pipeline.versions import Versions

#: Builds a worker's resources; must be picklable for worker processes (e.g. ``ResourceSpec.load``).
ResourceFactory = Callable[[], Resources]
_PR_SET_PDEATHSIG = 1


class WorkerCrash(RuntimeError):
    """A worker process died while processing a call."""


class CallTimeout(RuntimeError):
    """A call took longer than the configured time limit."""


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), and check it has not already."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_main(conn: Connection, factory: ResourceFactory, parent_pid: int) -> None:
    """A worker: load resources once, then process one call per message until told to stop."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        resources = factory()
    except CallqaError as exc:
        conn.send(("init_error", (type(exc).__name__, exc.path, exc.reason)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the batch
        conn.send(("init_error", (type(exc).__name__, "worker", f"{type(exc).__name__}: {exc}")))
        return
    conn.send(("ready", None))
    while True:
        message = conn.recv()
        if message is None:
            return
        job, sha = message
        conn.send(("done", process_job(job, sha, resources)))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: tuple[CallJob, str] | None = None
    started: float = 0.0
    ready: bool = False
    init: dict[str, Any] = field(default_factory=dict)


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class LocalEngine:
    """Process calls on this machine (see the module docstring).

    Args:
        workers: worker processes (at most one per pending call).
        isolate: run calls in worker processes even with one worker.
        call_timeout_s: stop a call after this long (None: no limit; needs ``isolate``).
    """

    def __init__(self, workers: int = 1, isolate: bool = True, call_timeout_s: float | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.isolate = isolate or workers > 1
        self.call_timeout_s = call_timeout_s

    def outcomes(self, pending: Sequence[tuple[CallJob, str]], spec: ResourceSpec,
                 versions: Versions) -> Iterator[JobOutcome]:
        """Process every (job, audio hash) and yield each outcome as it finishes (any order).

        Raises:
            CallqaError: the resources cannot be loaded (a missing model, a bad rule set).
        """
        if not pending:
            return
        factory: ResourceFactory = spec.load
        if not self.isolate:
            resources = factory()
            for job, sha in pending:
                yield process_job(job, sha, resources)
            return
        yield from _Supervisor(factory, versions, min(self.workers, len(pending)), self.call_timeout_s).run(pending)


class _Supervisor:
    """Hands calls to worker processes and turns their deaths and timeouts into failed calls."""

    def __init__(self, factory: ResourceFactory, versions: Versions, size: int, timeout_s: float | None) -> None:
        self.factory = factory
        self.versions = versions
        self.size = size
        self.timeout_s = timeout_s
        self.context = multiprocessing.get_context("spawn")  # no forked model or thread state
        self.workers: list[_Worker] = []

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, self.factory, os.getpid()), daemon=True)
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self.workers.append(worker)
        return worker

    def _retire(self, worker: _Worker, grace_s: float = 0.0) -> None:
        worker.process.join(timeout=grace_s)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        self.workers.remove(worker)

    def run(self, pending: Sequence[tuple[CallJob, str]]) -> Iterator[JobOutcome]:
        queue = deque(pending)
        try:
            for _ in range(self.size):
                self._start()
            while queue or any(w.job is not None for w in self.workers):
                for worker in self.workers:
                    if worker.ready and worker.job is None and queue:
                        worker.job = queue.popleft()
                        worker.started = time.monotonic()
                        worker.conn.send(worker.job)
                yield from self._collect()
        finally:
            stopping = []
            for worker in list(self.workers):
                if worker.process.is_alive() and worker.job is None and worker.ready:
                    try:
                        worker.conn.send(None)  # finish cleanly: libraries release what they hold
                        stopping.append(worker)
                    except OSError:
                        pass
            for worker in list(self.workers):
                self._retire(worker, grace_s=10.0 if worker in stopping else 0.0)

    def _collect(self) -> Iterator[JobOutcome]:
        """Wait for a message, a death or a timeout; yield the outcomes that came of it."""
        ready = wait([w.conn for w in self.workers] + [w.process.sentinel for w in self.workers], timeout=1.0)
        now = time.monotonic()
        for worker in list(self.workers):
            message = None
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
            if message is not None:
                kind, payload = message
                if kind == "ready":
                    worker.ready = True
                elif kind == "init_error":
                    name, path, reason = payload
                    raise CallqaError(path, f"{reason} ({name}, while loading a worker's models)")
                else:
                    worker.job = None
                    yield payload
                continue
            if not worker.process.is_alive() or worker.process.sentinel in ready:
                worker.process.join(timeout=1)
                if worker.job is None and not worker.ready:
                    raise CallqaError("worker", f"a worker process died while starting "
                                      f"({_signal_name(worker.process.exitcode)})")
                yield from self._replace(worker, WorkerCrash(
                    f"the worker processing this call died ({_signal_name(worker.process.exitcode)}); "
                    "the file probably crashes the decoder"), "crash")
            elif (self.timeout_s is not None and worker.job is not None
                  and now - worker.started > self.timeout_s):
                yield from self._replace(worker, CallTimeout(
                    f"stopped after {self.timeout_s:.0f} s ([run] call_timeout_s)"), "timeout")

    def _replace(self, worker: _Worker, error: Exception, stage: str) -> Iterator[JobOutcome]:
        job = worker.job
        self._retire(worker)
        self._start()
        if job is not None:
            yield failed_outcome(job[0], job[1], self.versions, stage, error)


__all__ = ["CallTimeout", "LocalEngine", "ResourceFactory", "WorkerCrash"]
