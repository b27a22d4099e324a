"""The versions that make a stored result reproducible, as typed columns on every row.

A call's stored result depends on its audio (``calls.audio_sha256``), the
configuration (:attr:`Versions.config_hash`), the code's analysis
(:data:`ANALYSIS_VERSION`), the speech model, the rule sets, the timing
detectors and the red-line text model. Each is its own column, so a data
scientist can filter or group on any of them without parsing a joined string.
The scorecard and classifier that scored a call are columns of ``features``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

#: Bump when a release changes results for the same audio and configuration
#: (a constant, a fix in a detector): calls done with another analysis version
#: are redone by ``callqa run`` instead of mixing old and new rows.
ANALYSIS_VERSION = "2026.11.15"
#: Stands for a stage that did not run (no transcription, no red-line model).
NONE = "none"

_DICT = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class Versions:
    """Everything a call's analysis depended on, besides its audio."""

    config_hash: str
    analysis_version: str
    asr_model: str
    rules_version: str
    timing_version: str
    redline_model: str

    def columns(self) -> dict[str, str]:
        """The version columns of a row."""
        return asdict(self)

    def detector_versions(self) -> tuple[str, ...]:
        """Versions a hit's ``detector_version`` can take in this analysis (those that ran)."""
        return tuple(v for v in (self.rules_version, self.timing_version, self.redline_model) if v != NONE)


def _field(name: str, doc: str) -> pa.Field:
    return pa.field(name, _DICT, nullable=False, metadata={"doc": doc, "group": "key"})


#: The version columns, in this order, on every table.
VERSION_FIELDS: tuple[pa.Field, ...] = (
    _field("config_hash", "Hash of the full configuration used (callqa config)."),
    _field("analysis_version", "callqa's analysis version (bumped when a release changes results)."),
    _field("asr_model", "Speech model id (name@checksum), or 'none' without transcription."),
    _field("rules_version", "Rule sets' version (file versions + content hash), or 'none'."),
    _field("timing_version", "Timing detectors' version."),
    _field("redline_model", "Red-line text model version (redline_text@hash), or 'none'."),
)
VERSION_COLUMNS: tuple[str, ...] = tuple(f.name for f in VERSION_FIELDS)


__all__ = ["ANALYSIS_VERSION", "NONE", "VERSION_COLUMNS", "VERSION_FIELDS", "Versions"]
