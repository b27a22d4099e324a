"""A small, hand-computable QA month for the report tests.

Report period: ISO week 2026-W47 (2026-11-16 .. 2026-11-22); previous week
2026-W46. Teams T1 (agents a1, a2) and T2 (a3, a4).

    call date        team agent score grade passed fatal redline copc(c,b,comp) outcome          suspect_share
    c1   2026-11-16  T1   a1    90    A     yes    -     -       ok ok ok       pass             0.0
    c2   2026-11-17  T1   a1    70    C     no     -     -       X  ok ok       fail             0.1
    c3   2026-11-18  T1   a2    85    B     no     -     1 (*)   ok X  ok       needs_review     0.2
    c4   2026-11-19  T2   a3     0    D     no     yes   2 hits  X  ok ok       fail             0.0
    c5   2026-11-20  T2   a3    60    C     no     -     -       ok ok X        needs_listening  0.3
    c6   2026-11-22  T2   a4    95    A     yes    -     -       ok ok ok       pass             0.0
    p1   2026-11-10  T1   a1    80    B     yes    (previous week)
    p2   2026-11-12  T2   a3    50    D     no
    p3   2026-11-14  T2   a4   100    A     yes

(*) c3's red line is unconfirmed: only the text model heard it (reason
redline_model_only), so the call is in the review queue, not failed.

Hits (rule, category, severity, class): c1 forbidden x1; c2 forbidden x2 +
opening x1; c3 opening x1 + politeness (info) + the text model (redline_abuse,
info); c4 abuse (fatal) x2 + forbidden (suspect); c5 opening x1; p2 forbidden x1.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.reports.inputs import ReportInputs
from pipeline.reports.periods import parse_date, period_containing

CALLS = [
    # call, date, team, agent, score, grade, passed, fatal, redline_hits, copc (c, b, comp), outcome, suspect, dur
    ("c1", "2026-11-16", "T1", "a1", 90.0, "A", True, False, 0, (True, True, True), "pass", 0.0, 60.0),
    ("c2", "2026-11-17", "T1", "a1", 70.0, "C", False, False, 0, (False, True, True), "fail", 0.1, 120.0),
    ("c3", "2026-11-18", "T1", "a2", 85.0, "B", False, False, 1, (True, False, True), "needs_review", 0.2, 180.0),
    ("c4", "2026-11-19", "T2", "a3", 0.0, "D", False, True, 2, (False, True, True), "fail", 0.0, 240.0),
    ("c5", "2026-11-20", "T2", "a3", 60.0, "C", False, False, 0, (True, True, False), "needs_listening", 0.3, 300.0),
    ("c6", "2026-11-22", "T2", "a4", 95.0, "A", True, False, 0, (True, True, True), "pass", 0.0, 360.0),
    ("p1", "2026-11-10", "T1", "a1", 80.0, "B", True, False, 0, (True, True, True), "pass", 0.0, 60.0),
    ("p2", "2026-11-12", "T2", "a3", 50.0, "D", False, False, 0, (True, True, True), "fail", 0.0, 60.0),
    ("p3", "2026-11-14", "T2", "a4", 100.0, "A", True, False, 0, (True, True, True), "pass", 0.0, 60.0),
]
FORBIDDEN = ("forbidden.buqingchu", "forbidden_phrase", "non_fatal", "customer")
OPENING = ("opening.greeting", "opening", "non_fatal", "business")
POLITE = ("politeness.missing", "politeness", "info", "customer")
MODEL = ("model.redline_text", "redline_abuse", "info", "customer")
ABUSE = ("abuse.qusi", "redline_abuse", "fatal", "customer")
HITS = [  # hit_id, call, rule, suspect
    ("h1", "c1", FORBIDDEN, False), ("h2", "c2", FORBIDDEN, False), ("h3", "c2", FORBIDDEN, False),
    ("h4", "c2", OPENING, False), ("h5", "c3", OPENING, False), ("h6", "c3", POLITE, False),
    ("h12", "c3", MODEL, False),
    ("h7", "c4", ABUSE, False), ("h8", "c4", ABUSE, False), ("h9", "c4", FORBIDDEN, True),
    ("h10", "c5", OPENING, False), ("h11", "p2", FORBIDDEN, False),
]
WEEK = period_containing(parse_date("2026-11-22"), "week")
VERSIONS = {"config_hash": "cfg1", "model_id": "m1", "rules_version": "r1"}


def feature_rows(with_outcome: bool = True) -> list[dict]:
    rows = []
    for (call, date, team, agent, score, grade, passed, fatal, redline_hits, copc, outcome, suspect,
         duration) in CALLS:
        row = {"call_id": call, "call_date": date, **VERSIONS, "team": team, "agent_id": agent,
               "started_at": f"{date}T10:00:00+08:00", "duration_s": duration, "score": score, "grade": grade,
               "passed": passed, "fatal_failed": fatal, "failed_items": [] if passed else ["x"],
               "redline": redline_hits > 0, "redline_hits": redline_hits, "copc_customer_pass": copc[0],
               "copc_business_pass": copc[1], "copc_compliance_pass": copc[2], "suspect_utterance_share": suspect,
               "scorecard_version": "sc1"}
        if with_outcome:
            # a scorecard fail carries scorecard_fail, as the scoring stage writes it
            reasons = {"pass": [], "fail": ["scorecard_fail"]}.get(outcome, [f"{outcome}_why"])
            if outcome == "needs_review" and redline_hits:
                reasons = ["redline_model_only"]
            row.update(outcome=outcome, outcome_reasons=reasons)
        rows.append(row)
    return rows


def hit_rows() -> list[dict]:
    return [{"hit_id": hit, "call_id": call, **VERSIONS, "rule_id": rule[0], "category": rule[1],
             "severity": rule[2], "error_class": rule[3], "suspect": suspect}
            for hit, call, rule, suspect in HITS]


def call_rows() -> list[dict]:
    rows = [{"call_id": c[0], "call_date": c[1], "status": "ok", "error_type": None, "duration_s": c[12],
             "callqa_version": "0.1.0"}
            for c in CALLS]
    # c1 failed once before it succeeded: not a failure; c7 failed for good.
    rows.append({"call_id": "c1", "call_date": "2026-11-16", "status": "failed", "error_type": "TimeoutError",
                 "duration_s": None, "callqa_version": "0.1.0"})
    rows.append({"call_id": "c7", "call_date": "2026-11-21", "status": "failed",
                 "error_type": "UnsupportedAudioError", "duration_s": 30.0, "callqa_version": "0.1.0"})
    return rows


def error_rows() -> list[dict]:
    return [{"call_id": "c7", "call_date": "2026-11-21", "stage": "ingest", "error_type": "UnsupportedAudioError"}]


def write_verdicts(store_root: Path) -> None:
    """r1 and r2 judge calls and hits (r2 always after r1, so r2's verdict is the chosen one)."""
    from pipeline.review import verdicts

    conn = verdicts.connect(store_root)
    try:
        for call, verdict in (("c1", "pass"), ("c2", "fail"), ("c3", "fail"), ("c4", "fail")):
            verdicts.record_call_verdict(conn, call_id=call, verdict=verdict, reviewer="r1")
        for call, verdict in (("c1", "pass"), ("c2", "pass"), ("c4", "fail")):
            verdicts.record_call_verdict(conn, call_id=call, verdict=verdict, reviewer="r2")
        for hit, call, rule, verdict, reviewer in (("h1", "c1", FORBIDDEN, "confirmed", "r1"),
                                                   ("h2", "c2", FORBIDDEN, "rejected", "r1"),
                                                   ("h7", "c4", ABUSE, "confirmed", "r1"),
                                                   ("h7", "c4", ABUSE, "confirmed", "r2")):
            verdicts.record_hit_verdict(conn, call_id=call, hit_id=hit, rule_id=rule[0], rules_version="r1",
                                        verdict=verdict, reviewer=reviewer)
    finally:
        conn.close()


def make_inputs(store_root: Path, with_outcome: bool = True, verdicts_too: bool = True,
                queues: tuple[Path, ...] = ()) -> ReportInputs:
    from pipeline.review import verdicts

    if verdicts_too:
        write_verdicts(store_root)
    return ReportInputs.from_tables(
        pa.Table.from_pylist(feature_rows(with_outcome)), pa.Table.from_pylist(hit_rows()),
        pa.Table.from_pylist(call_rows()), pa.Table.from_pylist(error_rows()),
        hit_verdicts=verdicts.current_hit_verdicts(store_root),
        chosen_hit_verdicts=verdicts.chosen_hit_verdicts(store_root),
        call_verdicts=verdicts.current_call_verdicts(store_root),
        chosen_call_verdicts=verdicts.chosen_call_verdicts(store_root), queues=queues)
