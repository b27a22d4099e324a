"""Where a store lives: a local directory, or a prefix on an object store.

A store location is a path (``store/``, ``/shared/store``, ``file:///shared/store``)
or a URI (``s3://bucket/prefix``; ``gs://`` and ``az://`` go through the same
code but are untested). :class:`Location` gives the store what it needs from either:

- the URI and ``storage_options`` delta-rs opens the Delta tables with;
- a pyarrow file system for the Parquet files those tables name and for the
  store's small files (the marker, ``_state/``);
- reading, listing and writing those small files. On a local disk a file is
  written to a temporary name, synced and renamed over the old one, as
  always; on an object store an object is written in one upload, which the
  store makes visible whole or not at all (readers see the old object or the
  new one, never half of it).

Storage options come from the environment, as delta-rs and pyarrow each read
it (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ALLOW_HTTP``...), and from ``[store] storage_options``
in the configuration, which take precedence. delta-rs gets all of them; the
pyarrow S3 file system gets the endpoint, region and credentials among them
(:func:`_s3_file_system`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs

from pipeline.errors import StoreError

#: Option names (lower case, as delta-rs accepts them in either case) the pyarrow S3 file system honours too.
_S3_ENDPOINT = ("aws_endpoint_url_s3", "aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint")
_S3_REGION = ("aws_region", "region", "aws_default_region")
_S3_KEY = ("aws_access_key_id", "access_key_id")
_S3_SECRET = ("aws_secret_access_key", "secret_access_key")
_S3_TOKEN = ("aws_session_token", "session_token", "token")
_S3_HTTP = ("aws_allow_http", "allow_http")


def is_uri(where: str | Path) -> bool:
    """Whether ``where`` names an object store (``s3://...``), not a local path (``file://`` is local)."""
    if isinstance(where, Path):
        return False
    scheme = urlparse(str(where)).scheme
    return len(scheme) > 1 and scheme != "file"  # one letter: a Windows drive (C:\...)


class Location:
    """A store's directory or object-store prefix (see the module docstring).

    Args:
        where: a local path, a ``file://`` URI, or an object-store URI.
        storage_options: options for the object store (ignored for a local path).
    """

    def __init__(self, where: str | Path, storage_options: Mapping[str, str] | None = None) -> None:
        text = str(where)
        if not is_uri(where) and text.startswith("file://"):
            where = text = unquote(urlparse(text).path)
        self.remote = is_uri(where)
        if self.remote and not urlparse(text).netloc:
            raise StoreError(text, "not a store URI: name the bucket and a prefix, e.g. s3://bucket/callqa")
        #: The local directory (None on an object store).
        self.path: Path | None = None if self.remote else Path(where)
        #: What delta-rs opens: the local path, or the URI without a trailing slash.
        self.uri = text.rstrip("/") if self.remote else str(self.path)
        #: How messages name the store.
        self.name = self.uri
        self.options: dict[str, str] = dict(storage_options or {}) if self.remote else {}

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    # -- Delta tables --------------------------------------------------------------
    def join(self, *parts: str) -> str:
        """The path or URI of ``parts`` inside the store (for delta-rs and messages)."""
        if self.path is not None:
            return str(self.path.joinpath(*parts))
        return "/".join([self.uri, *parts])

    @property
    def delta_options(self) -> dict[str, str] | None:
        """``storage_options`` for delta-rs (None for a local store: delta-rs is called exactly as before)."""
        return dict(self.options) if self.remote else None

    # -- pyarrow file system -------------------------------------------------------
    @cached_property
    def file_system(self) -> pafs.FileSystem:
        """The pyarrow file system of an object-store location.

        Raises:
            OSError, ValueError: the URI names no file system pyarrow knows, or it cannot be set up.
        """
        assert self.remote, "a local store uses plain file operations"
        if urlparse(self.uri).scheme in ("s3", "s3a"):
            return _s3_file_system(self.options)
        file_system, _path = pafs.FileSystem.from_uri(self.uri)
        return file_system

    def arrow_path(self, uri: str) -> str:
        """The pyarrow file system path of a URI inside this store (``s3://b/p/x`` -> ``b/p/x``)."""
        parsed = urlparse(uri)
        return unquote(f"{parsed.netloc}{parsed.path}").rstrip("/")

    def _arrow(self, relative: str) -> str:
        return self.arrow_path(self.join(relative) if relative else self.uri)

    # -- small files -----------------------------------------------------------------
    def is_file(self, relative: str) -> bool:
        if self.path is not None:
            return (self.path / relative).is_file()
        return self.file_system.get_file_info(self._arrow(relative)).type == pafs.FileType.File

    def read_text(self, relative: str) -> str:
        """A small file's text.

        Raises:
            FileNotFoundError: there is no such file; OSError: it cannot be read.
        """
        if self.path is not None:
            return (self.path / relative).read_text(encoding="utf-8")
        with self.file_system.open_input_stream(self._arrow(relative)) as handle:
            return bytes(handle.read()).decode("utf-8")

    def write_text(self, relative: str, text: str) -> None:
        """Write a small file (as a plain write on a local disk, one PUT on an object store)."""
        if self.path is not None:
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            return
        with self.file_system.open_output_stream(self._arrow(relative)) as handle:
            handle.write(text.encode("utf-8"))

    def write_json(self, relative: str, data: Any) -> None:
        """Write JSON so that readers see the old file or the new one, never half of it."""
        if self.path is not None:
            write_json_atomic(self.path / relative, data)
            return
        self.write_text(relative, json.dumps(data, ensure_ascii=False, indent=1, default=str))

    def file_names(self, relative: str) -> list[str]:
        """The names of the files in folder ``relative``, sorted ([] when it does not exist)."""
        if self.path is not None:
            folder = self.path / relative
            return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        found = self.file_system.get_file_info(pafs.FileSelector(self._arrow(relative), allow_not_found=True))
        return sorted(info.base_name for info in found if info.type == pafs.FileType.File)

    def entries(self) -> set[str] | None:
        """The names directly inside the store, or None when there is nothing there yet."""
        if self.path is not None:
            if not self.path.exists():
                return None
            return {entry.name for entry in self.path.iterdir()} if self.path.is_dir() else {""}
        found = self.file_system.get_file_info(pafs.FileSelector(self._arrow(""), allow_not_found=True))
        if not found:  # nothing under the prefix: is there a bucket at all?
            bucket = urlparse(self.uri).netloc
            if self.file_system.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise FileNotFoundError(f"no bucket {bucket!r} (create it first)")
        return {info.base_name for info in found} or None

    def bytes_under(self, relative: str) -> int:
        """Bytes of every file under folder ``relative``."""
        if self.path is not None:
            return sum(p.stat().st_size for p in (self.path / relative).rglob("*") if p.is_file())
        found = self.file_system.get_file_info(pafs.FileSelector(self._arrow(relative), recursive=True,
                                                                 allow_not_found=True))
        return sum(info.size or 0 for info in found if info.type == pafs.FileType.File)


def reason(exc: BaseException) -> str:
    """Why an object-store operation failed, as one line, with a hint where the cause is plain."""
    text = str(exc)
    lowered = text.lower()
    if "169.254.169.254" in text or "credential" in lowered or "invalidaccesskeyid" in lowered:
        text += (" (no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run "
                 "with an instance role)")
    return text


def _option(options: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    lowered = {key.lower(): value for key, value in options.items()}
    return next((lowered[name] for name in names if lowered.get(name)), None)


def _s3_file_system(options: Mapping[str, str]) -> pafs.S3FileSystem:
    """pyarrow's S3 file system at the endpoint, region and credentials delta-rs uses.

    As delta-rs does, ``options`` take precedence over the environment's
    ``AWS_*`` variables (pyarrow's constructor reads only the credentials
    from the environment itself, not the endpoint).
    """
    merged = {key.lower(): value for key, value in os.environ.items() if key.upper().startswith("AWS_")}
    merged.update({key.lower(): value for key, value in options.items()})
    kwargs: dict[str, Any] = {}
    endpoint = _option(merged, _S3_ENDPOINT)
    if endpoint:
        scheme, _, rest = endpoint.rpartition("://")
        allow_http = (_option(merged, _S3_HTTP) or "").lower() in ("1", "true", "yes", "on")
        kwargs["endpoint_override"] = rest.rstrip("/")
        kwargs["scheme"] = scheme or ("http" if allow_http else "https")
    for key, names in (("region", _S3_REGION), ("access_key", _S3_KEY), ("secret_key", _S3_SECRET),
                       ("session_token", _S3_TOKEN)):
        value = _option(merged, names)
        if value:
            kwargs[key] = value
    return pafs.S3FileSystem(**kwargs)


def write_json_atomic(target: Path, data: Any) -> None:
    """Write JSON to ``target`` via a temporary file and ``os.replace`` (never a half file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["Location", "is_uri", "reason", "write_json_atomic"]
