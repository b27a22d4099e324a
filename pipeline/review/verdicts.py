"""Reviewers' verdicts: an append-only SQLite database beside the store.

The database lives at ``STORE/_review/review.sqlite`` (WAL mode, see
``docs/contracts.md``). Every verdict is a new row, never an update: a changed
mind is a later row, so the history of each hit and call stays readable and
two reviewers writing at once can never overwrite each other. The *current*
verdict is the latest row (highest ``id``) per (reviewer, hit) or
(reviewer, call). Triggers refuse UPDATE and DELETE on the verdict tables.

Tables::

    hit_verdicts(id, call_id, hit_id, rule_id, rules_version, verdict, comment, reviewer, created_at)
    call_verdicts(id, call_id, verdict, grade, comment, reviewer, created_at)
    missed_findings(id, call_id, utterance_index, role, start_s, end_s, text, category, action, comment,
                    reviewer, created_at)
    users(name, password_hash, role, disabled, created_at)          -- see pipeline.review.users

``hit_verdicts.rules_version`` is the version of what raised the hit (the
hit's ``detector_version``: a rule-set, timing or red-line model version), so
a verdict stays attached to the rule version it judged.

``missed_findings`` are what the detectors missed: a reviewer marks an agent
utterance as holding a finding of a category (a red line no rule or model
raised); ``text`` is the utterance's text with personal data masked, kept so
the finding still reads the same after a re-run. ``action`` is ``added`` or
``withdrawn``; the current state is the latest row per (reviewer, call,
utterance, category), as for verdicts.

The read API (:func:`current_hit_verdicts`, :func:`current_call_verdicts`,
:func:`call_labels`, :func:`rule_precision`) returns Arrow tables and never
creates the database: a store nobody reviewed gives empty tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

#: Folder reserved for the review app inside a store (docs/contracts.md).
REVIEW_DIR = "_review"
DB_NAME = "review.sqlite"
HIT_VERDICTS = ("confirmed", "rejected", "unsure")
CALL_VERDICTS = ("pass", "fail")
ROLES = ("reviewer", "lead")
#: Categories a reviewer can mark as missed: those the red-line text model learns
#: (scripts/train_redline_model.py: CLASS_OF_CATEGORY).
MISSED_CATEGORIES = ("redline_abuse", "redline_counter_question", "redline_coldness", "shirking", "arguing",
                     "contradicting")
MISSED_ACTIONS = ("added", "withdrawn")
MAX_COMMENT_CHARS = 4000
#: Seconds a writer waits for another writer's lock before failing.
BUSY_TIMEOUT_S = 30.0

SCHEMA_VERSION = 2  # 2: missed_findings (a version-1 database gains the table when next opened)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS hit_verdicts (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, hit_id TEXT NOT NULL, rule_id TEXT, rules_version TEXT,
    verdict TEXT NOT NULL CHECK (verdict IN ('confirmed','rejected','unsure')), comment TEXT,
    reviewer TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS hit_verdicts_hit ON hit_verdicts (hit_id, reviewer);
CREATE INDEX IF NOT EXISTS hit_verdicts_call ON hit_verdicts (call_id);
CREATE TABLE IF NOT EXISTS call_verdicts (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('pass','fail')), grade TEXT, comment TEXT,
    reviewer TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS call_verdicts_call ON call_verdicts (call_id, reviewer);
CREATE TABLE IF NOT EXISTS missed_findings (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, utterance_index INTEGER NOT NULL, role TEXT NOT NULL,
    start_s REAL NOT NULL, end_s REAL NOT NULL, text TEXT NOT NULL, category TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('added','withdrawn')), comment TEXT,
    reviewer TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS missed_findings_call ON missed_findings (call_id, reviewer);
CREATE TRIGGER IF NOT EXISTS missed_findings_append_only_u BEFORE UPDATE ON missed_findings
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS missed_findings_append_only_d BEFORE DELETE ON missed_findings
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reviewer','lead')),
    disabled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS hit_verdicts_append_only_u BEFORE UPDATE ON hit_verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS hit_verdicts_append_only_d BEFORE DELETE ON hit_verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS call_verdicts_append_only_u BEFORE UPDATE ON call_verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS call_verdicts_append_only_d BEFORE DELETE ON call_verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
PRAGMA user_version = {SCHEMA_VERSION};
"""

HIT_COLUMNS = ("call_id", "hit_id", "rule_id", "rules_version", "verdict", "comment", "reviewer", "created_at")
CALL_COLUMNS = ("call_id", "verdict", "grade", "comment", "reviewer", "created_at")
MISSED_COLUMNS = ("call_id", "utterance_index", "role", "start_s", "end_s", "text", "category", "comment", "reviewer",
                  "created_at")


def db_path(store_root: str | Path) -> Path:
    """Where a store's review database lives (``STORE/_review/review.sqlite``)."""
    return Path(store_root) / REVIEW_DIR / DB_NAME


def utc_now() -> str:
    """The current time as ISO 8601 UTC text, as stored in ``created_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _open(path: Path) -> sqlite3.Connection:
    # Autocommit mode: every write below opens its own explicit transaction.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # FULL: a verdict acknowledged to a reviewer survives a power cut too.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def connect(store_root: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the store's review database in WAL mode.

    Raises:
        OSError: the ``_review`` folder cannot be created.
        sqlite3.DatabaseError: the file is not a review database.
    """
    path = db_path(store_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _open(path)
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
    return conn


@contextmanager
def _reading(store_root: str | Path) -> Iterator[sqlite3.Connection | None]:
    """A connection to an existing database, or None when nobody reviewed yet (nothing is created)."""
    path = db_path(store_root)
    if not path.exists():
        yield None
        return
    conn = _open(path)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An IMMEDIATE transaction: the write lock is taken at once, so concurrent writers queue, never fail midway."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _clean_comment(comment: str | None) -> str:
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment longer than {MAX_COMMENT_CHARS} characters")
    return comment


def record_hit_verdict(conn: sqlite3.Connection, *, call_id: str, hit_id: str, rule_id: str, rules_version: str,
                       verdict: str, reviewer: str, comment: str = "") -> int:
    """Append one reviewer's verdict on one hit; returns the new row's id.

    Raises:
        ValueError: ``verdict`` is not confirmed/rejected/unsure, or the comment is too long.
    """
    if verdict not in HIT_VERDICTS:
        raise ValueError(f"hit verdict must be one of {HIT_VERDICTS}, got {verdict!r}")
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO hit_verdicts (call_id, hit_id, rule_id, rules_version, verdict, comment, reviewer, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, hit_id, rule_id, rules_version, verdict, _clean_comment(comment), reviewer, utc_now()))
    return int(cursor.lastrowid or 0)


def record_call_verdict(conn: sqlite3.Connection, *, call_id: str, verdict: str, reviewer: str,
                        grade: str = "", comment: str = "") -> int:
    """Append one reviewer's pass/fail verdict (and optional grade) on a call; returns the new row's id.

    Raises:
        ValueError: ``verdict`` is not pass/fail, or the comment or grade is too long.
    """
    if verdict not in CALL_VERDICTS:
        raise ValueError(f"call verdict must be one of {CALL_VERDICTS}, got {verdict!r}")
    grade = (grade or "").strip()
    if len(grade) > 16:
        raise ValueError("grade longer than 16 characters")
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO call_verdicts (call_id, verdict, grade, comment, reviewer, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, verdict, grade, _clean_comment(comment), reviewer, utc_now()))
    return int(cursor.lastrowid or 0)


def record_missed(conn: sqlite3.Connection, *, call_id: str, utterance_index: int, role: str, start_s: float,
                  end_s: float, text: str, category: str, reviewer: str, action: str = "added",
                  comment: str = "") -> int:
    """Append a reviewer's mark that an utterance holds a finding the detectors missed (or its withdrawal).

    Raises:
        ValueError: ``category`` is not one of :data:`MISSED_CATEGORIES`, ``action`` not added/withdrawn,
            the text is empty, or the comment is too long.
    """
    if category not in MISSED_CATEGORIES:
        raise ValueError(f"missed finding category must be one of {MISSED_CATEGORIES}, got {category!r}")
    if action not in MISSED_ACTIONS:
        raise ValueError(f"missed finding action must be one of {MISSED_ACTIONS}, got {action!r}")
    if not text.strip():
        raise ValueError("a missed finding needs the utterance's text")
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO missed_findings (call_id, utterance_index, role, start_s, end_s, text, category, action, "
            "comment, reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, int(utterance_index), role, float(start_s), float(end_s), text, category, action,
             _clean_comment(comment), reviewer, utc_now()))
    return int(cursor.lastrowid or 0)


# -- reading -------------------------------------------------------------------
_CURRENT_HITS = """
SELECT {cols} FROM (
  SELECT h.*, ROW_NUMBER() OVER (PARTITION BY reviewer, hit_id ORDER BY id DESC) AS _n FROM hit_verdicts h {where}
) WHERE _n = 1 ORDER BY id"""
_CURRENT_CALLS = """
SELECT {cols} FROM (
  SELECT c.*, ROW_NUMBER() OVER (PARTITION BY reviewer, call_id ORDER BY id DESC) AS _n FROM call_verdicts c {where}
) WHERE _n = 1 ORDER BY id"""


def _table(rows: list[sqlite3.Row], columns: tuple[str, ...]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in columns})


def _filter(reviewer: str | None, call_id: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if reviewer is not None:
        clauses.append("reviewer = ?")
        params.append(reviewer)
    if call_id is not None:
        clauses.append("call_id = ?")
        params.append(call_id)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def current_hit_verdicts(store_root: str | Path, reviewer: str | None = None,
                         call_id: str | None = None) -> pa.Table:
    """The current verdict of every reviewer on every hit they judged.

    Args:
        store_root: the store directory.
        reviewer: only this reviewer's verdicts (None = everyone's).
        call_id: only this call's hits (None = all calls).

    Returns:
        One row per (reviewer, hit_id): call_id, hit_id, rule_id,
        rules_version, verdict, comment, reviewer, created_at.
    """
    with _reading(store_root) as conn:
        if conn is None:
            return _table([], HIT_COLUMNS)
        where, params = _filter(reviewer, call_id)
        rows = conn.execute(_CURRENT_HITS.format(cols=", ".join(HIT_COLUMNS), where=where), params).fetchall()
    return _table(rows, HIT_COLUMNS)


def current_call_verdicts(store_root: str | Path, reviewer: str | None = None,
                          call_id: str | None = None) -> pa.Table:
    """The current pass/fail verdict of every reviewer on every call they judged.

    Returns:
        One row per (reviewer, call_id): call_id, verdict, grade, comment, reviewer, created_at.
    """
    with _reading(store_root) as conn:
        if conn is None:
            return _table([], CALL_COLUMNS)
        where, params = _filter(reviewer, call_id)
        rows = conn.execute(_CURRENT_CALLS.format(cols=", ".join(CALL_COLUMNS), where=where), params).fetchall()
    return _table(rows, CALL_COLUMNS)


_MISSED_SCHEMA = pa.schema([(c, pa.int64() if c == "utterance_index" else pa.float64() if c.endswith("_s")
                              else pa.string()) for c in MISSED_COLUMNS])
_CURRENT_MISSED = """
SELECT {cols} FROM (
  SELECT m.*, ROW_NUMBER() OVER (PARTITION BY reviewer, call_id, utterance_index, category ORDER BY id DESC) AS _n
  FROM missed_findings m {where}
) WHERE _n = 1 AND action = 'added' ORDER BY id"""


def current_missed(store_root: str | Path, reviewer: str | None = None, call_id: str | None = None) -> pa.Table:
    """The findings reviewers marked as missed and have not withdrawn.

    Returns:
        One row per (reviewer, call, utterance, category): the columns of :data:`MISSED_COLUMNS`.
    """
    with _reading(store_root) as conn:
        if conn is None or not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'missed_findings'").fetchone():
            rows = []
        else:
            where, params = _filter(reviewer, call_id)
            rows = conn.execute(_CURRENT_MISSED.format(cols=", ".join(MISSED_COLUMNS), where=where),
                                params).fetchall()
    return pa.Table.from_pylist([dict(r) for r in rows], schema=_MISSED_SCHEMA)


def hit_history(conn: sqlite3.Connection, hit_id: str, reviewer: str | None = None) -> list[dict[str, str]]:
    """Every verdict ever given on a hit, oldest first (optionally one reviewer's)."""
    where, params = ("AND reviewer = ?", [reviewer]) if reviewer is not None else ("", [])
    rows = conn.execute(f"SELECT {', '.join(HIT_COLUMNS)} FROM hit_verdicts WHERE hit_id = ? {where} ORDER BY id",
                        [hit_id, *params]).fetchall()
    return [dict(r) for r in rows]


def call_history(conn: sqlite3.Connection, call_id: str, reviewer: str | None = None) -> list[dict[str, str]]:
    """Every pass/fail verdict ever given on a call, oldest first (optionally one reviewer's)."""
    where, params = ("AND reviewer = ?", [reviewer]) if reviewer is not None else ("", [])
    rows = conn.execute(f"SELECT {', '.join(CALL_COLUMNS)} FROM call_verdicts WHERE call_id = ? {where} ORDER BY id",
                        [call_id, *params]).fetchall()
    return [dict(r) for r in rows]


# One verdict per call or hit: a lead's current verdict wins over a reviewer's, then the latest.
_CHOSEN = """
SELECT {cols}, reviewer_role FROM (
  SELECT cur.*, COALESCE(u.role, 'reviewer') AS reviewer_role, ROW_NUMBER() OVER (
      PARTITION BY cur.{key} ORDER BY (COALESCE(u.role, 'reviewer') = 'lead') DESC, cur.id DESC) AS _pick
  FROM ({current}) cur LEFT JOIN users u ON u.name = cur.reviewer
) WHERE _pick = 1 ORDER BY {key}"""


def chosen_call_verdicts(store_root: str | Path) -> pa.Table:
    """One verdict per reviewed call (a lead's wins, then the latest), with who gave it.

    Returns:
        call_id, verdict, grade, comment, reviewer, created_at, reviewer_role.
    """
    columns = (*CALL_COLUMNS, "reviewer_role")
    with _reading(store_root) as conn:
        if conn is None:
            return _table([], columns)
        current = _CURRENT_CALLS.format(cols="id, " + ", ".join(CALL_COLUMNS), where="")
        rows = conn.execute(_CHOSEN.format(cols=", ".join(CALL_COLUMNS), key="call_id", current=current)).fetchall()
    return _table(rows, columns)


def chosen_hit_verdicts(store_root: str | Path) -> pa.Table:
    """One verdict per reviewed hit (a lead's wins, then the latest); columns as :func:`current_hit_verdicts`."""
    with _reading(store_root) as conn:
        if conn is None:
            return _table([], HIT_COLUMNS)
        current = _CURRENT_HITS.format(cols="id, " + ", ".join(HIT_COLUMNS), where="")
        rows = conn.execute(_CHOSEN.format(cols=", ".join(HIT_COLUMNS), key="hit_id", current=current)).fetchall()
    return _table(rows, HIT_COLUMNS)


def call_labels(store_root: str | Path, target: str = "verdict") -> pa.Table:
    """One training label per reviewed call, for ``callqa train``.

    A lead's current verdict wins over a reviewer's; among equals the latest wins.

    Args:
        store_root: the store directory.
        target: "verdict" (label pass/fail) or "grade" (label = the grade
            given; calls reviewed without a grade are left out).

    Returns:
        Columns call_id, label.
    """
    if target not in ("verdict", "grade"):
        raise ValueError(f"target must be 'verdict' or 'grade', got {target!r}")
    chosen = chosen_call_verdicts(store_root).to_pylist()
    rows = [(r["call_id"], r[target]) for r in chosen if r[target]]
    return pa.table({"call_id": pa.array([c for c, _ in rows], pa.string()),
                     "label": pa.array([label for _, label in rows], pa.string())})


def rule_precision(store_root: str | Path, reviewer: str | None = None) -> pa.Table:
    """How often each rule's reviewed hits were confirmed, with a Wilson 95 % interval.

    Each hit counts once (a lead's verdict wins, then the latest); ``unsure``
    verdicts are counted but left out of ``reviewed`` and the share.

    Args:
        store_root: the store directory.
        reviewer: count only this reviewer's current verdicts (None = one verdict per hit from everyone).

    Returns:
        One row per rule_id, noisiest first (lowest share): rule_id, reviewed
        (confirmed + rejected), confirmed, rejected, unsure, share
        (confirmed / reviewed, null when nothing was reviewed), ci_low, ci_high.
    """
    from scipy.stats import binomtest

    counts: dict[str, dict[str, int]] = {}
    rows = chosen_hit_verdicts(store_root) if reviewer is None else current_hit_verdicts(store_root, reviewer)
    for row in rows.to_pylist():
        rule = counts.setdefault(row["rule_id"] or "", dict.fromkeys(HIT_VERDICTS, 0))
        rule[row["verdict"]] += 1
    out: list[dict[str, object]] = []
    for rule_id, c in counts.items():
        reviewed = c["confirmed"] + c["rejected"]
        share = low = high = None
        if reviewed:
            interval = binomtest(c["confirmed"], reviewed).proportion_ci(confidence_level=0.95, method="wilson")
            share, low, high = c["confirmed"] / reviewed, float(interval.low), float(interval.high)
        out.append({"rule_id": rule_id, "reviewed": reviewed, "confirmed": c["confirmed"],
                    "rejected": c["rejected"], "unsure": c["unsure"], "share": share, "ci_low": low, "ci_high": high})
    out.sort(key=lambda r: (r["share"] is None, r["share"] if r["share"] is not None else 0.0, r["rule_id"]))
    schema = pa.schema([("rule_id", pa.string()), ("reviewed", pa.int64()), ("confirmed", pa.int64()),
                        ("rejected", pa.int64()), ("unsure", pa.int64()), ("share", pa.float64()),
                        ("ci_low", pa.float64()), ("ci_high", pa.float64())])
    return pa.Table.from_pylist(out, schema=schema)


def verdict_counts(store_root: str | Path) -> dict[str, int]:
    """Rows ever written (history included): ``{'hit_verdicts': n, 'call_verdicts': m}``."""
    with _reading(store_root) as conn:
        if conn is None:
            return {"hit_verdicts": 0, "call_verdicts": 0}
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("hit_verdicts", "call_verdicts")}


__all__ = ["CALL_VERDICTS", "HIT_VERDICTS", "MISSED_CATEGORIES", "call_history", "call_labels",
           "chosen_call_verdicts", "chosen_hit_verdicts", "connect", "current_call_verdicts", "current_hit_verdicts",
           "current_missed", "db_path", "hit_history", "record_call_verdict", "record_hit_verdict", "record_missed",
           "rule_precision", "verdict_counts"]
