"""``callqa show``: read a store the way a QA reviewer would, in the terminal.

Without a call id: one line per call, red-line calls first, then by score.
With a call id: the time-stamped, role-labelled transcript with every hit
under the words that raised it, so the audio can be played from that time.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from pipeline.cli.common import clock, fail
from pipeline.store import Store

console = Console(highlight=False)


def _features_by_call(store: Store) -> dict[str, dict[str, Any]]:
    return {r["call_id"]: r for r in store.read("features").to_pylist()}


def _verdict(call: dict[str, Any], row: dict[str, Any]) -> str:
    if call["status"] != "ok":
        return "[red]failed[/]"
    if row.get("redline"):
        return "[bold red]RED LINE[/]"
    if row.get("passed") is None:
        return ""
    return "pass" if row["passed"] else "[yellow]FAIL[/]"


def calls_overview(store: Store) -> Table:
    """A table of every current call, red lines first, then by score: what a QA lead reviews first."""
    calls = store.read("calls").to_pylist()
    hits_by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hit in store.current_hits().to_pylist():
        hits_by_call[hit["call_id"]].append(hit)
    features = _features_by_call(store)
    table = Table(title=f"{len(calls)} calls in {store.root}", box=box.SIMPLE_HEAD, pad_edge=False)
    longest_id = max((len(c["call_id"]) for c in calls), default=4)
    table.add_column("call", no_wrap=True, min_width=min(longest_id, 24))
    table.add_column("agent", min_width=5, max_width=10, overflow="ellipsis", no_wrap=True)
    table.add_column("len", justify="right", no_wrap=True, min_width=4)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    table.add_column("verdict", no_wrap=True, min_width=8)
    table.add_column("hits", justify="right", no_wrap=True, min_width=6)
    table.add_column("findings (fatal first)", min_width=20, no_wrap=True, overflow="ellipsis")

    def order(call: dict[str, Any]) -> tuple[int, float, str]:
        row = features.get(call["call_id"], {})
        return (0 if row.get("redline") else 1, row.get("score", 100.0) or 0.0, call["call_id"])

    for call in sorted(calls, key=order):
        row = features.get(call["call_id"], {})
        # fatal first, then by time: the evidence a reviewer opens first
        hits = sorted(hits_by_call.get(call["call_id"], []), key=lambda h: (h["severity"] != "fatal", h["start_s"]))
        fatal = sum(1 for h in hits if h["severity"] == "fatal")
        score = row.get("score")
        findings = ("\n".join(f"{clock(h['start_s'])} {h['rule_id']}" for h in hits[:3]) if call["status"] == "ok"
                    else f"[red]{call['error_message']}[/]")
        table.add_row(
            call["call_id"], call.get("agent_id") or "",
            f"{call['duration_s']:.0f}s" if call["duration_s"] else "",
            "" if score is None else f"{score:.0f} {row.get('grade') or ''}", _verdict(call, row),
            f"{len(hits)}" + (f" ({fatal}!)" if fatal else ""), findings,
        )
    return table


def print_call(store: Store, call_id: str) -> bool:
    """Print one call's transcript with its hits; False if the call is not in the store."""
    calls = [c for c in store.read("calls").to_pylist() if c["call_id"] == call_id]
    if not calls:
        return False
    call = calls[0]
    console.print(f"[bold]{call_id}[/]  {call.get('team') or ''} {call.get('agent_id') or ''}  "
                  f"{call['duration_s'] or 0:.1f} s  status={call['status']}  model={call['model_id']}  "
                  f"config={call['config_hash']}")
    utterances = sorted((u for u in store.read("utterances").to_pylist() if u["call_id"] == call_id),
                        key=lambda u: u["start_s"])
    hits = sorted((h for h in store.current_hits().to_pylist() if h["call_id"] == call_id),
                  key=lambda h: h["start_s"])
    shown: set[str] = set()

    def print_hits(until_s: float) -> None:
        for hit in hits:
            if hit["hit_id"] not in shown and hit["start_s"] <= until_s:
                shown.add(hit["hit_id"])
                console.print(_hit_line(hit), soft_wrap=True)

    for utterance in utterances:
        print_hits(utterance["start_s"] - 0.05)  # findings in the gap before this utterance
        flag = " [dim](suspect: " + utterance["suspect_reason"] + ")[/]" if utterance["suspect"] else ""
        console.print(f"[cyan]{clock(utterance['start_s'])}[/] [bold]{utterance['role']:>8}[/] "
                      f"{utterance['text']}{flag}", soft_wrap=True)
        print_hits(utterance["end_s"])  # findings that start in it
    print_hits(float("inf"))
    return True


def _hit_line(hit: dict[str, Any]) -> str:
    colour = "red" if hit["severity"] == "fatal" else "yellow"
    text = f" «{hit['matched_text']}»" if hit["matched_text"] else ""
    suspect = " [dim](suspect)[/]" if hit["suspect"] else ""
    return (f"   [{colour}]▲ {clock(hit['start_s'])}–{clock(hit['end_s'])} {hit['rule_id']}[/] {hit['severity']}"
            f"{text} {hit['confidence']:.2f}{suspect} [dim]{hit['hit_id']}[/]")


def show(
    store_dir: Annotated[Path, typer.Argument(metavar="STORE", help="A store written by `callqa run`.")],
    call_id: Annotated[str | None, typer.Argument(help="Show this call's transcript and hits.")] = None,
) -> None:
    """Show a store's calls (red lines first), or one call's transcript with its hits.

    Example:  callqa show store/ demo-002
    """
    if not store_dir.is_dir():
        raise fail(f"{store_dir}: not a store directory")
    store = Store(store_dir)
    if call_id is None:
        console.print(calls_overview(store))
    elif not print_call(store, call_id):
        raise fail(f"{store_dir}: no call {call_id!r} in this store")
