"""``callqa compact`` and ``callqa store upgrade``: keep a store small and current.

Thin layers over :func:`pipeline.store.maintenance.compact` and
:func:`~pipeline.store.maintenance.upgrade_store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOption, StoreArg, err, fail, load_config_or_exit, open_store, out, safe
from pipeline.errors import CallqaError

store_app = typer.Typer(help="Store maintenance: convert a callqa 0.1 store.", no_args_is_help=True,
                        rich_markup_mode=None)


def compact(
    store: StoreArg,
    keep_history: Annotated[float, typer.Option(
        "--keep-history", metavar="DAYS", help="Keep superseded results younger than this many days "
        "(time travel back that far).")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary.")] = False,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="No other `callqa compact` runs on this store meanwhile (needed on an object store, "
        "which has no lock to keep two apart).")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Rewrite STORE to its current rows (and the history asked for); safe while others read and write.

    Example:  callqa compact store/ --keep-history 7
    """
    from pipeline.store.maintenance import compact as compact_store

    if keep_history < 0:
        raise fail(f"--keep-history must be >= 0 days, got {keep_history}")
    target = open_store(store, load_config_or_exit(config_path))
    try:
        report = compact_store(target, keep_history, progress=None if quiet else lambda m: err.print(safe(m)),
                               exclusive=exclusive)
    except CallqaError as exc:
        raise fail(exc) from None
    removed = sum(report.rows_before.values()) - sum(report.rows_after.values())
    out.print(f"compacted {safe(store)}: {report.bytes_before / 1e6:.2f} MB -> {report.bytes_after / 1e6:.2f} MB, "
              f"{removed} superseded rows removed (history kept: {keep_history:g} days)")


@store_app.command("upgrade")
def upgrade(
    store: Annotated[Path, typer.Argument(metavar="STORE", help="A store written by callqa 0.1.")],
) -> None:
    """Convert a store written by callqa 0.1 (ledger format) in place; the old files are kept beside it.

    Example:  callqa store upgrade store/
    """
    from pipeline.store.maintenance import upgrade_store

    try:
        backup = upgrade_store(store, progress=lambda m: err.print(safe(m)))
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(f"upgraded {safe(store)}; the callqa 0.1 files are in {safe(backup)} (delete them when satisfied)")


__all__ = ["compact", "store_app", "upgrade"]
