"""Report numbers against values computed by hand from sample_month.py's calls."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import parse_date, period_containing, periods_ending
from pipeline.reports.report import ReportSettings, build_report, report_period

from .sample_month import WEEK, feature_rows, make_inputs

SETTINGS = ReportSettings(intervention_score=70.0, intervention_min_calls=2, trend_periods=3,
                          common_problem_agent_share=0.5, review_url="http://qa.example:8000/")


@pytest.fixture
def report(inputs):
    return build_report(inputs, WEEK, SETTINGS)


def rows(report, name, key):
    return {r[key]: r for r in report.tables[name].to_pylist()}


def test_periods():
    assert WEEK.label == "2026-W47" and WEEK.start_text == "2026-11-16" and WEEK.end_text == "2026-11-23"
    assert WEEK.previous().label == "2026-W46"
    month = period_containing(parse_date("2026-12-31"), "month")
    assert (month.label, month.start_text, month.end_text, month.previous().label) == \
        ("2026-12", "2026-12-01", "2027-01-01", "2026-11")
    assert [p.label for p in periods_ending(period_containing(parse_date("2026-03-01"), "day"), 3)] == \
        ["2026-02-27", "2026-02-28", "2026-03-01"]


def test_overall_and_teams_with_change_from_previous_week(report):
    overall = report.tables["overall"].to_pylist()[0]
    assert overall["calls"] == 6 and overall["pass_rate"] == pytest.approx(2 / 6)  # c3 needs review: not passed
    assert overall["mean_score"] == pytest.approx(400 / 6)
    assert overall["prev_pass_rate"] == pytest.approx(2 / 3) and overall["prev_mean_score"] == pytest.approx(230 / 3)
    # c3's red line is unconfirmed (only the text model heard it): counted, and counted apart
    assert (overall["fatal_calls"], overall["redline_calls"], overall["redline_unconfirmed_calls"],
            overall["review_calls"]) == (1, 2, 1, 2)
    teams = rows(report, "teams", "team")
    t1, t2 = teams["T1"], teams["T2"]
    assert (t1["calls"], t1["pass_rate"], t1["mean_score"]) == (3, pytest.approx(1 / 3), pytest.approx(245 / 3))
    assert (t1["grade_A"], t1["grade_B"], t1["grade_C"], t1["grade_D"]) == \
        (pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3), 0.0)
    assert t1["pass_rate_change"] == pytest.approx(1 / 3 - 1) and t1["mean_score_change"] == pytest.approx(245 / 3 - 80)
    assert t2["pass_rate"] == pytest.approx(1 / 3) and t2["prev_pass_rate"] == pytest.approx(1 / 2)
    assert t2["mean_score_change"] == pytest.approx(155 / 3 - 75)


def test_agents_and_intervention(report):
    agents = rows(report, "agents", "agent_id")
    assert {a: (r["team"], r["calls"], r["mean_score"]) for a, r in agents.items()} == {
        "a1": ("T1", 2, 80.0), "a2": ("T1", 1, 85.0), "a3": ("T2", 2, 30.0), "a4": ("T2", 1, 95.0)}
    assert agents["a2"]["prev_calls"] == 0 and agents["a2"]["pass_rate_change"] is None
    # a3 is below 70 with 2 scored calls; a1 (80) is not below; nobody else has 2 calls
    assert [(r["agent_id"], r["mean_score"], r["prev_mean_score"]) for r in report.tables["intervention"].to_pylist()] \
        == [("a3", 30.0, 50.0)]


def test_problem_counts_by_rule_category_severity(report):
    by_rule = report.tables["problems_by_rule"].to_pylist()
    # the suspect hit on c4 and the info hit on c3 are not problems
    assert [(r["rule_id"], r["hits"], r["calls"], r["agents"]) for r in by_rule] == [
        ("opening.greeting", 3, 3, 3), ("forbidden.buqingchu", 3, 2, 1), ("abuse.qusi", 2, 1, 1)]
    forbidden = by_rule[1]
    assert forbidden["call_rate"] == pytest.approx(2 / 6) and forbidden["prev_call_rate"] == pytest.approx(1 / 3)
    assert forbidden["category_name"] == "服务禁语" and forbidden["call_rate_change"] == pytest.approx(0.0)
    categories = rows(report, "problems_by_category", "category")
    assert (categories["redline_abuse"]["category_name"], categories["redline_abuse"]["fatal_hits"]) == ("红线/辱骂", 2)
    severity = rows(report, "problems_by_severity", "severity")
    assert (severity["fatal"]["hits"], severity["fatal"]["calls"], severity["fatal"]["severity_name"]) == (2, 1, "致命")
    assert severity["non_fatal"]["call_rate"] == pytest.approx(4 / 6)
    assert severity["non_fatal"]["call_rate_change"] == pytest.approx(4 / 6 - 1 / 3)


def test_copc_error_rates(report):
    copc = rows(report, "copc", "error_class")
    assert (copc["customer"]["error_calls"], copc["customer"]["hits"]) == (2, 5)
    assert copc["customer"]["error_rate"] == pytest.approx(2 / 6)
    assert copc["customer"]["accuracy"] == pytest.approx(4 / 6)
    assert copc["business"]["error_rate"] == pytest.approx(1 / 6) and copc["business"]["hits"] == 3
    assert copc["compliance"]["error_rate"] == pytest.approx(1 / 6) and copc["compliance"]["hits"] == 0
    assert copc["customer"]["prev_error_rate"] == 0.0 and copc["customer"]["class_name"] == "顾客关键错误"


def test_common_vs_individual_problems_name_the_agents(report):
    table = report.tables["common_individual"].to_pylist()
    assert [(r["rule_id"], r["kind"], r["agents"], r["active_agents"], r["named_agents"]) for r in table] == [
        ("opening.greeting", "共性", 3, 4, "a1 (1), a2 (1), a3 (1)"),
        ("forbidden.buqingchu", "个性", 1, 4, "a1 (2)"),
        ("abuse.qusi", "个性", 1, 4, "a3 (1)")]
    assert table[1]["top_agent_share"] == 1.0


def test_trend_over_last_periods(report):
    trend = report.tables["trend"].to_pylist()
    assert [(r["period"], r["calls"]) for r in trend] == [("2026-W45", 0), ("2026-W46", 3), ("2026-W47", 6)]
    assert trend[0]["pass_rate"] is None
    assert trend[2]["problems_per_call"] == pytest.approx(8 / 6)
    assert trend[1]["problems_per_call"] == pytest.approx(1 / 3)
    assert trend[2]["redline_rate"] == pytest.approx(2 / 6)
    assert trend[2]["redline_unconfirmed_rate"] == pytest.approx(1 / 6) and trend[1]["redline_unconfirmed_rate"] == 0.0


def test_flagged_calls_link_to_the_review_app(report):
    # the confirmed red line (a rule heard it, the call failed) comes before the unconfirmed one
    assert [(r["call_id"], r["redline_status"], r["outcome"], r["link"])
            for r in report.tables["redline_calls"].to_pylist()] == [
        ("c4", "confirmed", "fail", "http://qa.example:8000/calls/c4"),
        ("c3", "unconfirmed", "needs_review", "http://qa.example:8000/calls/c3")]
    assert [(r["call_id"], r["outcome"]) for r in report.tables["review_calls"].to_pylist()] == [
        ("c3", "needs_review"), ("c5", "needs_listening")]
    assert (report.facts["redline_total"], report.facts["redline_unconfirmed_total"],
            report.facts["review_total"]) == (2, 1, 2)


def test_review_status_and_rule_precision(report):
    summary = {r["metric"]: r["value"] for r in report.tables["review_summary"].to_pylist()}
    assert summary["reviewed_calls"] == 4 and summary["reviewed_share"] == pytest.approx(4 / 6)
    # chosen verdicts (r2 is later): c1 pass, c2 pass, c3 fail, c4 fail
    assert summary["reviewer_fail_rate"] == pytest.approx(0.5) and summary["scorecard_agreement"] == pytest.approx(0.5)
    assert (summary["hits"], summary["reviewed_hits"]) == (11, 3)
    precision = rows(report, "rule_precision", "rule_id")
    assert (precision["forbidden.buqingchu"]["confirmed"], precision["forbidden.buqingchu"]["reviewed"]) == (1, 2)
    assert precision["abuse.qusi"]["share"] == 1.0


def test_pipeline_health(report):
    health = {r["metric"]: r["value"] for r in report.tables["health"].to_pylist()}
    # c1 failed once then succeeded: processed; c7 failed for good
    assert (health["received"], health["processed"], health["failed"]) == (7, 6, 1)
    assert health["audio_ok_h"] == pytest.approx(1260 / 3600) and health["audio_h"] == pytest.approx(1290 / 3600)
    assert health["suspect_share"] == pytest.approx(0.1) and health["not_clean"] == 4
    assert health["agent_coverage"] is None and health["customer_coverage"] is None  # not in the store yet
    assert report.tables["failures"].to_pylist() == [
        {"stage": "ingest", "error_type": "UnsupportedAudioError", "calls": 1}]
    versions = {(r["kind"], r["version"]): r["calls"] for r in report.tables["versions"].to_pylist()}
    assert versions[("model", "m1")] == 6 and versions[("callqa", "0.1.0")] == 7


def test_missing_outcome_column_reads_as_not_available(tmp_path):
    inputs = make_inputs(tmp_path / "s", with_outcome=False, verdicts_too=False)
    report = build_report(inputs, WEEK, SETTINGS)
    assert "outcome" in report.missing
    assert report.tables["review_calls"].num_rows == 0
    health = {r["metric"]: r["value"] for r in report.tables["health"].to_pylist()}
    assert health["not_clean"] is None


def test_each_call_counts_once_when_several_models_analysed_it():
    rows_ = feature_rows()
    other = {**rows_[0], "model_id": "large-v3", "score": 10.0, "passed": False}
    inputs = ReportInputs.from_tables(pa.Table.from_pylist([*rows_, other]))
    assert inputs.analyses_dropped == 1
    report = build_report(inputs, WEEK, SETTINGS)
    assert report.tables["overall"].to_pylist()[0]["calls"] == 6  # m1, the most common model, is kept
    assert report.tables["overall"].to_pylist()[0]["mean_score"] == pytest.approx(400 / 6)


def test_report_period_defaults_to_latest_date(inputs):
    assert report_period(inputs, "month", None).label == "2026-11"
    assert report_period(inputs, "day", "2026-11-17").label == "2026-11-17"
    with pytest.raises(ValueError, match="not a date"):
        report_period(inputs, "day", "17/11/2026")
