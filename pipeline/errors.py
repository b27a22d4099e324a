"""Exceptions the library raises; the CLI turns each into one clear line.

Each carries the file it is about and a reason a person understands.
"""

from __future__ import annotations


class CallqaError(Exception):
    """Base class: ``str(error)`` is the one line the CLI prints."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


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
