"""Sampling plans: exact sizes and strata, exact inclusion probabilities, reproducible draws, queue files."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pytest

from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import parse_date, period_containing
from pipeline.reports.sampling import (
    SamplingError,
    SamplingPlan,
    allocate,
    build_sample,
    draw,
    read_queue,
    write_queue,
)

MONTH = period_containing(parse_date("2026-11-01"), "month")


def frame(teams: dict[str, int], agents_per_team: int = 2, targeted_every: int = 0) -> pa.Table:
    """call_ids c000.. ; team sizes as given; agents round-robin inside a team."""
    rows, i = [], 0
    for team, n in teams.items():
        for k in range(n):
            rows.append({"call_id": f"c{i:03d}", "team": team, "agent_id": f"{team}-a{k % agents_per_team}",
                         "score_band": "A" if k % 2 else "B",
                         "targeted_reason": "redline" if targeted_every and i % targeted_every == 0 else None})
            i += 1
    return pa.Table.from_pylist(rows)


def strata(table: pa.Table) -> dict[str, tuple[int, int, float]]:
    return {r["stratum"]: (r["population"], r["sample"], r["inclusion_probability"]) for r in table.to_pylist()}


def test_allocate_is_proportional_and_sums_exactly():
    assert allocate(10, {"a": 50, "b": 30, "c": 20}) == {"a": 5, "b": 3, "c": 2}
    assert allocate(7, {"a": 50, "b": 30, "c": 20}) == {"a": 4, "b": 2, "c": 1}  # 3.5, 2.1, 1.4 -> largest remainders
    assert sum(allocate(11, {"x": 7, "y": 7, "z": 7}).values()) == 11
    assert allocate(500, {"a": 3, "b": 2}) == {"a": 3, "b": 2}


def test_simple_random_sample_size_probability_and_weight():
    queue, table = draw(frame({"T1": 60, "T2": 40}), SamplingPlan("random", size=10, seed=1))
    assert queue.num_rows == 10 and len(set(queue["call_id"].to_pylist())) == 10
    assert strata(table) == {"all": (100, 10, 0.1)}
    assert queue["weight"].to_pylist() == [pytest.approx(10.0)] * 10
    assert set(queue["reason"].to_pylist()) == {"random"}


def test_same_seed_same_sample_other_seed_other_sample_any_row_order():
    data = frame({"T1": 60, "T2": 40})
    first = draw(data, SamplingPlan("random", fraction=0.2, seed=7))[0]["call_id"].to_pylist()
    shuffled = data.take(pa.array(list(range(99, -1, -1))))
    again = draw(shuffled.sort_by("call_id"), SamplingPlan("random", fraction=0.2, seed=7))[0]["call_id"].to_pylist()
    other = draw(data, SamplingPlan("random", fraction=0.2, seed=8))[0]["call_id"].to_pylist()
    assert len(first) == 20 and first == again and sorted(first) != sorted(other)


def test_stratified_by_team_total_size_per_stratum_and_fraction():
    data = frame({"T1": 50, "T2": 30, "T3": 20})
    queue, table = draw(data, SamplingPlan("stratified", by="team", size=10, seed=3))
    assert strata(table) == {"T1": (50, 5, 0.1), "T2": (30, 3, 0.1), "T3": (20, 2, 0.1)}
    picked = queue.to_pylist()
    assert {r["stratum"]: sum(1 for p in picked if p["stratum"] == r["stratum"]) for r in picked} == \
        {"T1": 5, "T2": 3, "T3": 2}
    teams = dict(zip(data["call_id"].to_pylist(), data["team"].to_pylist(), strict=True))
    assert all(teams[r["call_id"]] == r["stratum"] for r in picked)  # drawn inside its stratum
    _, table = draw(data, SamplingPlan("stratified", by="team", per_stratum=4, seed=3))
    assert strata(table) == {"T1": (50, 4, 0.08), "T2": (30, 4, 4 / 30), "T3": (20, 4, 0.2)}
    _, table = draw(data, SamplingPlan("stratified", by="team", fraction=0.25, seed=3))
    assert {k: v[1] for k, v in strata(table).items()} == {"T1": 13, "T2": 8, "T3": 5}  # 12.5, 7.5, 5 rounded up
    queue, table = draw(data, SamplingPlan("stratified", by="team", stratum_sizes={"T1": 2, "T3": 6}, seed=3))
    assert {k: v[1] for k, v in strata(table).items()} == {"T1": 2, "T2": 0, "T3": 6} and queue.num_rows == 8


def test_stratified_by_score_band():
    _, table = draw(frame({"T1": 10}), SamplingPlan("stratified", by="score_band", per_stratum=2, seed=0))
    assert strata(table) == {"A": (5, 2, 0.4), "B": (5, 2, 0.4)}


def test_targeted_takes_every_flagged_call_plus_a_share_of_the_rest():
    data = frame({"T1": 100}, targeted_every=10)  # c000, c010, ... c090 are red-line
    queue, table = draw(data, SamplingPlan("targeted", fraction=0.1, seed=2))
    assert strata(table) == {"targeted": (10, 10, 1.0), "rest": (90, 9, 0.1)}
    targeted = {r["call_id"] for r in queue.to_pylist() if r["stratum"] == "targeted"}
    assert targeted == {f"c{i:03d}" for i in range(0, 100, 10)}
    assert {r["reason"] for r in queue.to_pylist()} == {"redline", "rest_random"}
    assert all(r["weight"] == 1.0 for r in queue.to_pylist() if r["stratum"] == "targeted")


def test_minimum_per_agent_keeps_probabilities_exact():
    # 40 calls of T1 over 4 agents (10 each) and 10 of T2 over 2 agents (5 each)
    data = frame({"T1": 40, "T2": 10}, agents_per_team=4)
    queue, table = draw(data, SamplingPlan("random", size=5, min_per_agent=2, seed=4))
    per_agent = {}
    agent_of = dict(zip(data["call_id"].to_pylist(), data["agent_id"].to_pylist(), strict=True))
    for call in queue["call_id"].to_pylist():
        per_agent[agent_of[call]] = per_agent.get(agent_of[call], 0) + 1
    assert per_agent == {f"T1-a{k}": 2 for k in range(4)} | {"T2-a0": 2, "T2-a1": 2, "T2-a2": 2, "T2-a3": 2}
    for stratum, (population, sample, probability) in strata(table).items():
        assert probability == pytest.approx(sample / population), stratum
    assert any(r.endswith("+min_per_agent") for r in queue["reason"].to_pylist())


def test_targeted_calls_count_toward_the_agent_minimum():
    data = frame({"T1": 20}, agents_per_team=2, targeted_every=4)  # a0 has c000,c004,...,c016 targeted (5)
    queue, table = draw(data, SamplingPlan("targeted", fraction=0.05, min_per_agent=3, seed=0))
    sizes = {k: v[1] for k, v in strata(table).items()}
    assert sizes == {"targeted": 5, "rest / T1-a0": 0, "rest / T1-a1": 3}


def test_plan_validation_messages():
    with pytest.raises(ValueError, match="exactly one of"):
        SamplingPlan("random", size=3, fraction=0.1)
    with pytest.raises(ValueError, match="needs by"):
        SamplingPlan("stratified", size=3)
    with pytest.raises(ValueError, match="fraction must be"):
        SamplingPlan("targeted", fraction=1.5)


def test_queue_file_and_design(tmp_path):
    features = pa.Table.from_pylist([
        {"call_id": f"c{i}", "call_date": "2026-11-0" + str(1 + i % 5), "team": "=HYPERLINK(1)" if i < 3 else "T2",
         "agent_id": "a", "grade": "A", "redline": i == 0} for i in range(10)])
    inputs = ReportInputs.from_tables(features)
    sample = build_sample(inputs, MONTH, SamplingPlan("stratified", by="team", per_stratum=2, seed=5), "q1", "S")
    path = write_queue(sample, tmp_path / "_review" / "queues" / "q1.csv")
    with path.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["call_id", "stratum", "inclusion_probability", "weight", "reason"]
    assert len(written) == 4
    assert {r["stratum"] for r in written} == {"'=HYPERLINK(1)", "T2"}  # hostile metadata neutralised
    assert {(r["inclusion_probability"], r["weight"]) for r in written} == \
        {("0.6666666667", "1.5"), ("0.2857142857", "3.5")}
    design = json.loads((tmp_path / "_review" / "queues" / "q1.design.json").read_text(encoding="utf-8"))
    assert (design["design"], design["by"], design["seed"], design["population"], design["sample_size"]) == \
        ("stratified", "team", 5, 10, 4)
    assert design["period"]["label"] == "2026-11" and len(design["strata"]) == 2
    table, read_design = read_queue(path)
    assert table["call_id"].to_pylist() == [r["call_id"] for r in written] and read_design["name"] == "q1"
    with pytest.raises(SamplingError, match="already exists"):
        write_queue(sample, path)


def test_empty_period_is_one_clear_error():
    inputs = ReportInputs.from_tables(pa.Table.from_pylist([{"call_id": "c", "call_date": "2026-10-01"}]))
    with pytest.raises(SamplingError, match="no calls in month 2026-11"):
        build_sample(inputs, MONTH, SamplingPlan("random", size=1), "q", "store")
