"""Find the configuration and lexicon files shipped with callqa.

They live at the top of the repository (``config/``, ``lexicons/``) and are
installed as the packages ``pipeline._config`` and ``pipeline._lexicons``, so
the same lookup works from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

Kind = Literal["config", "lexicons"]


def resource_dir(kind: Kind) -> Traversable:
    """The shipped directory of ``kind`` ("config" or "lexicons")."""
    return resources.files(f"pipeline._{kind}")


def read_resource_text(kind: Kind, name: str) -> str:
    """Read a shipped text file, e.g. ``read_resource_text("config", "default.toml")``."""
    return (resource_dir(kind) / name).read_text(encoding="utf-8")
