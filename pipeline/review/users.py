"""Reviewer accounts, kept in the review database (``users`` table, see :mod:`pipeline.review.verdicts`).

Passwords are hashed with argon2id (argon2-cffi's defaults); the plain text
is never stored or logged. A ``lead`` sees every reviewer's verdicts and their
verdict wins when labels are built; a ``reviewer`` sees their own.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.errors import CallqaError
from pipeline.review.verdicts import ROLES, connect, transaction, utc_now

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name takes as long as a wrong password."""
    return _HASHER.hash("callqa-no-such-user")


class UserError(CallqaError):
    """A user cannot be added or changed (bad name, weak password, already exists, unknown)."""


@dataclass(frozen=True)
class User:
    """One account (without its password hash)."""

    name: str
    role: str
    disabled: bool
    created_at: str

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


def _user(row: sqlite3.Row) -> User:
    return User(row["name"], row["role"], bool(row["disabled"]), row["created_at"])


def add_user(store_root: str | Path, name: str, password: str, role: str = "reviewer") -> User:
    """Create an account.

    Raises:
        UserError: the name is not 1-64 of ``A-Z a-z 0-9 _ . @ -``, the
            password is shorter than 8 characters, the role is unknown, or the
            name is taken.
    """
    where = str(Path(store_root) / "_review")
    if not _NAME.match(name):
        raise UserError(where, f"user name {name!r} must be 1-64 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(where, f"password must have at least {MIN_PASSWORD_CHARS} characters")
    if role not in ROLES:
        raise UserError(where, f"role must be one of {', '.join(ROLES)}, got {role!r}")
    password_hash = _HASHER.hash(password)
    conn = connect(store_root)
    try:
        with transaction(conn):
            conn.execute("INSERT INTO users (name, password_hash, role, disabled, created_at) VALUES (?, ?, ?, 0, ?)",
                         (name, password_hash, role, utc_now()))
    except sqlite3.IntegrityError:
        raise UserError(where, f"user {name!r} already exists") from None
    finally:
        conn.close()
    return User(name, role, False, "")


def set_disabled(store_root: str | Path, name: str, disabled: bool = True) -> None:
    """Disable (or enable again) an account; a disabled user's sessions stop working at once.

    Raises:
        UserError: no such user.
    """
    conn = connect(store_root)
    try:
        with transaction(conn):
            changed = conn.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)).rowcount
    finally:
        conn.close()
    if not changed:
        raise UserError(str(Path(store_root) / "_review"), f"no user {name!r}")


def list_users(store_root: str | Path) -> list[User]:
    """Every account, by name."""
    conn = connect(store_root)
    try:
        return [_user(r) for r in conn.execute("SELECT * FROM users ORDER BY name")]
    finally:
        conn.close()


def get_user(conn: sqlite3.Connection, name: str) -> User | None:
    """The enabled account called ``name``, or None."""
    row = conn.execute("SELECT * FROM users WHERE name = ? AND disabled = 0", (name,)).fetchone()
    return _user(row) if row else None


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    """The enabled user whose password matches, else None (same cost for unknown names)."""
    row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    try:
        _HASHER.verify(row["password_hash"] if row else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    return _user(row)


__all__ = ["User", "UserError", "add_user", "authenticate", "get_user", "list_users", "set_disabled"]
