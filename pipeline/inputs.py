"""Turn the ``INPUT`` of ``callqa run`` into a list of call jobs.

INPUT is one audio file, a directory (searched recursively by extension), or
a manifest (``.csv`` or ``.parquet``) with ``call_id`` and ``path`` columns
and optional metadata (``agent_id``, ``team``, ``started_at``, ``direction``,
``channel_roles``, ``hangup_party``, anything else). Metadata flows into
every output row so reports can group by team and agent.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import ManifestError

MANIFEST_SUFFIXES = (".csv", ".parquet")
_REQUIRED = ("call_id", "path")


@dataclass(frozen=True)
class CallJob:
    """One call to process: where its audio is and what is known about it."""

    call_id: str
    path: str
    call_date: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    channel_roles: tuple[str, ...] | None = None


def _date_of(path: Path, started_at: str | None) -> str:
    """The call's date: from ``started_at`` when given, else the file's mtime (UTC)."""
    if started_at:
        try:
            return datetime.fromisoformat(started_at.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            pass
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).date().isoformat()
    except OSError:
        return "unknown"


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
            return [{k: "" if v is None else str(v) for k, v in row.items()}
                    for row in pq.read_table(path).to_pylist()]
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                    for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(str(path), f"cannot read manifest: {exc}") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise ManifestError(str(path), f"not a readable Parquet manifest: {exc}") from None


def jobs_from_manifest(path: Path) -> list[CallJob]:
    """Read a CSV/Parquet manifest; relative paths are relative to the manifest."""
    rows = _read_manifest_rows(path)
    if not rows:
        raise ManifestError(str(path), "manifest has no rows")
    missing = [c for c in _REQUIRED if c not in rows[0]]
    if missing:
        raise ManifestError(str(path), f"manifest lacks required column(s) {missing}")
    jobs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        call_id, audio = row["call_id"], row["path"]
        if not call_id or not audio:
            raise ManifestError(where, "empty call_id or path")
        if call_id in seen:
            raise ManifestError(where, f"duplicate call_id {call_id!r}")
        seen.add(call_id)
        audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        metadata = {k: v for k, v in row.items() if k not in (*_REQUIRED, "channel_roles") and v}
        jobs.append(CallJob(
            call_id=call_id, path=str(audio_path), call_date=_date_of(audio_path, row.get("started_at")),
            metadata=metadata, channel_roles=_parse_roles(row.get("channel_roles"), where),
        ))
    return jobs


def jobs_from_directory(root: Path, extensions: Sequence[str]) -> list[CallJob]:
    """Every file under ``root`` with one of ``extensions``; call_id = relative path without suffix."""
    wanted = {"." + e.lower().lstrip(".") for e in extensions}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    return [CallJob(call_id=p.relative_to(root).with_suffix("").as_posix(), path=str(p),
                    call_date=_date_of(p, None)) for p in files]


def discover_jobs(input_path: str | Path, extensions: Sequence[str]) -> list[CallJob]:
    """Jobs for a file, a directory or a manifest.

    Raises:
        ManifestError: INPUT does not exist, or a manifest is malformed.
    """
    path = Path(input_path)
    if not path.exists():
        raise ManifestError(str(path), "input not found")
    if path.is_dir():
        return jobs_from_directory(path, extensions)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return jobs_from_manifest(path)
    return [CallJob(call_id=path.stem, path=str(path), call_date=_date_of(path, None))]
