"""What every ``callqa`` command shares: exit codes, consoles, the error line, config loading.

Exit codes: 0 all fine; 1 some calls failed or a store could not be written;
2 usage or configuration error. Every error is one line on stderr naming the
file and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.config import Config, load_config
from pipeline.errors import CallqaError, ConfigError, LexiconError, ManifestError, ModelError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML file overriding config/default.toml keys.")
]
StoreArg = Annotated[Path, typer.Argument(metavar="STORE", help="Store directory written by `callqa run`.")]


def exit_code_for(exc: CallqaError) -> int:
    """2 for what the user must fix before running again (config, manifest, rules, model), else 1."""
    return EXIT_USAGE if isinstance(exc, (ConfigError, ManifestError, LexiconError, ModelError)) else EXIT_FAILED


def fail(error: CallqaError | str, code: int | None = None) -> typer.Exit:
    """Print one error line and return the Exit to raise.

    Args:
        error: the error, or a message.
        code: the exit code; default from the error's type (:func:`exit_code_for`), 2 for a message.
    """
    err.print(f"[bold red]callqa: error:[/] {error}", soft_wrap=True)
    if code is None:
        code = exit_code_for(error) if isinstance(error, CallqaError) else EXIT_USAGE
    return typer.Exit(code)


def load_config_or_exit(path: Path | None) -> Config:
    """The configuration with ``path``'s overrides, or exit 2 with the offending key."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(exc) from None


def clock(seconds: float) -> str:
    """mm:ss.s on the call clock."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"
