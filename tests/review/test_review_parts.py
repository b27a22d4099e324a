"""Pure parts of the review app: timeline intervals, queue order and filters, ranges, PII spans, redirects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.review.audio import RangeNotSatisfiable, parse_range, pii_spans
from pipeline.review.calls import highlight, rank_hits
from pipeline.review.queue import QueueFilters
from pipeline.review.security import Session, Sessions, csrf_ok, safe_next
from pipeline.review.snapshot import TIERS, derive_outcome, priority_order
from pipeline.review.timeline import build_timeline, pack_hits
from pipeline.spans import intersect, subtract


def test_subtract_and_intersect_spans():
    assert subtract([(0, 10), (20, 30)], [(2, 3), (5, 22), (29, 40)]) == [(0, 2), (3, 5), (22, 29)]
    assert subtract([(0, 5)], []) == [(0, 5)]
    assert subtract([(0, 5)], [(0, 5)]) == []
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert intersect([(0, 1)], [(1, 2)]) == []


def test_timeline_finds_untranscribed_speech_silences_and_overlaps():
    segments = [{"role": "agent", "start_s": 0.0, "end_s": 4.0}, {"role": "agent", "start_s": 10.0, "end_s": 12.0},
                {"role": "customer", "start_s": 3.5, "end_s": 6.0}]
    utterances = [{"role": "agent", "start_s": 0.2, "end_s": 3.9}, {"role": "customer", "start_s": 3.5, "end_s": 6.0}]
    timeline = build_timeline(20.0, ["agent", "customer"], segments, utterances, [])
    agent = timeline.lanes[0]
    assert agent.role == "agent" and agent.untranscribed == ((10.0, 12.0),)  # 0-0.2 and 3.9-4 are too short
    assert timeline.silences == ((6.0, 10.0), (12.0, 20.0))
    assert timeline.overlaps == ((3.5, 4.0),)
    assert timeline.percent(5.0) == 25.0 and timeline.percent(99) == 100.0
    mono = build_timeline(10.0, ["mixed"], [{"role": "mixed", "start_s": 0.0, "end_s": 9.0}], [], [])
    assert mono.overlaps == () and mono.lanes[0].untranscribed == ((0.0, 9.0),)
    # sound the VAD did not take for speech is drawn from the stored gaps; other gaps are drawn anyway
    gaps = [{"role": "customer", "start_s": 14.0, "end_s": 15.5, "reason": "vad_missed"},
            {"role": "agent", "start_s": 10.0, "end_s": 12.0, "reason": "no_text"}]
    heard = build_timeline(20.0, ["agent", "customer"], segments, utterances, [], gaps=gaps)
    assert [lane.unheard for lane in heard.lanes] == [(), ((14.0, 15.5),)]
    assert heard.lanes[1].untranscribed_s == 1.5 and heard.lanes[0].untranscribed == ((10.0, 12.0),)


def test_pack_hits_keeps_overlapping_hits_apart_and_thins_wide_ones():
    hits = [{"start_s": 0.0, "end_s": 15.0}, {"start_s": 1.0, "end_s": 2.0}, {"start_s": 3.0, "end_s": 4.0},
            {"start_s": 16.0, "end_s": 17.0}]
    marks = pack_hits(hits, 30.0)
    rows = {(m.hit["start_s"]): m.row for m in marks}
    assert rows == {0.0: 0, 1.0: 1, 3.0: 1, 16.0: 0}
    assert [m.wide for m in marks] == [True, False, False, False]


def test_priority_order_puts_red_line_fatal_failed_classifier_listening_first():
    #                 red    fatal  failed classif listen review pass   pass(lower score)
    redline = np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)
    fatal = np.array([1, 1, 0, 0, 0, 0, 0, 0], bool)
    score = np.array([0, 0, 50, 95, 90, 84, 99, 85], float)
    probability = np.array([np.nan, np.nan, np.nan, 0.8, np.nan, 0.1, 0.2, np.nan])
    outcome = np.array(["fail", "fail", "fail", "pass", "needs_listening", "needs_review", "pass", "pass"], object)
    order, tier = priority_order(redline, fatal, score, probability, outcome, ["2026"] * 8)
    assert order.tolist() == [0, 1, 2, 3, 4, 5, 7, 6]
    # a call that needs review passed the scorecard (84/B) and is stored with passed false: not "failed"
    assert [TIERS[t] for t in tier] == ["red line", "fatal item", "failed", "classifier", "needs listening",
                                        "needs review", "pass", "pass"]


def test_outcome_is_read_or_derived():
    stored = pa.table({"outcome": ["needs_listening", None], "outcome_reasons": [["no_speech"], None]})
    assert derive_outcome(stored) == (["needs_listening", "pass"], [["no_speech"], []])
    derived = pa.table({"passed": [False, True, True, None], "redline": [True, True, False, False]})
    assert derive_outcome(derived)[0] == ["fail", "needs_review", "pass", "needs_listening"]


def test_queue_filters_drop_malformed_values():
    filters = QueueFilters.from_query({"date_from": "2026-11-01", "date_to": "2026/11/02", "status": "weird",
                                       "outcome": "fail", "text": "x" * 500, "team": " 售后一组 "})
    assert (filters.date_from, filters.date_to, filters.status, filters.outcome) == ("2026-11-01", "", "", "fail")
    assert len(filters.text) == 100 and filters.team == "售后一组"
    assert filters.query_string(page=2) == ("date_from=2026-11-01&team=%E5%94%AE%E5%90%8E%E4%B8%80%E7%BB%84&outcome="
                                            "fail&text=" + "x" * 100 + "&page=2")
    assert not QueueFilters().active


@pytest.mark.parametrize("header, expected", [
    (None, None), ("", None), ("bytes=0-9", (0, 9)), ("bytes=90-", (90, 99)), ("bytes=-5", (95, 99)),
    ("bytes=50-500", (50, 99)), ("bytes=-500", (0, 99)), ("items=0-1", None), ("bytes=1-2,5-6", None),
    ("bytes=-", None),
])
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_pii_spans_pad_merge_and_cover_masked_text_without_spans():
    utterances = [{"start_s": 1.0, "end_s": 5.0, "text": "***********", "pii_spans": [
        {"kind": "mobile", "start_s": 2.0, "end_s": 3.0}, {"kind": "id", "start_s": 3.1, "end_s": 4.0}]},
        {"start_s": 10.0, "end_s": 12.0, "text": "号码是****一", "pii_spans": None},
        {"start_s": 20.0, "end_s": 22.0, "text": "没有", "pii_spans": []}]
    assert pii_spans(utterances, pad_s=0.15) == [(1.85, 4.15), (10.0, 12.0)]


def test_highlight_marks_first_non_overlapping_occurrences():
    assert highlight("你有病吧你有病", [("有病", "h1"), ("病吧", "h2"), ("", "h3")]) == (
        ("你", ""), ("有病", "h1"), ("吧你有病", ""))
    assert highlight("abc", []) == (("abc", ""),)


def test_rank_hits_puts_specific_evidence_before_absences():
    hits = [{"severity": "non_fatal", "category": "opening", "match_type": "absence", "start_s": 0.0},
            {"severity": "info", "category": "thanks", "match_type": "exact", "start_s": 1.0},
            {"severity": "non_fatal", "category": "shirking", "match_type": "exact", "start_s": 9.0},
            {"severity": "fatal", "category": "redline_abuse", "match_type": "exact", "start_s": 5.0}]
    assert [h["category"] for h in rank_hits(hits)] == ["redline_abuse", "shirking", "opening", "thanks"]
    # the text model's hit sent the call to review: it comes before a missing greeting at 00:00
    model = {"severity": "info", "category": "arguing", "match_type": "model", "start_s": 20.0}
    assert [h["category"] for h in rank_hits([*hits[:2], model])] == ["arguing", "opening", "thanks"]


def test_sessions_are_signed_and_expire():
    sessions = Sessions(b"k" * 32, max_age_s=100)
    cookie = sessions.dump(Session("ann", "tok"))
    assert sessions.load(cookie) == Session("ann", "tok")
    payload, signature = cookie.rsplit(".", 1)
    # change the signature's first character (its last one may only carry base64 padding bits)
    assert sessions.load(f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}") is None
    assert Sessions(b"x" * 32).load(cookie) is None  # another store's key
    assert sessions.load("garbage") is None and sessions.load(None) is None
    assert csrf_ok(Session("ann", "tok"), "tok") and not csrf_ok(Session("ann", "tok"), "tok2")
    assert not csrf_ok(None, "tok") and not csrf_ok(Session("ann", "tok"), None)


@pytest.mark.parametrize("target, expected", [
    ("/calls/x?y=1", "/calls/x?y=1"), ("//evil.example", "/"), ("https://evil.example", "/"), ("", "/"),
    (None, "/"), ("/\\evil.example", "/"), ("calls", "/"),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_review_command_refuses_a_folder_that_is_not_a_store(cli, tmp_path):
    result = cli("review", tmp_path)
    assert result.exit_code == 2 and "not a callqa store" in result.output
    assert not (tmp_path / "_review").exists()
    assert cli("users", "list", tmp_path / "missing").exit_code == 2
