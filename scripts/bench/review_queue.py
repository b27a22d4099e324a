"""Review queue paging at 100,000 calls: the snapshot index against a plain sort per request.

Builds synthetic current rows directly as Arrow tables (calls, features, hits,
utterances, segments: no store files, so the figure does not depend on the
store's format), builds the review snapshot once, then times queue requests
(filter + order + one page of rows + the counts) for several filters, and the
same requests done the plain way in the same run: filter the Arrow table and
sort it by the queue keys on every request. Finally it times whole pages
(HTTP through the FastAPI app, Jinja rendering included).

    python scripts/bench/review_queue.py --calls 100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.review.queue import QueueFilters, SearchCache, counts, ordered, page_of, page_rows, select
from pipeline.review.snapshot import Snapshot, build_snapshot

TEAMS = [f"team-{i:02d}" for i in range(40)]
RULES = [  # rule id, category, severity, match type
    ("opening.greeting", "opening", "non_fatal", "absence"),
    ("closing.script", "closing", "non_fatal", "absence"),
    ("politeness.missing", "politeness", "non_fatal", "absence"),
    ("abuse.insult", "redline_abuse", "fatal", "exact"),
    ("timing.silence", "silence", "non_fatal", "timing"),
    ("timing.answer_delay", "answer_delay", "non_fatal", "timing"),
    ("shirking.phrase", "shirking", "non_fatal", "fuzzy"),
    ("acoustic.raised_voice", "raised_voice", "non_fatal", "acoustic"),
    ("timing.agent_hung_up_first", "hangup", "fatal", "timing"),
    ("tic.en", "verbal_tic", "info", "exact"),
]
LINES = [
    "您好很高兴为您服务请问有什么可以帮您", "我想查一下我的话费", "你们这个宽带怎么老是断网", "请您稍等我帮您查询一下",
    "我上个月被多扣了二十块钱", "非常抱歉给您添麻烦了", "那什么时候能处理好", "我已经打了三次电话了要投诉",
    "这边帮您申请退款三到五个工作日到账", "感谢您的来电祝您生活愉快再见", "您反馈的问题我们会在二十四小时内回复您",
]


def synthetic_tables(n_calls: int, utterances_per_call: int, seed: int = 0) -> dict[str, pa.Table]:
    """Current rows for ``n_calls`` calls, vectorised (about 5 hits and ``utterances_per_call`` lines each)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"call-{i:06d}" for i in range(n_calls)], dtype=object)
    dates = np.array([f"2026-11-{d:02d}" for d in range(1, 31)], dtype=object)[rng.integers(0, 30, n_calls)]
    team = np.array(TEAMS, dtype=object)[rng.integers(0, len(TEAMS), n_calls)]
    agent = np.array([f"A{i:04d}" for i in range(800)], dtype=object)[rng.integers(0, 800, n_calls)]
    score = np.round(rng.normal(85, 10, n_calls).clip(0, 100), 1)
    redline = rng.random(n_calls) < 0.01
    fatal = redline | (rng.random(n_calls) < 0.03)
    passed = (score >= 80) & ~fatal
    probability = np.where(rng.random(n_calls) < 0.7, rng.random(n_calls), np.nan)
    started = np.array([f"{d}T{h:02d}:{m:02d}:00+08:00" for d, h, m in
                        zip(dates, rng.integers(8, 20, n_calls), rng.integers(0, 60, n_calls), strict=True)])
    calls = pa.table({"call_id": ids, "status": ["ok"] * n_calls, "path": [f"/audio/{c}.wav" for c in ids],
                      "duration_s": rng.uniform(60, 600, n_calls), "agent_id": agent, "team": team,
                      "started_at": started, "call_date": dates})
    features = pa.table({"call_id": ids, "score": score, "grade": np.where(score >= 90, "A", "B"),
                         "passed": passed, "redline": redline, "fatal_failed": fatal,
                         "classifier_probability": pa.array(probability, from_pandas=True), "call_date": dates})
    n_hits = rng.integers(2, 9, n_calls)
    hit_call = np.repeat(np.arange(n_calls), n_hits)
    rule = rng.integers(0, len(RULES), len(hit_call))
    rule = np.where(np.isin(hit_call, np.flatnonzero(redline)) & (rng.random(len(hit_call)) < 0.3), 3, rule)
    start = rng.uniform(0, 300, len(hit_call))
    hits = pa.table({
        "call_id": ids[hit_call], "hit_id": [f"h{i:08d}" for i in range(len(hit_call))],
        "rule_id": [RULES[r][0] for r in rule], "rules_version": ["rv1"] * len(hit_call),
        "category": [RULES[r][1] for r in rule], "severity": [RULES[r][2] for r in rule],
        "match_type": [RULES[r][3] for r in rule], "role": ["agent"] * len(hit_call), "start_s": start,
        "end_s": start + 2.0, "matched_text": [""] * len(hit_call), "suspect": np.zeros(len(hit_call), bool)})
    utt_call = np.repeat(np.arange(n_calls), utterances_per_call)
    line = rng.integers(0, len(LINES), len(utt_call))
    utt_start = np.tile(np.arange(utterances_per_call) * 6.0, n_calls)
    utterances = pa.table({"call_id": ids[utt_call], "role": np.where(line % 2 == 0, "agent", "customer"),
                           "start_s": utt_start, "end_s": utt_start + 4.0,
                           "text": np.array(LINES, dtype=object)[line]})
    segments = pa.table({"call_id": ids[utt_call], "role": np.where(line % 2 == 0, "agent", "customer"),
                         "start_s": utt_start, "end_s": utt_start + 4.2})
    return {"calls": calls, "features": features, "hits": hits, "utterances": utterances, "segments": segments}


SCENARIOS: list[tuple[str, dict[str, str], int]] = [
    ("first page, no filter", {}, 1),
    ("page 1000 of 2000", {}, 1000),
    ("team filter", {"team": "team-07"}, 1),
    ("rule + severity filter", {"rule": "abuse.insult", "severity": "fatal"}, 1),
    ("unreviewed (30% reviewed)", {"status": "unreviewed"}, 1),
    ("date range + outcome", {"date_from": "2026-11-10", "date_to": "2026-11-12", "outcome": "fail"}, 3),
    ("text search", {"text": "投诉"}, 1),
]


def indexed_request(snapshot: Snapshot, reviewed: np.ndarray, search: SearchCache, query: dict[str, str],
                    page: int, per_page: int = 50) -> list[dict]:
    """What the queue route does: filter mask, queue order, one page of rows, counts."""
    filters = QueueFilters.from_query(query)
    mask = select(snapshot, filters, reviewed, np.zeros_like(reviewed), search)
    rows = page_rows(snapshot, page_of(ordered(mask), page, per_page).positions)
    counts(snapshot, mask, reviewed)
    return rows


def plain_request(tables: dict[str, pa.Table], reviewed_ids: pa.Array, query: dict[str, str], page: int,
                  per_page: int = 50) -> list[dict]:
    """The baseline: join, filter and sort the current rows on every request (no index)."""
    calls = tables["calls"].join(tables["features"].drop_columns(["call_date"]), "call_id")
    mask = pc.equal(calls["status"], "ok")
    if "team" in query:
        mask = pc.and_(mask, pc.equal(calls["team"], query["team"]))
    if "date_from" in query:
        mask = pc.and_(mask, pc.greater_equal(calls["call_date"], query["date_from"]))
        mask = pc.and_(mask, pc.less_equal(calls["call_date"], query["date_to"]))
    if query.get("outcome") == "fail":
        mask = pc.and_(mask, pc.invert(calls["passed"]))
    if "rule" in query:
        hits = tables["hits"]
        chosen = hits.filter(pc.and_(pc.equal(hits["rule_id"], query["rule"]),
                                     pc.equal(hits["severity"], query["severity"])))
        mask = pc.and_(mask, pc.is_in(calls["call_id"], value_set=pc.unique(chosen["call_id"])))
    if query.get("status") == "unreviewed":
        mask = pc.and_(mask, pc.invert(pc.is_in(calls["call_id"], value_set=reviewed_ids)))
    if "text" in query:
        utterances = tables["utterances"]
        found = utterances.filter(pc.match_substring(utterances["text"], query["text"]))
        mask = pc.and_(mask, pc.is_in(calls["call_id"], value_set=pc.unique(found["call_id"])))
    chosen = calls.filter(mask)
    chosen = chosen.append_column("_not_red", pc.invert(chosen["redline"])).append_column(
        "_not_fatal", pc.invert(chosen["fatal_failed"])).append_column("_passed", chosen["passed"])
    ordered_rows = chosen.sort_by([("_not_red", "ascending"), ("_not_fatal", "ascending"), ("_passed", "ascending"),
                                   ("score", "ascending"), ("classifier_probability", "descending")])
    pc.value_counts(chosen["passed"])  # the counts at the top
    return ordered_rows.slice((page - 1) * per_page, per_page).to_pylist()


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        out.append((time.perf_counter() - began) * 1000)
    return out


def http_pages(tables: dict[str, pa.Table], snapshot: Snapshot, repeat: int) -> list[tuple[str, float, float]]:
    """Whole queue pages through the app (TestClient, Jinja rendering): (scenario, p50 ms, p95 ms)."""
    from fastapi.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.state import ReviewSettings
    from pipeline.review.users import add_user

    root = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        add_user(root, "bench", "bench-password", "lead")
        client = TestClient(create_app(ReviewSettings(store_root=root, refresh_every_s=1e9), loader=lambda: snapshot))
        page = client.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"name": "bench", "password": "bench-password", "csrf_token": token})
        out = []
        for name, query, page_no in SCENARIOS:
            url = "/?" + "&".join(f"{k}={v}" for k, v in {**query, "page": page_no}.items())
            assert client.get(url).status_code == 200
            times = timed(lambda url=url: client.get(url), repeat)
            out.append((name, statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]))
        call_id = snapshot.calls["call_id"][0].as_py()
        times = timed(lambda: client.get(f"/calls/{call_id}"), repeat)
        out.append(("call page (top call)", statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]))
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--utterances-per-call", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=15, help="Timed repetitions per scenario (median reported).")
    parser.add_argument("--no-http", action="store_true", help="Skip the whole-page (HTTP) timings.")
    args = parser.parse_args()

    began = time.perf_counter()
    tables = synthetic_tables(args.calls, args.utterances_per_call)
    print(f"synthetic rows: {args.calls} calls, {tables['hits'].num_rows} hits, "
          f"{tables['utterances'].num_rows} utterances ({time.perf_counter() - began:.1f} s to generate)")
    began = time.perf_counter()
    snapshot = build_snapshot(**tables)
    print(f"index build (build_snapshot, once per store change): {time.perf_counter() - began:.2f} s")
    rng = np.random.default_rng(1)
    reviewed = rng.random(snapshot.size) < 0.3
    reviewed_ids = pa.array(snapshot.calls["call_id"].to_numpy(zero_copy_only=False)[reviewed].tolist())
    search = SearchCache()

    print(f"\nqueue request = filter + order + 50 rows + counts, {args.repeat} runs each (ms)")
    print(f"{'scenario':30} {'index p50':>10} {'index p95':>10} {'plain sort p50':>15} {'speed-up':>9}")
    for name, query, page in SCENARIOS:
        first = timed(lambda q=query, p=page: indexed_request(snapshot, reviewed, search, q, p), 1)[0]
        index = timed(lambda q=query, p=page: indexed_request(snapshot, reviewed, search, q, p), args.repeat)
        plain = timed(lambda q=query, p=page: plain_request(tables, reviewed_ids, q, p), max(3, args.repeat // 3))
        a, b = statistics.median(index), statistics.median(plain)
        p95 = sorted(index)[int(0.95 * (len(index) - 1))]
        note = f"  (first, uncached: {first:.1f})" if "text" in query else ""
        print(f"{name:30} {a:10.2f} {p95:10.2f} {b:15.1f} {b / a:8.0f}x{note}")
    if not args.no_http:
        print(f"\nwhole pages over HTTP (TestClient, Jinja rendering), {args.repeat} runs each (ms)")
        for name, p50, p95 in http_pages(tables, snapshot, args.repeat):
            print(f"{name:30} p50 {p50:7.1f}   p95 {p95:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
