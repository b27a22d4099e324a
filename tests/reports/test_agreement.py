"""Agreement: κ equals scikit-learn's, Wilson equals scipy's, α matches Krippendorff's worked example."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from pipeline.reports.agreement import (
    alpha_table,
    cohen_kappa,
    compute_agreement,
    krippendorff_alpha,
    reviewer_pairs,
    rule_precision_of,
    wilson_interval,
)

from .sample_month import make_inputs


@pytest.mark.parametrize("seed", range(6))
def test_kappa_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = ["pass", "fail", "unsure"][: 2 + seed % 2]
    a = list(rng.choice(labels, 40))
    b = [x if rng.random() < 0.6 else str(rng.choice(labels)) for x in a]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_degenerate_and_perfect():
    assert cohen_kappa(["pass", "fail"], ["pass", "fail"]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["pass"] * 3, ["pass"] * 3))
    with pytest.raises(ValueError):
        cohen_kappa(["pass"], [])


def test_wilson_equals_scipy():
    low, high = wilson_interval([0, 1, 8, 20], [5, 2, 10, 20])
    for i, (k, n) in enumerate([(0, 5), (1, 2), (8, 10), (20, 20)]):
        interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low[i], high[i]) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert np.isnan(wilson_interval([0], [0])[0][0])


def test_krippendorff_nominal_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: alpha = 0.743
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
            [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    rows = [{"unit": f"u{j}", "reviewer": f"r{i}", "verdict": str(v)}
            for i, line in enumerate(data) for j, v in enumerate(line) if v is not None]
    assert krippendorff_alpha(pa.Table.from_pylist(rows), "unit") == pytest.approx(0.743, abs=5e-4)
    table = alpha_table(pa.Table.from_pylist(rows).rename_columns(["call_id", "reviewer", "verdict"]),
                        pa.table({"hit_id": pa.array([], pa.string())}))
    assert table.to_pylist() == [{"kind": "call", "reviewers": 4, "units": 11, "alpha": pytest.approx(0.743, abs=5e-4)}]


def test_pairs_and_system_on_the_sample_month(tmp_path):
    inputs = make_inputs(tmp_path / "s")
    result = compute_agreement(inputs)
    pairs = {(r["kind"], r["reviewer_a"], r["reviewer_b"]): r for r in result.pairs.to_pylist()}
    calls = pairs[("call", "r1", "r2")]  # c1, c2, c4: r1 pass/fail/fail, r2 pass/pass/fail
    assert calls["items"] == 3 and calls["kappa"] == pytest.approx(cohen_kappa_score(
        ["pass", "fail", "fail"], ["pass", "pass", "fail"]))
    assert pairs[("hit", "r1", "r2")]["items"] == 1 and math.isnan(pairs[("hit", "r1", "r2")]["kappa"])
    system = {(r["kind"], r["reviewer_a"]): r for r in result.system.to_pylist()}
    # r1 on c1..c4: pass fail fail fail; scorecard passed: c1 yes, c2 no, c3 yes, c4 no
    assert system[("scorecard", "r1")]["kappa"] == pytest.approx(cohen_kappa_score(
        ["pass", "fail", "fail", "fail"], ["pass", "fail", "pass", "fail"]))
    assert system[("scorecard", "r1")]["agreement"] == pytest.approx(0.75)
    assert result.alpha.num_rows == 0  # two reviewers: κ covers it


def test_reviewer_vs_classifier_grades(tmp_path):
    from pipeline.reports.agreement import reviewers_vs_system

    verdicts = pa.table({"call_id": ["c1", "c2", "c3"], "verdict": ["pass", "fail", "pass"],
                         "grade": ["A", "C", "B"], "reviewer": ["r"] * 3})
    features = pa.table({"call_id": ["c1", "c2", "c3"], "passed": [True, False, False],
                         "classifier_decision": ["A", "C", "A"]})
    rows = {r["kind"]: r for r in reviewers_vs_system(verdicts, features).to_pylist()}
    assert rows["classifier"]["kappa"] == pytest.approx(cohen_kappa_score(["A", "C", "B"], ["A", "C", "A"]))
    assert rows["scorecard"]["agreement"] == pytest.approx(2 / 3)


def test_reviewer_vs_scorecard_uses_the_scorecards_own_verdict():
    from pipeline.reports.agreement import reviewers_vs_system

    verdicts = pa.table({"call_id": ["c1", "c2", "c3", "c4"], "verdict": ["pass", "pass", "fail", "pass"],
                         "grade": ["A", "B", "D", ""], "reviewer": ["r"] * 4})
    # c2 needs review at 84/B (passed is false: only "pass" passes), c4 had no speech (no score)
    features = pa.table({"call_id": ["c1", "c2", "c3", "c4"], "passed": [True, False, False, False],
                         "score": [95.0, 84.0, 40.0, None],
                         "outcome": ["pass", "needs_review", "fail", "needs_listening"],
                         "outcome_reasons": [[], ["model_only:shirking"], ["scorecard_fail"], ["no_speech"]],
                         "classifier_decision": pa.nulls(4, pa.string())})
    row = {r["kind"]: r for r in reviewers_vs_system(verdicts, features).to_pylist()}["scorecard"]
    assert (row["items"], row["agreement"]) == (3, 1.0)  # c2: the scorecard passed it, as the reviewer did


def test_rule_precision_matches_the_verdicts_module(tmp_path):
    from pipeline.review import verdicts

    store = tmp_path / "s"
    make_inputs(store)
    ours = rule_precision_of(verdicts.chosen_hit_verdicts(store)).to_pylist()
    theirs = verdicts.rule_precision(store).to_pylist()
    assert [r["rule_id"] for r in ours] == [r["rule_id"] for r in theirs]
    for mine, module in zip(ours, theirs, strict=True):
        assert mine == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in module.items()}


def test_no_verdicts_gives_empty_tables():
    empty = pa.table({"call_id": pa.array([], pa.string()), "reviewer": pa.array([], pa.string()),
                      "verdict": pa.array([], pa.string())})
    assert reviewer_pairs(empty, "call_id", "call").num_rows == 0
    assert rule_precision_of(pa.table({"rule_id": pa.array([], pa.string()),
                                       "verdict": pa.array([], pa.string())})).num_rows == 0
