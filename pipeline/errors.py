"""Exceptions the library raises; the CLI turns each into one clear line.

Each carries the file it is about and a reason a person understands.
"""

from __future__ import annotations

import re

# Terminal colour codes some libraries put in their messages (delta-rs: "\x1b[31m↳\x1b[0m").
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: str) -> str:
    """``text`` as one line: colour codes dropped, line breaks and runs of blanks collapsed to one space."""
    return " ".join(_ANSI.sub("", text).split())


class CallqaError(Exception):
    """Base class: ``str(error)`` is the one line the CLI prints (always one line, whatever a library said)."""

    def __init__(self, path: str, reason: str) -> None:
        reason = one_line(reason)
        shown = path.replace("\n", "\\n")  # a file name may hold a line break; the message may not
        super().__init__(f"{shown}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Pickle with both arguments, so the error crosses process boundaries (workers, Ray) intact."""
        return (type(self), (self.path, self.reason))


class ConfigError(CallqaError):
    """A configuration file is missing, malformed or has a wrong key/value."""


class UnsupportedAudioError(CallqaError):
    """An audio file cannot be used: empty, not audio, truncated, too long..."""


class ManifestError(CallqaError):
    """An input manifest (CSV/Parquet) is malformed."""


class ModelError(CallqaError):
    """A speech or classifier model is missing, corrupt or incompatible."""


class LexiconError(CallqaError):
    """A rule set file is malformed; the reason names the line and key."""


class StoreError(CallqaError):
    """The output store cannot be read or written (full disk, bad schema...)."""
