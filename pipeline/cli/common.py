"""What every ``callqa`` command shares: exit codes, the consoles, the error line, config and store opening.

Exit codes: 0 all fine; 1 some calls failed or a store could not be written;
2 usage or configuration error. Every error is one line on stderr naming the
file and the reason. All output goes through :data:`out` (results) and
:data:`err` (progress, errors); data from recordings and manifests is printed
with :func:`safe` so a ``[`` in a call id never becomes console markup. When
the output is a pipe or a file (a cron log) lines are never cut.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config import Config, load_config
from pipeline.errors import CallqaError, ConfigError, LexiconError, ManifestError, ModelError, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Width used when the output is not a terminal: wide enough that no line is cut.
_PIPE_WIDTH = 10_000


def _console(stream: Any) -> Console:
    tty = stream.isatty()
    return Console(file=stream, highlight=False, width=None if tty else _PIPE_WIDTH, soft_wrap=not tty)


out = _console(sys.stdout)
err = _console(sys.stderr)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML file overriding config/default.toml keys.")
]
# A str, not a Path: Path("s3://bucket/prefix") would become "s3:/bucket/prefix".
StoreArg = Annotated[str, typer.Argument(
    metavar="STORE", help="Store written by `callqa run`: a directory, or an object-store URI (s3://bucket/prefix).")]


def safe(value: object) -> str:
    """``value`` as text that rich prints literally (no markup from data)."""
    return escape(str(value))


def interactive() -> bool:
    """Whether stdout is a terminal (progress bars and screen-width tables)."""
    return out.is_terminal


def exit_code_for(exc: CallqaError) -> int:
    """2 for what the user must fix before running again (config, manifest, rules, model, store), else 1."""
    if isinstance(exc, (ConfigError, ManifestError, LexiconError, ModelError)):
        return EXIT_USAGE
    return EXIT_FAILED


def fail(error: CallqaError | str, code: int | None = None) -> typer.Exit:
    """Print one error line and return the Exit to raise.

    Args:
        error: the error, or a message.
        code: the exit code; default from the error's type (:func:`exit_code_for`), 2 for a message.
    """
    err.print(f"[bold red]callqa: error:[/] {safe(error)}", soft_wrap=True)
    if code is None:
        code = exit_code_for(error) if isinstance(error, CallqaError) else EXIT_USAGE
    return typer.Exit(code)


def load_config_or_exit(path: Path | None) -> Config:
    """The configuration with ``path``'s overrides, or exit 2 with the offending key."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(exc) from None


def open_store(path: str | Path, config: Config | None = None) -> Any:
    """An existing store (a directory or an object-store URI), or exit 2 with why ``path`` is not one.

    ``config``'s ``[store] storage_options`` reach an object store (default: the
    shipped configuration's; the environment's ``AWS_*`` variables apply anyway).
    """
    from pipeline.store import Store

    options = (config or load_config_or_exit(None)).store.storage_options
    try:
        return Store(path, storage_options=options)
    except StoreError as exc:
        raise fail(exc, EXIT_USAGE) from None


def local_store_dir(store: str | Path, why: str) -> Path:
    """``store`` as a local directory, or exit 2 naming ``why`` this command needs one (not an object store)."""
    from pipeline.store.location import is_uri

    if is_uri(store):
        raise fail(f"{store}: {why}; a store on an object store cannot hold it")
    return Path(store)


def shown_path(store: str | Path) -> str:
    """How a command's summary names a store: its absolute path, or its URI as given."""
    from pipeline.store.location import is_uri

    return str(store) if is_uri(store) else str(Path(store).resolve())


def clock(seconds: float) -> str:
    """mm:ss.s on the call clock."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def coverage_summary(columns: Mapping[str, Any]) -> str:
    """``speech with text: agent 97%, customer 88% · 2 stretches of speech without text (3.1 s)``.

    From the coverage feature columns (a stored feature row, or
    :func:`pipeline.asr.coverage.coverage_columns`); "" when no role has speech.
    """
    shares = [f"{role} {columns[f'{role}_coverage']:.0%}" for role in ("agent", "customer", "mixed")
              if columns.get(f"{role}_coverage") is not None]
    if not shares:
        return ""
    gaps = columns.get("gap_count") or 0
    rest = (f" · {gaps} stretch{'es' if gaps != 1 else ''} of speech without text "
            f"({columns.get('untranscribed_s') or 0.0:.1f} s)") if gaps else ""
    return f"speech with text: {', '.join(shares)}{rest}"


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "ConfigOption", "StoreArg", "clock", "coverage_summary", "err",
           "exit_code_for", "fail", "interactive", "load_config_or_exit", "local_store_dir", "open_store", "out",
           "safe", "shown_path"]
