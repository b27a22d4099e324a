"""Fixtures of the report tests (data in sample_month.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import Period

from .sample_month import WEEK, make_inputs


@pytest.fixture
def inputs(tmp_path: Path) -> ReportInputs:
    return make_inputs(tmp_path / "store")


@pytest.fixture
def week() -> Period:
    return WEEK
