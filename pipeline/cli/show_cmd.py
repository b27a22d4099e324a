"""``callqa show``: read a store the way a QA reviewer would, in the terminal.

Without a call id: one line per call, worst first: by outcome (fail, needs
review, needs listening, pass; a call that could not be processed counts as a
fail with score 0), red lines first within an outcome, then by score. With a call id:
the time-stamped, role-labelled transcript with every hit under the words that
raised it, so the audio can be played from that time, and every stretch of
speech that has no text ("speech here, no text", with the reason), so a
reviewer knows where to listen; the header says how much of each role's speech
has text.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from pipeline.asr.coverage import gap_label
from pipeline.cli.common import (
    ConfigOption,
    StoreArg,
    clock,
    coverage_summary,
    fail,
    load_config_or_exit,
    open_store,
    out,
    safe,
)
from pipeline.records import OUTCOMES, REDLINE_CATEGORIES, redline_label
from pipeline.store import Store
from pipeline.text.sound_check import read_note

_OUTCOME_STYLE = {"fail": "[bold red]FAIL[/]", "needs_review": "[yellow]needs review[/]",
                  "needs_listening": "[yellow]needs listening[/]", "pass": "pass"}


def _specificity(hit: dict[str, Any]) -> tuple[int, float]:
    """Fatal and red-line findings first, then found evidence, then missing phrases (absence), by time."""
    if hit["severity"] == "fatal":
        rank = 0
    elif hit["category"] in REDLINE_CATEGORIES:
        rank = 1
    elif hit["match_type"] == "absence":
        rank = 3
    else:
        rank = 2
    return rank, hit["start_s"]


def _verdict(call: dict[str, Any], row: dict[str, Any]) -> str:
    if call["status"] != "ok":
        return "[red]error[/]"
    outcome = row.get("outcome")
    text = _OUTCOME_STYLE.get(outcome or "", safe(outcome or ""))
    label = redline_label(row.get("redline"), row.get("outcome_reasons"))
    return text + (f" [bold red]{label}[/]" if label == "red line" else f" [yellow]{label}[/]" if label else "")


def calls_overview(store: Store, limit: int) -> Table:
    """A table of the store's calls, worst outcome first: what a QA lead reviews first."""
    calls = store.read("calls").to_pylist()
    features = {r["call_id"]: r for r in store.read("features").to_pylist()}
    hits_by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hit in store.read("hits").to_pylist():
        hits_by_call[hit["call_id"]].append(hit)

    def order(call: dict[str, Any]) -> tuple[int, int, float, str]:
        row = features.get(call["call_id"], {})
        outcome = "fail" if call["status"] != "ok" else (row.get("outcome") or "pass")
        return (OUTCOMES.index(outcome), 0 if row.get("redline") else 1, row.get("score") or 0.0, call["call_id"])

    shown = sorted(calls, key=order)[:limit]
    table = Table(title=f"{len(calls)} calls in {safe(store.name)}" + (f" (first {limit})" if len(calls) > limit
                                                                       else ""), box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (("call", "left"), ("date", "left"), ("team", "left"), ("agent", "left"), ("len", "right"),
                          ("score", "right"), ("outcome", "left"), ("p(model)", "right"), ("hits", "right"),
                          ("findings (most specific first)", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "findings (most specific first)")  # type: ignore[arg-type]
    for call in shown:
        row = features.get(call["call_id"], {})
        hits = sorted(hits_by_call.get(call["call_id"], []), key=_specificity)
        fatal = sum(1 for h in hits if h["severity"] == "fatal")
        score = row.get("score")
        probability = row.get("classifier_probability")
        findings = ("\n".join(f"{clock(h['start_s'])} {safe(h['rule_id'])}" for h in hits[:4])
                    if call["status"] == "ok" else f"[red]{safe(call['error_message'])}[/]")
        table.add_row(
            safe(call["call_id"]), safe(call["call_date"]), safe(call.get("team") or ""),
            safe(call.get("agent_id") or ""), f"{call['duration_s']:.0f}s" if call["duration_s"] else "",
            "" if score is None else f"{score:.0f} {safe(row.get('grade') or '')}", _verdict(call, row),
            "" if probability is None else f"{probability:.2f}",
            f"{len(hits)}" + (f" ({fatal}!)" if fatal else ""), findings,
        )
    return table


def print_call(store: Store, call_id: str) -> bool:
    """Print one call's transcript with its hits; False if the call is not in the store."""
    calls = store.read("calls", call_ids=[call_id]).to_pylist()
    if not calls:
        return False
    call = calls[0]
    features = store.read("features", call_ids=[call_id]).to_pylist()
    row = features[0] if features else {}
    out.print(f"[bold]{safe(call_id)}[/]  {safe(call['call_date'])}  {safe(call.get('team') or '')} "
              f"{safe(call.get('agent_id') or '')}  {call['duration_s'] or 0:.1f} s  {_verdict(call, row)}"
              + (f"  score {row['score']:.0f} {safe(row.get('grade') or '')}" if row.get("score") is not None else ""))
    if row.get("outcome_reasons"):
        out.print(f"  why: {safe(', '.join(row['outcome_reasons']))}")
    coverage = _coverage_line(row)
    if coverage:
        out.print(f"  {coverage}")
    out.print(f"  [dim]speech model {safe(call['asr_model'])} · rules {safe(call['rules_version'])} · config "
              f"{safe(call['config_hash'])}[/]")
    if call["status"] != "ok":
        out.print(f"  [red]{safe(call['error_message'])}[/]")
    utterances = sorted(store.read("utterances", call_ids=[call_id]).to_pylist(), key=lambda u: u["start_s"])
    hits = sorted(store.read("hits", call_ids=[call_id]).to_pylist(), key=lambda h: h["start_s"])
    gaps = sorted(store.read("gaps", call_ids=[call_id]).to_pylist(), key=lambda g: g["start_s"])
    shown: set[str] = set()

    def print_hits(until_s: float) -> None:
        for hit in hits:
            if hit["hit_id"] not in shown and hit["start_s"] <= until_s:
                shown.add(hit["hit_id"])
                out.print(_hit_line(hit))

    lines = sorted([(u["start_s"], 0, u) for u in utterances] + [(g["start_s"], 1, g) for g in gaps],
                   key=lambda item: (item[0], item[1]))
    for start_s, kind, item in lines:
        print_hits(start_s - 0.05)  # findings before this line
        if kind == 1:
            out.print(_gap_line(item))
            continue
        flag = " [dim](suspect: " + safe(item["suspect_reason"]) + ")[/]" if item["suspect"] else ""
        out.print(f"[cyan]{clock(item['start_s'])}[/] [bold]{safe(item['role']):>8}[/] {safe(item['text'])}{flag}")
        print_hits(item["end_s"])  # findings that start in it
    print_hits(float("inf"))
    return True


def _coverage_line(row: dict[str, Any]) -> str:
    """How much of the speech has text, per role, and how much has none (from the feature row)."""
    summary = coverage_summary(row)
    if not summary:
        return ""
    return f"[{'yellow' if row.get('gap_count') else 'dim'}]{summary}[/]"


def _gap_line(gap: dict[str, Any]) -> str:
    """A stretch of speech without text, where it happened in the transcript (listen there)."""
    length = gap["end_s"] - gap["start_s"]
    detail = f": {safe(gap['detail'])}" if gap.get("detail") else ""
    return (f"[cyan]{clock(gap['start_s'])}[/] [bold]{safe(gap['role']):>8}[/] [yellow]░ {gap_label(gap['reason'])} "
            f"({length:.1f} s, {safe(gap['reason'])})[/][dim]{detail}[/]")


def _hit_line(hit: dict[str, Any]) -> str:
    colour = "red" if hit["severity"] == "fatal" else "yellow"
    text = f" «{safe(hit['matched_text'])}»" if hit["matched_text"] else ""
    note = read_note(hit)
    if note is not None:  # not in the transcript: the audio was scored against the phrase
        text += f" [dim](sound check: the transcript has «{safe(str(note.get('written', '')))}»; listen)[/]"
    suspect = " [dim](suspect)[/]" if hit["suspect"] else ""
    # the text model has one rule id for every class: say which it heard
    kind = f" ({safe(hit['category'])})" if hit.get("match_type") == "model" else ""
    return (f"   [{colour}]▲ {clock(hit['start_s'])}–{clock(hit['end_s'])} {safe(hit['rule_id'])}{kind}[/] "
            f"{hit['severity']}{text} {hit['confidence']:.2f}{suspect} [dim]{hit['hit_id']}[/]")


def show(
    store_dir: StoreArg,
    call_id: Annotated[str | None, typer.Argument(help="Show this call's transcript and hits.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many calls in the list.")] = 200,
    config_path: ConfigOption = None,
) -> None:
    """Show a store's calls (worst outcome first), or one call's transcript with its hits.

    Example:  callqa show store/ demo-002
    """
    store = open_store(store_dir, load_config_or_exit(config_path))
    if call_id is None:
        out.print(calls_overview(store, limit))
    elif not print_call(store, call_id):
        raise fail(f"{store_dir}: no call {call_id!r} in this store")
