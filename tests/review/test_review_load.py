"""A short version of the load check (scripts/bench/review_load.py): concurrent reviewers lose no verdict."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "review_load.py"


@pytest.mark.slow
def test_twenty_reviewers_posting_at_once_lose_no_verdict_and_get_no_5xx():
    spec = importlib.util.spec_from_file_location("review_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["review_load"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    result = module.run_load(reviewers=20, seconds=3.0, calls=300)
    assert result.errors == ()
    assert result.acknowledged > 20  # every reviewer got verdicts through
    assert result.stored == result.acknowledged
    assert result.server_errors == 0
    assert set(result.statuses) == {200}
