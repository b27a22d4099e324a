"""The review web app (FastAPI, server-rendered Jinja2, a little vanilla JS).

URLs (docs/contracts.md): ``/`` queue · ``/calls/{call_id}`` call page ·
``/rules`` rule quality · ``/queues/{name}`` a sampling queue ·
``/audio/{call_id}`` audio with range requests; plus ``/login``, ``/logout``,
``/next`` (the call after this one in the same queue), the two verdict POSTs
and ``/refresh`` (leads: rebuild the index now).

Every page needs a logged-in, enabled user; every POST needs the session's
CSRF token; templates autoescape everything they print.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.records import redline_label
from pipeline.review import verdicts
from pipeline.review.pages import register_pages
from pipeline.review.security import (
    COOKIE,
    SECURITY_HEADERS,
    Session,
    Sessions,
    csrf_ok,
    load_secret,
    new_session,
    safe_next,
)
from pipeline.review.snapshot import Snapshot
from pipeline.review.state import ReviewSettings, ReviewState
from pipeline.review.users import User, authenticate, get_user

HERE = Path(__file__).parent
#: Failed logins per name before it is locked out for LOCKOUT_S.
MAX_FAILED_LOGINS = 5
LOCKOUT_S = 60.0


class LoginRequired(Exception):
    """Raised by :func:`Web.viewer` when the request has no valid session."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request and their session."""

    user: User
    session: Session

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def is_lead(self) -> bool:
        return self.user.is_lead

    @property
    def reviewer_filter(self) -> str | None:
        """Whose verdicts this user sees: everyone's for a lead (None), else their own."""
        return None if self.is_lead else self.user.name


def environment() -> Environment:
    """The Jinja2 environment: templates beside this module, autoescaping on for every template."""
    from pipeline.cli.common import clock

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["clock"] = clock
    env.filters["pct"] = lambda x: f"{100 * x:.0f}%" if x is not None else "–"
    env.globals["redline_label"] = redline_label
    return env


class Web:
    """Helpers the routes share: sessions, rendering, auth and CSRF checks."""

    def __init__(self, state: ReviewState) -> None:
        self.state = state
        self.sessions = Sessions(load_secret(state.settings.store_root), state.settings.session_max_age_s)
        self.templates = Jinja2Templates(env=environment())
        self._failures: dict[str, tuple[int, float]] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self.state.snapshot

    def session(self, request: Request) -> Session | None:
        return self.sessions.load(request.cookies.get(COOKIE))

    def set_session(self, response: Response, session: Session) -> Response:
        response.set_cookie(COOKIE, self.sessions.dump(session), max_age=self.sessions.max_age_s, path="/",
                            httponly=True, samesite="lax", secure=self.state.settings.secure_cookies)
        return response

    def viewer(self, request: Request) -> Viewer:
        """The request's enabled user (checked against the database on every request, so disabling is immediate)."""
        session = self.session(request)
        if session is None or session.user is None:
            raise LoginRequired()
        user = get_user(self.state.db(), session.user)
        if user is None:
            raise LoginRequired()
        return Viewer(user, session)

    async def checked_form(self, request: Request, session: Session | None) -> Mapping[str, Any]:
        """The POSTed form, after checking its CSRF token (form field or ``X-CSRF-Token`` header)."""
        form = await request.form()
        token = request.headers.get("x-csrf-token") or form.get("csrf_token")
        if not csrf_ok(session, token if isinstance(token, str) else None):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    def render(self, request: Request, template: str, viewer: Viewer | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.update(viewer=viewer, csrf=viewer.session.csrf if viewer else context.get("csrf", ""),
                       queues=sorted(self.state.queues()) if viewer else [])
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    # -- login throttling --------------------------------------------------------
    def locked_out(self, name: str) -> bool:
        count, since = self._failures.get(name, (0, 0.0))
        if count >= MAX_FAILED_LOGINS and time.monotonic() - since < LOCKOUT_S:
            return True
        if count >= MAX_FAILED_LOGINS:
            self._failures.pop(name, None)
        return False

    def login_failed(self, name: str) -> None:
        count, _ = self._failures.get(name, (0, 0.0))
        self._failures[name] = (count + 1, time.monotonic())

    def login_ok(self, name: str) -> None:
        self._failures.pop(name, None)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def create_app(settings: ReviewSettings, loader: Callable[[], Snapshot] | None = None) -> FastAPI:
    """Build the app for one store.

    Args:
        settings: store, PII display, scorecard, queue files, cookie and refresh settings.
        loader: builds the snapshot (default: read the store); tests pass their own.
    """
    state = ReviewState(settings, loader)
    web = Web(state)
    app = FastAPI(title="callqa review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET" and not request.url.path.startswith("/audio/") and not _wants_json(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse({"error": "not logged in"}, status_code=401)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or request.url.path.startswith("/audio/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        try:
            viewer = web.viewer(request)
        except LoginRequired:
            viewer = None
        return web.render(request, "error.html", viewer, status=exc.status_code, status_code=exc.status_code,
                          message=exc.detail)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
        session = web.session(request) or new_session()
        response = web.render(request, "login.html", None, csrf=session.csrf, next=safe_next(next), error="")
        return web.set_session(response, session)

    @app.post("/login")
    async def login(request: Request) -> Response:
        session = web.session(request)
        form = await web.checked_form(request, session)
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:1024]
        target = safe_next(str(form.get("next", "/")))
        if web.locked_out(name):
            return web.render(request, "login.html", None, status=429, csrf=session.csrf if session else "",
                              next=target, error="too many failed attempts: wait a minute")
        user = await run_in_threadpool(lambda: authenticate(state.db(), name, password))
        if user is None:
            web.login_failed(name)
            return web.render(request, "login.html", None, status=401, csrf=session.csrf if session else "",
                              next=target, error="wrong name or password")
        web.login_ok(name)
        return web.set_session(RedirectResponse(target, status_code=303), new_session(user.name))

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await web.checked_form(request, web.session(request))
        return web.set_session(RedirectResponse("/login", status_code=303), new_session())

    @app.post("/refresh")
    async def refresh(request: Request) -> Response:
        viewer = web.viewer(request)
        await web.checked_form(request, viewer.session)
        if not viewer.is_lead:
            raise HTTPException(403, "only a lead can rebuild the index")
        await run_in_threadpool(state.refresh, True)
        return RedirectResponse("/", status_code=303)

    register_pages(app, web)
    verdicts.connect(settings.store_root).close()
    return app


__all__ = ["LoginRequired", "Viewer", "Web", "create_app", "environment"]
