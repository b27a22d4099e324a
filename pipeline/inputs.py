"""Turn the ``INPUT`` of ``callqa run`` into a list of call jobs.

INPUT is one audio file, a directory (searched recursively by extension), or
a manifest (``.csv`` or ``.parquet``) with ``call_id`` and ``path`` columns
and optional metadata (``agent_id``, ``team``, ``started_at``, ``direction``,
``channel_roles``, ``hangup_party``, anything else). Metadata flows into
every output row so reports can group by team and agent.

Rules planning follows (each has a test in ``tests/test_inputs.py``):

- **Call ids in a directory** are the file's path relative to the directory
  without its extension (``2026-11-22/0001.wav`` -> ``2026-11-22/0001``). When
  two files would get the same id (``x.wav`` and ``x.mp3``), each of them keeps
  its extension instead (``x.wav``, ``x.mp3``): two recordings are never one
  call, and neither silently replaces the other.
- **Directory mode says what it skipped and why**
  (:attr:`InputPlan.skipped`): dangling links, symbolic link loops and links to
  directories already searched, directories named like recordings
  (``x.wav/``, searched inside), FIFOs, sockets and devices with an audio
  extension, directories that cannot be listed, and the number of files whose
  extension is not in ``[input] extensions``. Nothing is ever opened while
  planning, so a FIFO cannot make it wait.
- **A manifest row whose input is unusable is that call's error row**
  (``ManifestError``, :attr:`CallJob.input_error`), never a guess: a path that
  does not exist, is a dangling link or is not a regular file (FIFO, device,
  directory); a ``started_at`` that is not an ISO 8601 date and time; a date
  before :data:`EARLIEST_CALL_DATE` or after tomorrow (UTC). Without
  ``started_at`` the call's date is the file's modification date (UTC). A
  malformed manifest (no rows, missing columns, an empty or duplicate
  ``call_id``, unknown channel roles) stops the run before anything starts.
- INPUT that is a FIFO, device or socket is refused (``ManifestError``).
"""

from __future__ import annotations

import csv
import errno
import os
import stat
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.audio.probe import file_kind
from pipeline.errors import ManifestError

MANIFEST_SUFFIXES = (".csv", ".parquet")
#: Calls dated before this (by ``started_at``) are refused as a mistyped date.
EARLIEST_CALL_DATE = date(1990, 1, 1)
_REQUIRED = ("call_id", "path")
_UNKNOWN_DATE = "unknown"


@dataclass(frozen=True)
class CallJob:
    """One call to process: where its audio is and what is known about it.

    ``input_error``, when set, says why the call cannot be processed (found
    while planning); processing records it as the call's error row
    (``ManifestError``) without opening the file.
    """

    call_id: str
    path: str
    call_date: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    channel_roles: tuple[str, ...] | None = None
    input_error: str = ""


@dataclass(frozen=True)
class Skipped:
    """A path directory mode did not turn into a call, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class InputPlan:
    """The calls of an INPUT and what was skipped while finding them."""

    jobs: tuple[CallJob, ...]
    skipped: tuple[Skipped, ...] = ()

    def notes(self, limit: int = 20) -> list[str]:
        """One line per skipped path for a run summary (at most ``limit``, then how many more)."""
        lines = [f"skipped {item}" for item in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"skipped {len(self.skipped) - limit} more path(s)")
        return lines


# -- dates ---------------------------------------------------------------------------
def _mtime_date(path: Path) -> str:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).date().isoformat()
    except (OSError, ValueError, OverflowError):
        return _UNKNOWN_DATE


def parse_started_at(value: str, today: date | None = None) -> date:
    """The call date of a ``started_at`` value (in its own time zone when it states one).

    Args:
        value: ISO 8601, e.g. ``2026-11-22T09:30:00+08:00``, ``2026-11-22 09:30:00`` or ``2026-11-22``.
        today: the date "tomorrow" is counted from (default: today, UTC).

    Raises:
        ValueError: not ISO 8601, or before :data:`EARLIEST_CALL_DATE` or after tomorrow (UTC).
    """
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"started_at {value!r} is not an ISO 8601 date and time "
                         "(e.g. 2026-11-22T09:30:00+08:00)") from None
    latest = (today or datetime.now(timezone.utc).date()) + timedelta(days=1)
    if not EARLIEST_CALL_DATE <= moment.date() <= latest:
        raise ValueError(f"started_at {value!r} is outside {EARLIEST_CALL_DATE} .. {latest} "
                         "(a call cannot be dated in the future or before digital recording)")
    return moment.date()


# -- manifests -----------------------------------------------------------------------
def _parse_roles(value: str | None, where: str) -> tuple[str, ...] | None:
    if not value:
        return None
    roles = tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    bad = [r for r in roles if r not in ("agent", "customer", "ignore")]
    if bad:
        raise ManifestError(where, f"channel_roles {value!r}: unknown role(s) {bad}; use agent, customer, ignore")
    return roles


def _read_manifest_rows(path: Path) -> list[dict[str, str]]:
    try:
        if path.suffix.lower() == ".parquet":
            return [{str(k): "" if v is None else str(v) for k, v in row.items()}
                    for row in pq.read_table(path).to_pylist()]
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [{k.strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()
                     if isinstance(k, str)}
                    for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(str(path), f"cannot read manifest: {exc}") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise ManifestError(str(path), f"not a readable Parquet manifest: {type(exc).__name__}: {exc}") from None


def _input_problem(path: Path) -> str:
    """Why a manifest's ``path`` cannot be a recording ("" when it is a file); never opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found" + (" (a dangling symbolic link)" if os.path.lexists(path) else "")
    except OSError as exc:
        return f"cannot look at the file: {exc.strerror or exc}"
    except ValueError as exc:  # e.g. a NUL character in the path
        return f"not a usable path: {exc}"
    return "" if stat.S_ISREG(mode) else f"not a regular file: a {file_kind(mode)}"


def jobs_from_manifest(path: Path) -> list[CallJob]:
    """Read a CSV/Parquet manifest; relative paths are relative to the manifest.

    Raises:
        ManifestError: the manifest is unreadable or malformed (rows naming
            unusable files become jobs with :attr:`CallJob.input_error`).
    """
    rows = _read_manifest_rows(path)
    if not rows:
        raise ManifestError(str(path), "manifest has no rows")
    missing = [c for c in _REQUIRED if c not in rows[0]]
    if missing:
        raise ManifestError(str(path), f"manifest lacks required column(s) {missing}")
    jobs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        call_id, audio = row.get("call_id", ""), row.get("path", "")
        if not call_id or not audio:
            raise ManifestError(where, "empty call_id or path")
        if call_id in seen:
            raise ManifestError(where, f"duplicate call_id {call_id!r}")
        seen.add(call_id)
        audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        metadata = {k: v for k, v in row.items() if k not in (*_REQUIRED, "channel_roles") and v}
        problems = [p for p in [_input_problem(audio_path)] if p]
        call_date = _mtime_date(audio_path)
        if row.get("started_at"):
            try:
                call_date = parse_started_at(row["started_at"]).isoformat()
            except ValueError as exc:
                problems.append(str(exc))
        error = f"{'; '.join(problems)} (manifest {path}, line {line})" if problems else ""
        jobs.append(CallJob(call_id=call_id, path=str(audio_path), call_date=call_date, metadata=metadata,
                            channel_roles=_parse_roles(row.get("channel_roles"), where), input_error=error))
    return jobs


# -- directories ---------------------------------------------------------------------
def _walk(root: Path, wanted: set[str]) -> Iterator[Path | Skipped]:
    """Regular files under ``root`` with a wanted suffix (sorted), and what was skipped.

    Links to directories are followed once: a link back to a directory already
    searched (a loop, or the same folder linked twice) is skipped and said.
    """
    try:
        searched = {_dir_key(root)}
    except OSError as exc:
        yield Skipped(str(root), f"cannot search: {exc.strerror or exc}")
        return
    stack = [root]
    other: Counter[str] = Counter()
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(str(directory), f"cannot list the directory: {exc.strerror or exc}")
            continue
        subdirectories = []
        for entry in entries:
            path = Path(entry.path)
            suffix = path.suffix.lower()
            is_link = False
            try:
                is_link = entry.is_symlink()
                mode = os.stat(entry.path).st_mode
            except OSError as exc:
                reason = ("symbolic link loop" if exc.errno == errno.ELOOP else
                          "dangling symbolic link (its target does not exist)" if is_link else
                          f"cannot look at it: {exc.strerror or exc}")
                yield Skipped(str(path), reason)
                continue
            if stat.S_ISDIR(mode):
                if suffix in wanted:
                    yield Skipped(str(path), "a directory named like a recording (searched inside)")
                key = _dir_key(path)
                if key in searched:
                    yield Skipped(str(path), "a link to a directory already searched (a loop or a second "
                                             "link to one folder)")
                    continue
                searched.add(key)
                subdirectories.append(path)
            elif suffix not in wanted:
                if stat.S_ISREG(mode):
                    other[suffix or "(none)"] += 1
            elif stat.S_ISREG(mode):
                yield path
            else:
                yield Skipped(str(path), f"not a regular file: a {file_kind(mode)}")
        stack.extend(reversed(subdirectories))
    if other:
        kinds = ", ".join(f"{ext} ×{n}" for ext, n in sorted(other.items()))
        yield Skipped(str(root), f"{sum(other.values())} file(s) with other extensions ({kinds}): not in "
                                 "[input] extensions")


def _dir_key(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _directory_ids(root: Path, files: Sequence[Path]) -> list[str]:
    """Relative path without the extension; colliding ids keep their extension (see the module docstring)."""
    full = [p.relative_to(root).as_posix() for p in files]
    ids = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    while True:
        counts = Counter(ids)
        clashes = [i for i, call_id in enumerate(ids) if counts[call_id] > 1 and call_id != full[i]]
        if not clashes:
            return ids
        for i in clashes:
            ids[i] = full[i]


def plan_directory(root: Path, extensions: Sequence[str]) -> InputPlan:
    """Every regular file under ``root`` with one of ``extensions``, and what was skipped."""
    wanted = {"." + e.lower().lstrip(".") for e in extensions}
    files: list[Path] = []
    skipped: list[Skipped] = []
    for item in _walk(root, wanted):
        (files if isinstance(item, Path) else skipped).append(item)  # type: ignore[arg-type]
    files.sort()
    jobs = [CallJob(call_id=call_id, path=str(p), call_date=_mtime_date(p))
            for call_id, p in zip(_directory_ids(root, files), files, strict=True)]
    return InputPlan(tuple(jobs), tuple(skipped))


def jobs_from_directory(root: Path, extensions: Sequence[str]) -> list[CallJob]:
    """Every file under ``root`` with one of ``extensions``; call_id = relative path without suffix."""
    return list(plan_directory(root, extensions).jobs)


# -- any INPUT -----------------------------------------------------------------------
def plan_input(input_path: str | Path, extensions: Sequence[str]) -> InputPlan:
    """The jobs of a file, a directory or a manifest, with what directory mode skipped.

    Raises:
        ManifestError: INPUT does not exist or is not a file or directory, or a manifest is malformed.
    """
    path = Path(input_path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ManifestError(str(path), "input not found") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(str(path), f"cannot look at the input: {getattr(exc, 'strerror', None) or exc}"
                            ) from None
    if stat.S_ISDIR(mode):
        return plan_directory(path, extensions)
    if not stat.S_ISREG(mode):
        raise ManifestError(str(path), f"input is a {file_kind(mode)}: give an audio file, a directory or a "
                                       "manifest")
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return InputPlan(tuple(jobs_from_manifest(path)))
    return InputPlan((CallJob(call_id=path.stem, path=str(path), call_date=_mtime_date(path)),))


def discover_jobs(input_path: str | Path, extensions: Sequence[str]) -> list[CallJob]:
    """Jobs for a file, a directory or a manifest (:func:`plan_input` without the skipped list).

    Raises:
        ManifestError: INPUT does not exist, or a manifest is malformed.
    """
    return list(plan_input(input_path, extensions).jobs)
