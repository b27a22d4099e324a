"""The verdict database: append-only history, current verdicts, labels, rule precision, concurrency."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pipeline.review import verdicts as v
from pipeline.review.users import UserError, add_user, authenticate, get_user, list_users, set_disabled


def _hit(conn: sqlite3.Connection, hit_id: str, verdict: str, reviewer: str, rule_id: str = "r1",
         call_id: str = "c1", comment: str = "") -> int:
    return v.record_hit_verdict(conn, call_id=call_id, hit_id=hit_id, rule_id=rule_id, rules_version="rv1",
                                verdict=verdict, reviewer=reviewer, comment=comment)


def test_reading_a_store_nobody_reviewed_creates_nothing(tmp_path):
    assert v.current_hit_verdicts(tmp_path).num_rows == 0
    assert v.current_call_verdicts(tmp_path).column_names == list(v.CALL_COLUMNS)
    assert v.call_labels(tmp_path).column_names == ["call_id", "label"]
    assert v.rule_precision(tmp_path).num_rows == 0
    assert not (tmp_path / "_review").exists()


def test_database_is_wal_and_append_only(tmp_path):
    conn = v.connect(tmp_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _hit(conn, "h1", "confirmed", "ann")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE hit_verdicts SET verdict = 'rejected'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM hit_verdicts")
    with pytest.raises(ValueError, match="hit verdict"):
        _hit(conn, "h1", "maybe", "ann")
    assert v.db_path(tmp_path) == tmp_path / "_review" / "review.sqlite"


def test_missed_findings_are_append_only_and_a_version_1_database_gains_them(tmp_path):
    assert v.current_missed(tmp_path).num_rows == 0 and not (tmp_path / "_review").exists()
    conn = v.connect(tmp_path)
    conn.executescript("DROP TABLE missed_findings; PRAGMA user_version = 1;")  # as a database of before
    assert v.current_missed(tmp_path).num_rows == 0  # reading an old database works and changes nothing
    conn = v.connect(tmp_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == v.SCHEMA_VERSION

    def mark(index: int, category: str, reviewer: str, action: str = "added") -> int:
        return v.record_missed(conn, call_id="c1", utterance_index=index, role="agent", start_s=1.0, end_s=2.0,
                               text=f"line {index}", category=category, reviewer=reviewer, action=action)

    mark(1, "redline_coldness", "ann")
    mark(1, "redline_coldness", "bob")
    mark(2, "arguing", "ann")
    mark(2, "arguing", "ann", "withdrawn")
    mark(2, "arguing", "bob")
    rows = v.current_missed(tmp_path).to_pylist()
    assert [(r["utterance_index"], r["category"], r["reviewer"]) for r in rows] == [
        (1, "redline_coldness", "ann"), (1, "redline_coldness", "bob"), (2, "arguing", "bob")]
    assert [r["reviewer"] for r in v.current_missed(tmp_path, reviewer="ann").to_pylist()] == ["ann"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM missed_findings")
    with pytest.raises(ValueError, match="category"):
        mark(3, "opening", "ann")
    with pytest.raises(ValueError, match="action"):
        mark(3, "arguing", "ann", "deleted")


def test_changed_verdict_keeps_history_and_latest_is_current(tmp_path):
    conn = v.connect(tmp_path)
    _hit(conn, "h1", "confirmed", "ann")
    _hit(conn, "h1", "rejected", "ann", comment="misheard")
    _hit(conn, "h1", "confirmed", "bob")
    current = {(r["reviewer"], r["hit_id"]): r for r in v.current_hit_verdicts(tmp_path).to_pylist()}
    assert {k: r["verdict"] for k, r in current.items()} == {("ann", "h1"): "rejected", ("bob", "h1"): "confirmed"}
    assert current[("ann", "h1")]["comment"] == "misheard"
    assert [h["verdict"] for h in v.hit_history(conn, "h1", "ann")] == ["confirmed", "rejected"]
    assert v.current_hit_verdicts(tmp_path, reviewer="bob").num_rows == 1
    assert v.verdict_counts(tmp_path) == {"hit_verdicts": 3, "call_verdicts": 0}
    assert v.current_hit_verdicts(tmp_path).column_names == list(v.HIT_COLUMNS)


def test_call_labels_lead_wins_then_latest(tmp_path):
    add_user(tmp_path, "lead1", "password-1", "lead")
    add_user(tmp_path, "ann", "password-2")
    conn = v.connect(tmp_path)
    v.record_call_verdict(conn, call_id="c1", verdict="fail", reviewer="lead1", grade="D")
    v.record_call_verdict(conn, call_id="c1", verdict="pass", reviewer="ann", grade="A")  # later, but not a lead
    v.record_call_verdict(conn, call_id="c2", verdict="fail", reviewer="ann")
    v.record_call_verdict(conn, call_id="c2", verdict="pass", reviewer="ghost")  # unknown user counts as reviewer
    v.record_call_verdict(conn, call_id="c3", verdict="pass", reviewer="ann", grade="B")
    labels = dict(zip(*v.call_labels(tmp_path).to_pydict().values(), strict=True))
    assert labels == {"c1": "fail", "c2": "pass", "c3": "pass"}
    grades = dict(zip(*v.call_labels(tmp_path, target="grade").to_pydict().values(), strict=True))
    assert grades == {"c1": "D", "c3": "B"}
    chosen = {r["call_id"]: r for r in v.chosen_call_verdicts(tmp_path).to_pylist()}
    assert chosen["c1"]["reviewer_role"] == "lead" and chosen["c2"]["reviewer"] == "ghost"
    with pytest.raises(ValueError):
        v.record_call_verdict(conn, call_id="c1", verdict="confirmed", reviewer="ann")


def test_rule_precision_counts_each_hit_once_with_wilson_interval(tmp_path):
    add_user(tmp_path, "lead1", "password-1", "lead")
    conn = v.connect(tmp_path)
    for i in range(8):
        _hit(conn, f"a{i}", "confirmed", "ann", rule_id="good")
    _hit(conn, "a9", "rejected", "ann", rule_id="good")
    for i in range(4):
        _hit(conn, f"b{i}", "rejected", "ann", rule_id="noisy")
    _hit(conn, "b0", "confirmed", "lead1", rule_id="noisy")  # the lead overrules ann on b0
    _hit(conn, "b4", "unsure", "ann", rule_id="noisy")
    rows = {r["rule_id"]: r for r in v.rule_precision(tmp_path).to_pylist()}
    assert v.rule_precision(tmp_path)["rule_id"].to_pylist() == ["noisy", "good"]  # noisiest first
    assert (rows["good"]["reviewed"], rows["good"]["confirmed"], rows["good"]["share"]) == (9, 8, pytest.approx(8 / 9))
    assert (rows["noisy"]["reviewed"], rows["noisy"]["confirmed"], rows["noisy"]["unsure"]) == (4, 1, 1)
    # Wilson 95 % for 8/9: (0.565, 0.980) -- computed by hand: (p + z²/2n ± z√(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    assert rows["good"]["ci_low"] == pytest.approx(0.5650, abs=1e-3)
    assert rows["good"]["ci_high"] == pytest.approx(0.9801, abs=1e-3)
    assert rows["noisy"]["ci_low"] < 0.25 < rows["noisy"]["ci_high"]


def test_concurrent_writers_lose_nothing(tmp_path):
    v.connect(tmp_path).close()
    errors: list[BaseException] = []

    def work(reviewer: str) -> None:
        conn = v.connect(tmp_path)
        try:
            for i in range(40):
                _hit(conn, f"h{i % 7}", ("confirmed", "rejected", "unsure")[i % 3], reviewer)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(f"r{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert v.verdict_counts(tmp_path)["hit_verdicts"] == 8 * 40
    assert v.current_hit_verdicts(tmp_path).num_rows == 8 * 7


def test_users_add_authenticate_disable(tmp_path):
    add_user(tmp_path, "ann", "correct horse", "reviewer")
    conn = v.connect(tmp_path)
    stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert authenticate(conn, "ann", "correct horse").role == "reviewer"
    assert authenticate(conn, "ann", "wrong") is None
    assert authenticate(conn, "nobody", "correct horse") is None
    with pytest.raises(UserError, match="already exists"):
        add_user(tmp_path, "ann", "another password")
    with pytest.raises(UserError, match="at least 8"):
        add_user(tmp_path, "bob", "short")
    with pytest.raises(UserError, match="role"):
        add_user(tmp_path, "bob", "long enough", "admin")
    with pytest.raises(UserError, match="user name"):
        add_user(tmp_path, "../bob", "long enough")
    set_disabled(tmp_path, "ann")
    assert authenticate(conn, "ann", "correct horse") is None
    assert get_user(conn, "ann") is None
    assert [(u.name, u.disabled) for u in list_users(tmp_path)] == [("ann", True)]
    with pytest.raises(UserError, match="no user"):
        set_disabled(tmp_path, "zed")
