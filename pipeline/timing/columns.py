"""Declarations of the per-call features the timing detectors emit.

Each detector module declares the features it emits in a ``FEATURES`` tuple
(name with its unit, type, description); :data:`pipeline.timing.detect.TIMING_FEATURES`
gathers them, :func:`pipeline.timing.detect.detect_timing` refuses a key that
is not declared, and the features table (:mod:`pipeline.scoring.features`)
builds its typed, documented timing columns from the same declarations. A
name is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["float", "int", "category"]


@dataclass(frozen=True)
class Feature:
    """One timing feature: ``name`` (unit in the name), ``kind`` and a one-line description."""

    name: str
    kind: Kind
    doc: str


def per_role(template: str, kind: Kind, doc: str, roles: tuple[str, ...] = ("agent", "customer")) -> list[Feature]:
    """The same feature for several roles: ``template`` and ``doc`` hold ``{role}`` / ``{Role}``."""
    return [Feature(template.format(role=r), kind, doc.format(role=r, Role=r.capitalize())) for r in roles]


__all__ = ["Feature", "Kind", "per_role"]
