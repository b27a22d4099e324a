"""How the store scales: 100,000 synthetic calls through the Delta store, against two baselines.

Synthesises ``--calls`` calls over ``--days`` days with realistic rows (about
30 utterances with word timings, 20 speech segments and 15 hits per call, one
feature row with every column; texts from the CrossWOZ service dialogues in
``../shared/data``), in chunks of ``--chunk`` calls, and measures in one run:

- commit throughput of the Delta store (``Store.commit_tables``, the same
  transaction as ``callqa run``) and of callqa 0.1's ledger format;
- reading the current ``features`` and ``hits`` of one day and of everything,
  against the floor: the same rows written once as a plain hive-partitioned
  Parquet dataset and read with ``pyarrow.dataset`` (goal: <= 1.5x the floor);
- re-committing all calls after a rule change (new hits and features; goal:
  under 2 minutes) and reading again;
- ``compact``: store size before and after, and reading after it;
- peak RSS after each quarter of the commits (goal: flat in the number of calls).

    python scripts/bench/store_scale.py                      # 100,000 calls (~10 min on 2 cores)
    python scripts/bench/store_scale.py --calls 5000 --chunk 500   # quick
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.store.delta import Store, new_result_id  # noqa: E402
from pipeline.store.legacy import LegacyStore  # noqa: E402
from pipeline.store.maintenance import compact, store_bytes  # noqa: E402
from pipeline.store.tables import CALLS, FEATURES, HITS, SEGMENTS, UTTERANCES  # noqa: E402

CROSSWOZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "text" / "crosswoz" / "val_turns.tsv"
VERSIONS = {"config_hash": "c0ffee00c0ffee00", "analysis_version": "bench", "asr_model": "whisper-base-ct2@d01c3014",
            "rules_version": "qa-1", "timing_version": "timing-1", "redline_model": "redline_text@bench"}
RULES = [f"rule.{i:02d}" for i in range(40)]


def texts() -> list[str]:
    if CROSSWOZ.exists():
        lines = CROSSWOZ.read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[3] for line in lines if line.count("\t") >= 3][:5000]
    return ["您好请问有什么可以帮您", "我想查询一下订单", "好的请稍等我帮您查一下"] * 100


class Synth:
    """Builds each chunk's rows as Arrow tables (vectorised: generation must not dominate the timings)."""

    def __init__(self, n_calls: int, days: int, utterances: int, hits: int, words: int, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_calls, self.utt, self.hits, self.words = n_calls, utterances, hits, words
        start = date(2026, 10, 1)
        self.dates = [(start + timedelta(days=d)).isoformat() for d in range(days)]
        self.texts = pa.array(texts())

    def call_dates(self, first: int, n: int) -> list[str]:
        per_day = max(1, self.n_calls // len(self.dates))
        return [self.dates[min(len(self.dates) - 1, (first + i) // per_day)] for i in range(n)]

    def _repeat(self, values: list[str], k: int) -> pa.Array:
        return pa.array(np.repeat(np.array(values, dtype=object), k).tolist(), pa.string())

    def _const(self, n: int, **columns: Any) -> dict[str, pa.Array]:
        return {k: pa.array([v] * n, pa.string()) for k, v in columns.items()}

    def chunk(self, first: int, n: int) -> tuple[pa.Table, dict[str, pa.Table]]:
        ids = [f"call-{first + i:07d}" for i in range(n)]
        dates = self.call_dates(first, n)
        pointers = {p: [new_result_id() for _ in range(n)] for p in ("transcript_id", "analysis_id", "score_id")}
        calls = self._table(CALLS.storage_schema, n, {
            "call_id": pa.array(ids), "call_date": pa.array(dates),
            **{p: pa.array(v) for p, v in pointers.items()}, **self._const(n, **VERSIONS),
            "status": pa.array(["ok"] * n), "path": pa.array([f"/recordings/{i}.wav" for i in ids]),
            "audio_sha256": pa.array([uuid.uuid4().hex * 2 for _ in ids]),
            "duration_s": pa.array(self.rng.uniform(60, 600, n)), "team": pa.array([f"T{i % 12}" for i in range(n)]),
            "agent_id": pa.array([f"A{(first + i) % 400:03d}" for i in range(n)]),
        })
        return calls, {"segments": self.segments(ids, dates, pointers["transcript_id"]),
                       "utterances": self.utterances(ids, dates, pointers["transcript_id"]),
                       **self.analysis(ids, dates, pointers["analysis_id"], pointers["score_id"])}

    def analysis(self, ids: list[str], dates: list[str], analysis_ids: list[str],
                 score_ids: list[str]) -> dict[str, pa.Table]:
        return {"hits": self.hit_rows(ids, dates, analysis_ids), "features": self.features(ids, dates, score_ids)}

    def _table(self, schema: pa.Schema, n: int, columns: dict[str, pa.Array]) -> pa.Table:
        columns.setdefault("schema_version", pa.array(np.full(n, 2, np.int16)))
        arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    def segments(self, ids: list[str], dates: list[str], transcript: list[str]) -> pa.Table:
        k, n = 20, len(ids) * 20
        start = np.tile(np.arange(k) * 10.0, len(ids)) + self.rng.uniform(0, 2, n)
        return self._table(SEGMENTS.storage_schema, n, {
            "call_id": self._repeat(ids, k), "call_date": self._repeat(dates, k),
            "transcript_id": self._repeat(transcript, k), **self._const(n, **VERSIONS),
            "role": pa.array(np.where(np.arange(n) % 2, "agent", "customer").tolist()),
            "start_s": pa.array(start), "end_s": pa.array(start + 4.0),
            "loudness_dbfs": pa.array(self.rng.uniform(-35, -15, n).astype(np.float32))})

    def utterances(self, ids: list[str], dates: list[str], transcript: list[str]) -> pa.Table:
        k, n = self.utt, len(ids) * self.utt
        text = self.texts.take(pa.array(self.rng.integers(0, len(self.texts), n)))
        start = np.tile(np.arange(k) * 6.0, len(ids))
        w = self.words
        word_text = pa.compute.utf8_slice_codeunits(self.texts.take(
            pa.array(self.rng.integers(0, len(self.texts), n * w))), 0, 2)
        word_start = np.repeat(start, w) + np.tile(np.arange(w) * 0.5, n)
        words = pa.StructArray.from_arrays(
            [word_text, pa.array(word_start), pa.array(word_start + 0.4),
             pa.array(self.rng.uniform(0.3, 1.0, n * w).astype(np.float32))],
            fields=list(UTTERANCES.storage_schema.field("words").type.value_type))
        return self._table(UTTERANCES.storage_schema, n, {
            "call_id": self._repeat(ids, k), "call_date": self._repeat(dates, k),
            "transcript_id": self._repeat(transcript, k), **self._const(n, **VERSIONS),
            "utterance_index": pa.array(np.tile(np.arange(k), len(ids)).astype(np.int32)),
            "role": pa.array(np.where(np.arange(n) % 2, "agent", "customer").tolist()),
            "start_s": pa.array(start), "end_s": pa.array(start + 4.0), "text": text,
            "words": pa.ListArray.from_arrays(pa.array(np.arange(0, n * w + 1, w, dtype=np.int32)), words),
            "avg_logprob": pa.array(self.rng.uniform(-1, 0, n).astype(np.float32)),
            "suspect": pa.array(np.zeros(n, bool))})

    def hit_rows(self, ids: list[str], dates: list[str], analysis: list[str]) -> pa.Table:
        k, n = self.hits, len(ids) * self.hits
        start = self.rng.uniform(0, 300, n)
        return self._table(HITS.storage_schema, n, {
            "call_id": self._repeat(ids, k), "call_date": self._repeat(dates, k),
            "analysis_id": self._repeat(analysis, k), **self._const(n, **VERSIONS),
            "hit_id": pa.array([uuid.uuid4().hex[:16] for _ in range(n)]),
            "rule_id": pa.array([RULES[i] for i in self.rng.integers(0, len(RULES), n)]),
            "detector_version": pa.array(["qa-1"] * n), "category": pa.array(["forbidden_phrase"] * n),
            "severity": pa.array(["non_fatal"] * n), "start_s": pa.array(start), "end_s": pa.array(start + 1.5),
            "match_type": pa.array(["exact"] * n), "confidence": pa.array(np.ones(n, np.float32)),
            "matched_text": pa.array(["不清楚"] * n)})

    def features(self, ids: list[str], dates: list[str], score: list[str]) -> pa.Table:
        n = len(ids)
        columns: dict[str, pa.Array] = {
            "call_id": pa.array(ids), "call_date": pa.array(dates), "score_id": pa.array(score),
            **self._const(n, **VERSIONS), "features_schema_version": pa.array(np.full(n, 2, np.int16)),
            "score": pa.array(self.rng.uniform(40, 100, n).astype(np.float32)),
            "outcome": pa.array(["pass"] * n), "team": pa.array([f"T{i % 12}" for i in range(n)])}
        for f in FEATURES.storage_schema:
            if f.name not in columns and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)):
                columns[f.name] = pa.array(np.round(self.rng.uniform(0, 10, n))).cast(f.type)
        return self._table(FEATURES.storage_schema, n, columns)


# -- the ledger format of callqa 0.1 (written like 0.1 did: parts + one ledger file per chunk) ------------
class Ledger:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.seq = 0

    def commit(self, tables: dict[str, pa.Table], covers: dict[str, list[list[str]]]) -> None:
        chunk = uuid.uuid4().hex[:16]
        files = []
        for name, table in tables.items():
            legacy = table.rename_columns(["model_id" if c == "asr_model" else c for c in table.column_names])
            legacy = legacy.append_column("chunk_id", pa.array([chunk] * legacy.num_rows))
            for day in sorted(set(legacy["call_date"].to_pylist())):
                part = legacy.filter(pc.equal(legacy["call_date"], day)).drop_columns(["call_date"])
                target = self.root / name / f"date={day}" / f"part-{chunk}.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, target, compression="zstd")
                files.append(str(target.relative_to(self.root)))
        self.seq += 1
        (self.root / "_commits").mkdir(parents=True, exist_ok=True)
        (self.root / "_commits" / f"{self.seq:012d}-{chunk}.json").write_text(json.dumps(
            {"chunk_id": chunk, "files": files, "covers": covers}))


def ledger_read(root: Path, table: str, dates: list[str] | None) -> pa.Table:
    store = LegacyStore(root)
    data = store.read(table, columns=["score"] if table == "features" else ["rule_id"])
    return data if dates is None else data.filter(pc.is_in(data["call_date"], pa.array(dates)))


# -- measurement helpers ------------------------------------------------------------------
def timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def floor_read(root: Path, table: str, dates: list[str] | None) -> pa.Table:
    dataset = ds.dataset(root / table, format="parquet", partitioning="hive")
    flt = None if dates is None else ds.field("call_date").isin(pa.array(dates))
    return dataset.to_table(filter=flt)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=2000, help="Calls per commit.")
    parser.add_argument("--utterances", type=int, default=30)
    parser.add_argument("--hits", type=int, default=15)
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/callqa-store-scale"))
    parser.add_argument("--no-ledger", action="store_true", help="Skip the callqa 0.1 ledger baseline.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    synth = Synth(args.calls, args.days, args.utterances, args.hits, args.words)
    store = Store(args.out / "delta", create=True)
    ledger = Ledger(args.out / "ledger")
    floor_parts = ("features", "hits")
    for name in floor_parts:
        (args.out / "staging" / name).mkdir(parents=True)
    figures: dict[str, Any] = {"calls": args.calls, "days": args.days, "chunk": args.chunk}
    delta_s = ledger_s = 0.0
    rss: list[float] = []
    pointers: list[pa.Table] = []
    print(f"committing {args.calls} calls in chunks of {args.chunk} "
          f"(~{args.utterances} utterances, {args.hits} hits per call) ...", flush=True)
    quarter = max(1, args.calls // args.chunk // 4)
    for index, first in enumerate(range(0, args.calls, args.chunk)):
        n = min(args.chunk, args.calls - first)
        calls, tables = synth.chunk(first, n)
        started = time.perf_counter()
        store.commit_tables(calls, tables, kind="run")
        delta_s += time.perf_counter() - started
        if not args.no_ledger:
            started = time.perf_counter()
            ledger.commit({"calls": calls, **tables}, {})
            ledger_s += time.perf_counter() - started
        for name in floor_parts:  # staged on disk: the benchmark's own memory stays flat too
            pq.write_table(tables[name], args.out / "staging" / name / f"{index:05d}.parquet")
        pointers.append(calls.select(["call_id", "call_date", "transcript_id"]))
        if (index + 1) % quarter == 0:
            rss.append(rss_mb())
            print(f"  {first + n} calls committed, RSS {rss[-1]:.0f} MB", flush=True)
    started = time.perf_counter()
    store.optimize()  # what the end of `callqa run` does for the days it touched
    optimize_s = time.perf_counter() - started
    figures["commit_calls_per_s"] = {"delta": args.calls / delta_s, "delta_with_optimize": args.calls / (
        delta_s + optimize_s), "ledger": None if args.no_ledger else args.calls / ledger_s}
    figures["rss_mb_quarters"] = rss
    floor_root = args.out / "floor"
    for name in floor_parts:  # written once, one dataset write per table
        staged = ds.dataset(args.out / "staging" / name, format="parquet")
        ds.write_dataset(staged, floor_root / name, format="parquet", partitioning=["call_date"],
                         partitioning_flavor="hive", existing_data_behavior="overwrite_or_ignore")
    one_day = [synth.dates[len(synth.dates) // 2]]
    figures["reads_fresh"] = read_figures(store, args, floor_root, one_day)
    # -- a rule change: every call gets new hits and features (rescore) -------------------------
    print("re-committing every call after a rule change ...", flush=True)
    started = time.perf_counter()
    for part in pointers:
        n = part.num_rows
        ids, dates = part["call_id"].to_pylist(), part["call_date"].to_pylist()
        analysis_ids, score_ids = [new_result_id() for _ in ids], [new_result_id() for _ in ids]
        tables = synth.analysis(ids, dates, analysis_ids, score_ids)
        calls = pa.table({"call_id": part["call_id"], "call_date": part["call_date"],
                          "analysis_id": pa.array(analysis_ids), "score_id": pa.array(score_ids),
                          "transcript_id": part["transcript_id"],
                          **{k: pa.array([v] * n) for k, v in VERSIONS.items() if k in ("rules_version",
                                                                                         "redline_model")}})
        store.commit_tables(calls, tables, kind="rescore")
    figures["recommit_all_s"] = time.perf_counter() - started
    print(f"  {figures['recommit_all_s']:.1f} s", flush=True)
    figures["reads_after_recommit"] = read_figures(store, args, floor_root, one_day, ledger=False)
    before = store_bytes(store.root)
    started = time.perf_counter()
    report = compact(store, 0.0, min_age_s=0.0)
    figures["compact"] = {"seconds": time.perf_counter() - started, "bytes_before": before,
                          "bytes_after": report.bytes_after,
                          "rows_before": report.rows_before, "rows_after": report.rows_after}
    figures["reads_after_compact"] = read_figures(store, args, floor_root, one_day, ledger=False)
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def read_figures(store: Store, args: argparse.Namespace, floor_root: Path, one_day: list[str],
                 ledger: bool = True) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for table in ("features", "hits"):
        for label, dates in (("one day", one_day), ("all", None)):
            key = f"{table} {label}"
            floor_s, floor_rows = timed(lambda t=table, d=dates: floor_read(floor_root, t, d))
            delta_s, delta_rows = timed(lambda t=table, d=dates: store.read(t, dates=d))
            assert delta_rows.num_rows == floor_rows.num_rows, (key, delta_rows.num_rows, floor_rows.num_rows)
            out[key] = {"floor_s": floor_s, "delta_s": delta_s, "rows": delta_rows.num_rows}
            if ledger and not args.no_ledger:
                out[key]["ledger_s"], _ = timed(lambda t=table, d=dates: ledger_read(args.out / "ledger", t, d), 1)
            print(f"  read {key:18s} {delta_rows.num_rows:9d} rows: floor {floor_s:6.3f} s, delta {delta_s:6.3f} s "
                  f"({delta_s / floor_s:4.2f}x)" + (f", ledger {out[key]['ledger_s']:6.3f} s "
                                                   f"({out[key]['ledger_s'] / floor_s:4.2f}x)"
                                                   if "ledger_s" in out[key] else ""), flush=True)
    return out


def print_figures(figures: dict[str, Any]) -> None:
    print("\n## store_scale results\n")
    commits = figures["commit_calls_per_s"]
    print(f"calls: {figures['calls']} over {figures['days']} days, {figures['chunk']} calls per commit")
    print(f"commit throughput: delta {commits['delta']:.0f} calls/s "
          f"({commits['delta_with_optimize']:.0f} with the optimize that ends a run)"
          + (f", ledger (0.1) {commits['ledger']:.0f} calls/s" if commits["ledger"] else ""))
    print("| read | rows | floor s | delta s | delta/floor | after re-commit | after compact |")
    print("|---|---|---|---|---|---|---|")
    for key, fresh in figures["reads_fresh"].items():
        again = figures["reads_after_recommit"][key]
        compacted = figures["reads_after_compact"][key]
        print(f"| {key} | {fresh['rows']} | {fresh['floor_s']:.3f} | {fresh['delta_s']:.3f} | "
              f"{fresh['delta_s'] / fresh['floor_s']:.2f}x | {again['delta_s'] / again['floor_s']:.2f}x | "
              f"{compacted['delta_s'] / compacted['floor_s']:.2f}x |")
    c = figures["compact"]
    print(f"re-commit of every call after a rule change: {figures['recommit_all_s']:.1f} s (goal < 120 s)")
    print(f"compact: {c['bytes_before'] / 1e6:.0f} MB -> {c['bytes_after'] / 1e6:.0f} MB in {c['seconds']:.1f} s")
    rss = figures["rss_mb_quarters"]
    print(f"RSS after each quarter of the commits: {', '.join(f'{r:.0f}' for r in rss)} MB "
          f"(last/first {rss[-1] / rss[0]:.2f})")


if __name__ == "__main__":
    random.seed(7)
    sys.exit(main())
