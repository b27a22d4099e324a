"""Compare the current rows of two stores column by column (a 0.1 ledger store or today's store).

Used to check that a refactor changed no result: rows are matched on their
natural keys and every column both stores have is compared, except the ones
named with --ignore (volatile or deliberately changed columns).

    python scripts/dev/compare_stores.py OLD_STORE NEW_STORE [--ignore path,processing_s]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.store.delta import Store, is_store  # noqa: E402
from pipeline.store.legacy import LegacyStore  # noqa: E402

KEYS = {"calls": ("call_id",), "segments": ("call_id", "role", "start_s"), "utterances": ("call_id", "utterance_index"),
        "hits": ("call_id", "rule_id", "start_s", "end_s"), "features": ("call_id",), "errors": ("call_id",)}
RENAMED = {"model_id": "asr_model"}
ALWAYS_IGNORED = {"chunk_id", "schema_version", "transcript_id", "analysis_id", "score_id", "committed_at",
                  "processing_s", "occurred_at", "callqa_version", "rules_version", "config_hash", "hit_id",
                  "detector_version", "features_schema_version"}


def rows(root: Path, table: str) -> list[dict[str, Any]]:
    if is_store(root):
        return Store(root).read(table).to_pylist()
    legacy = LegacyStore(root)
    data = legacy.current_hits() if table == "hits" else legacy.read(table)
    return [{RENAMED.get(k, k): v for k, v in r.items()} for r in data.to_pylist()]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--ignore", default="", help="More columns to leave out, comma-separated.")
    args = parser.parse_args()
    ignored = ALWAYS_IGNORED | set(filter(None, args.ignore.split(",")))
    differences = 0
    for table, key in KEYS.items():
        old = {tuple(r[k] for k in key): r for r in rows(args.old, table)}
        new = {tuple(r[k] for k in key): r for r in rows(args.new, table)}
        only = set(old) ^ set(new)
        columns = sorted((set(next(iter(old.values()), {})) & set(next(iter(new.values()), {}))) - ignored)
        bad = [(k, c, old[k][c], new[k][c]) for k in sorted(set(old) & set(new)) for c in columns
               if not same(old[k][c], new[k][c])]
        status = "equal" if not only and not bad else "DIFFERENT"
        print(f"{table:10s} {len(old):4d} / {len(new):4d} rows, {len(columns):3d} shared columns compared: {status}")
        for k in sorted(only, key=str)[:5]:
            print(f"    only in {'old' if k in old else 'new'}: {k}")
        for k, c, a, b in bad[:10]:
            print(f"    {k} {c}: {a!r} -> {b!r}")
        differences += len(only) + len(bad)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
