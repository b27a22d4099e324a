"""Where callqa finds its shipped files and keeps its cache.

Shipped files live at the top of the repository (``config/``, ``lexicons/``,
``models/``) and are installed as the packages ``pipeline._config``,
``pipeline._lexicons`` and ``pipeline._models``, so the same lookup works from
a checkout, an editable install and a wheel. A configuration value written
``callqa:FOLDER/NAME`` names such a shipped file by its place in the repository
(``callqa:config/scorecard.toml``, ``callqa:lexicons``,
``callqa:models/redline_text``); anything else is a path.

The cache (the assembled embedded Whisper model, jieba's dictionary cache)
is ``$CALLQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/callqa``, else
``~/.cache/callqa``: one variable for everything.
"""

from __future__ import annotations

import os
import stat
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

Kind = Literal["config", "lexicons", "models"]
#: Prefix of a configuration value that names a file shipped with callqa.
SHIPPED_PREFIX = "callqa:"


def resource_dir(kind: Kind) -> Traversable:
    """The shipped directory of ``kind`` ("config", "lexicons" or "models")."""
    return resources.files(f"pipeline._{kind}")


def read_resource_text(kind: Kind, name: str) -> str:
    """Read a shipped text file, e.g. ``read_resource_text("config", "default.toml")``."""
    return (resource_dir(kind) / name).read_text(encoding="utf-8")


def is_shipped(value: str) -> bool:
    """Whether a configuration value names a shipped file (``callqa:NAME``)."""
    return value.startswith(SHIPPED_PREFIX)


def shipped_name(value: str) -> str:
    """``NAME`` of a ``callqa:NAME`` value."""
    return value[len(SHIPPED_PREFIX):]


def resolve(value: str) -> Path:
    """The file or directory a configuration value names: shipped (``callqa:FOLDER[/NAME]``) or a path.

    Raises:
        ValueError: a ``callqa:`` value whose folder is not config, lexicons or models.
    """
    if not is_shipped(value):
        return Path(value).expanduser()
    folder, _, rest = shipped_name(value).partition("/")
    if folder not in ("config", "lexicons", "models"):
        raise ValueError(f"{value!r}: shipped files live in callqa:config/, callqa:lexicons/ or callqa:models/")
    base = Path(str(resource_dir(folder)))  # type: ignore[arg-type]
    return base / rest if rest else base


class NotARegularFile(OSError):
    """A path names a FIFO, a device or a folder where a file was expected."""

    def __str__(self) -> str:
        return "not a regular file (a FIFO, device or folder): reading it could wait forever"


def read_text_file(path: str | Path) -> str:
    """Read a UTF-8 text file, refusing anything that is not a regular file (a FIFO would block forever).

    Raises:
        FileNotFoundError: nothing is there.
        NotARegularFile: a FIFO, device or folder is there.
        OSError, UnicodeDecodeError: it cannot be read as UTF-8 text.
    """
    target = Path(path)
    if not stat.S_ISREG(target.stat().st_mode):
        raise NotARegularFile()
    return target.read_text(encoding="utf-8")


def cache_root() -> Path:
    """callqa's cache directory: ``$CALLQA_CACHE_DIR``, ``$XDG_CACHE_HOME/callqa`` or ``~/.cache/callqa``."""
    configured = os.environ.get("CALLQA_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "callqa"


__all__ = [
    "SHIPPED_PREFIX", "NotARegularFile", "cache_root", "is_shipped", "read_resource_text", "read_text_file", "resolve",
    "resource_dir", "shipped_name",
]
