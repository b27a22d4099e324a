"""``callqa review | users add/list/disable/enable | verdicts export``: the QA review web app and its data.

Each command is a thin layer over :mod:`pipeline.review` (the app factory,
:mod:`~pipeline.review.users`, :mod:`~pipeline.review.verdicts`). Register with::

    from pipeline.cli.review_cmd import review, users_app, verdicts_app
    app.command("review")(review)
    app.add_typer(users_app, name="users")
    app.add_typer(verdicts_app, name="verdicts")
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOption,
    StoreArg,
    err,
    fail,
    load_config_or_exit,
    local_store_dir,
    out,
)
from pipeline.errors import CallqaError

users_app = typer.Typer(help="Reviewer accounts of a store's review app.", no_args_is_help=True)
verdicts_app = typer.Typer(help="Reviewers' verdicts: export them as training labels.", no_args_is_help=True)


def _store_dir(store: str | Path) -> Path:
    """``store`` if it is a local callqa store (nothing is created inside any other folder), else exit 2.

    The review app keeps its SQLite database (WAL mode: shared-memory locks) and
    secret in ``STORE/_review/``, which needs a local disk or a shared file
    system: a store on an object store is refused with that reason.
    """
    from pipeline.store import is_store

    store = local_store_dir(store, "the review app keeps its SQLite database in STORE/_review/, which needs a "
                                   "local disk or shared file system")
    if not store.is_dir():
        raise fail(f"{store}: not a store directory")
    if not is_store(store):
        raise fail(f"{store}: not a callqa store (write one with `callqa run INPUT --out {store}`)")
    return store


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def review(
    store: StoreArg,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    queue: Annotated[list[Path] | None, typer.Option(
        "--queue", help="A sampling-plan queue CSV (call_id column) to offer as well; repeatable.")] = None,
    config_path: ConfigOption = None,
    secure_cookies: Annotated[bool, typer.Option(
        "--secure-cookies", help="Mark the session cookie Secure (when served behind HTTPS).")] = False,
    refresh_every: Annotated[float, typer.Option(help="Seconds between checks for new store results.")] = 10.0,
) -> None:
    """Serve the QA review web app for STORE: the queue of flagged calls, each call with audio, and verdicts.

    Verdicts go to STORE/_review/review.sqlite. Create an account first with `callqa users add`.

    Example:  callqa review store/ --port 8000
    """
    import uvicorn

    from pipeline.review.app import create_app
    from pipeline.review.calls import PiiDisplay
    from pipeline.review.state import ReviewSettings
    from pipeline.review.users import list_users
    from pipeline.scoring.scorecard import load_scorecard
    from pipeline.store import Store
    from pipeline.store.state import scoring_state

    root = _store_dir(store)
    config = load_config_or_exit(config_path)
    for path in queue or []:
        if not path.is_file():
            raise fail(f"{path}: queue file not found")
    if not any(not u.disabled for u in list_users(store)):
        raise fail(f"{store}: no reviewer accounts yet; create one with `callqa users add {store} NAME --role lead`")
    if not _is_loopback(host):
        err.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it sees the login page; "
                  "serve it behind HTTPS and use --secure-cookies")
    try:
        # the scorecard the store is scored with (recorded by run/score), for item names and evidence
        state = scoring_state(Store(root))
        scorecard = state.scorecard if state is not None else load_scorecard(config.scoring.scorecard)
        settings = ReviewSettings(
            store_root=root, scorecard=scorecard, queue_files=tuple(queue or ()), secure_cookies=secure_cookies,
            refresh_every_s=refresh_every,
            pii=PiiDisplay(config.pii.mask, config.pii.mask_char, config.pii.chinese_digits))
        err.print(f"indexing {store} ...")
        app = create_app(settings)
    except CallqaError as exc:
        raise fail(exc) from None
    snapshot = app.state.review.snapshot
    out.print(f"{snapshot.size} calls indexed in {snapshot.build_s:.1f} s · PII "
              f"{'masked and bleeped' if config.pii.mask else 'shown (pii.mask is off)'}")
    out.print(f"review app: http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@users_app.command("add")
def users_add(
    store: StoreArg,
    name: Annotated[str, typer.Argument(help="Login name (letters, digits, _ . @ -).")],
    role: Annotated[str, typer.Option(help="reviewer, or lead (sees everyone's verdicts; theirs win).")] = "reviewer",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (for scripts).")] = False,
) -> None:
    """Create a reviewer account (the password is asked for twice, or read from stdin).

    Example:  callqa users add store/ wang --role lead
    """
    from pipeline.review.users import add_user

    _store_dir(store)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        user = add_user(store, name, password, role)
    except CallqaError as exc:
        raise fail(exc, EXIT_USAGE) from None
    out.print(f"added {user.role} {user.name}")


@users_app.command("list")
def users_list(store: StoreArg) -> None:
    """List the accounts of a store's review app.

    Example:  callqa users list store/
    """
    from pipeline.review.users import list_users

    table = Table(title=f"review accounts in {_store_dir(store)}")
    for column in ("name", "role", "status", "created"):
        table.add_column(column)
    for user in list_users(store):
        table.add_row(user.name, user.role, "disabled" if user.disabled else "active", user.created_at[:19])
    out.print(table)


def _set_disabled(store: str, name: str, disabled: bool) -> None:
    from pipeline.review.users import set_disabled

    try:
        set_disabled(_store_dir(store), name, disabled)
    except CallqaError as exc:
        raise fail(exc, EXIT_FAILED) from None
    out.print(f"{'disabled' if disabled else 'enabled'} {name}")


@users_app.command("disable")
def users_disable(store: StoreArg, name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable an account: its sessions stop working at once; its verdicts stay.

    Example:  callqa users disable store/ wang
    """
    _set_disabled(store, name, True)


@users_app.command("enable")
def users_enable(store: StoreArg, name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Enable a disabled account again.

    Example:  callqa users enable store/ wang
    """
    _set_disabled(store, name, False)


@verdicts_app.command("export")
def verdicts_export(
    store: StoreArg,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Parquet (or .csv) file to write.")],
    hits: Annotated[bool, typer.Option("--hits", help="Export every reviewer's current hit verdicts instead.")] = False,
    missed: Annotated[bool, typer.Option(
        "--missed", help="Export the findings reviewers marked as missed instead (the agent line, PII-masked, "
                         "its category, who marked it).")] = False,
    target: Annotated[str, typer.Option(help="Label: the call verdict (pass/fail) or the grade.")] = "verdict",
) -> None:
    """Export the reviewers' verdicts: one training label per call (call_id, label, ...), the hit verdicts,
    or the missed findings.

    The label file is what `callqa train --labels` reads; `callqa train STORE` reads the verdicts directly.

    Example:  callqa verdicts export store/ --out labels.parquet
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pipeline.review.verdicts import chosen_call_verdicts, current_hit_verdicts, current_missed

    _store_dir(store)
    if target not in ("verdict", "grade"):
        raise fail(f"--target must be verdict or grade, got {target!r}")
    if hits and missed:
        raise fail("--hits and --missed: choose one")
    if missed:
        table = current_missed(store)
    elif hits:
        table = current_hit_verdicts(store)
    else:
        chosen = chosen_call_verdicts(store)
        chosen = chosen.filter(pc.not_equal(chosen[target], "")) if chosen.num_rows else chosen
        table = pa.table({"call_id": chosen["call_id"], "label": chosen[target],
                          **{c: chosen[c] for c in ("verdict", "grade", "reviewer", "reviewer_role", "created_at",
                                                    "comment")}})
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix.lower() == ".csv":
            pacsv.write_csv(table, out_path)
        else:
            pq.write_table(table, out_path)
    except OSError as exc:
        raise fail(f"{out_path}: cannot write: {exc.strerror or exc}", EXIT_FAILED) from None
    what = "missed findings" if missed else "hit verdicts" if hits else "call labels"
    out.print(f"wrote {table.num_rows} {what} to {out_path}")
    if not hits and not missed and table.num_rows:
        counts = pc.value_counts(table["label"]).to_pylist()
        out.print("labels: " + ", ".join(f"{c['values']} {c['counts']}" for c in counts))


__all__ = ["review", "users_app", "verdicts_app"]
