"""Sessions, CSRF tokens and response headers for the review app.

A session is a cookie signed with itsdangerous (HMAC, timestamped): it holds
the user name and a random CSRF token, is ``HttpOnly`` and ``SameSite=Lax``
(links from reports still arrive logged in; no cross-site POST carries it),
and expires after ``max_age_s``. Every state-changing request must echo the
token (form field ``csrf_token`` or header ``X-CSRF-Token``). Anonymous
visitors get a session without a user, so the login form is protected too.
The signing key is created once per store at ``STORE/_review/secret.key``
(mode 0600) so sessions survive a restart.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pipeline.review.verdicts import REVIEW_DIR

COOKIE = "callqa_session"
SECRET_FILE = "secret.key"
#: Sent with every response: no inline script, no framing, no MIME sniffing, no referrer to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def load_secret(store_root: str | Path) -> bytes:
    """The store's session signing key, created (0600) on first use."""
    path = Path(store_root) / REVIEW_DIR / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        key = secrets.token_bytes(32)
        handle.write(key)
    return key


@dataclass(frozen=True)
class Session:
    """What the session cookie carries."""

    user: str | None
    csrf: str


class Sessions:
    """Sign and check session cookies."""

    def __init__(self, secret: bytes, max_age_s: int = 12 * 3600) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="callqa-review-session")
        self.max_age_s = max_age_s

    def dump(self, session: Session) -> str:
        return self._serializer.dumps({"u": session.user, "c": session.csrf})

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when absent, tampered with or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        return Session(user if isinstance(user, str) else None, data["c"])


def new_session(user: str | None = None) -> Session:
    """A fresh session with a new CSRF token (a new one at every login: no session fixation)."""
    return Session(user, secrets.token_urlsafe(32))


def csrf_ok(session: Session | None, token: str | None) -> bool:
    """Whether ``token`` is the session's CSRF token (constant-time comparison)."""
    if session is None or not token:
        return False
    return hmac.compare_digest(session.csrf.encode(), token.encode())


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, schemes, ``//x``) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


__all__ = ["COOKIE", "SECURITY_HEADERS", "Session", "Sessions", "csrf_ok", "load_secret", "new_session", "safe_next"]
