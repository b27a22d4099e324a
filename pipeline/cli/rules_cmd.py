"""``callqa rules check|test|match``, ``callqa rescore`` and ``callqa redact``.

Thin layers over :func:`pipeline.text.rules.load_rules`,
:func:`pipeline.text.matcher.run_examples` / :func:`~pipeline.text.matcher.detect_phrases`,
:func:`pipeline.rescore.rescore_store` and :func:`pipeline.audio.redact.redact_file`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOption,
    StoreArg,
    clock,
    fail,
    load_config_or_exit,
    open_store,
    out,
    safe,
)
from pipeline.config import Config
from pipeline.errors import CallqaError, LexiconError, UnsupportedAudioError
from pipeline.records import AGENT, CUSTOMER, MIXED, CallEvidence, Hit, Utterance
from pipeline.text.matcher import build_matcher, detect_phrases, example_evidence, run_examples
from pipeline.text.rules import RuleSet, load_rules

rules_app = typer.Typer(help="QA rule sets: validate, run their examples, try them on text.", no_args_is_help=True,
                        rich_markup_mode=None)

DirArg = Annotated[Path | None, typer.Argument(help="Rules directory (default: [text] rules_dir).")]


def _rules(directory: Path | None, config: Config) -> RuleSet:
    try:
        return load_rules(directory if directory is not None else config.text.rules_dir)
    except LexiconError as exc:
        raise fail(exc) from None


@rules_app.command("check")
def check(directory: DirArg = None, config_path: ConfigOption = None) -> None:
    """Validate rule-set files; print the combined version and rule count.

    Example:  callqa rules check my_lexicons/
    """
    rules = _rules(directory, load_config_or_exit(config_path))
    out.print(f"ok: {len(rules.rules)} rules, version {safe(rules.version)}")


@rules_app.command("test")
def test(directory: DirArg = None, config_path: ConfigOption = None) -> None:
    """Run every rule's own examples; exit 1 when any example fails.

    Example:  callqa rules test my_lexicons/
    """
    config = load_config_or_exit(config_path)
    rules = _rules(directory, config)
    failures = run_examples(build_matcher(rules, config.text), config.text)
    for line in failures:
        out.print(safe(line))
    n = sum(len(r.examples_match) + len(r.examples_no_match) for r in rules.rules)
    out.print(f"{n - len(failures)}/{n} examples pass ({len(rules.rules)} rules, version {safe(rules.version)})")
    if failures:
        raise typer.Exit(EXIT_FAILED)


def _jsonl_evidence(path: Path) -> CallEvidence:
    utts = []
    n = 0
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            n += 1
            if not line.strip():
                continue
            obj = json.loads(line)
            utts.append(Utterance(role=obj["role"], start_s=float(obj["start_s"]), end_s=float(obj["end_s"]),
                                  text=str(obj["text"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"{path}: line {n}: bad utterance: {exc}") from None
    roles = tuple(sorted({u.role for u in utts})) or (AGENT, CUSTOMER)
    if MIXED in roles:
        roles = (MIXED,)
    return CallEvidence(call_id=path.stem, duration_s=max((u.end_s for u in utts), default=0.0),
                        roles=roles, utterances=tuple(utts))


def _hits_table(found: list[tuple[str, Hit]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("input", "time", "rule", "severity", "matched", "type", "conf.", "context"):
        table.add_column(name)
    for source, hit in found:
        table.add_row(safe(source), f"{clock(hit.start_s)}", safe(hit.rule_id), hit.severity,
                      safe(hit.matched_text), hit.match_type, f"{hit.confidence:.2f}", safe(hit.context))
    return table


@rules_app.command("match")
def match(
    text: Annotated[str | None, typer.Argument(help="One utterance to try.")] = None,
    role: Annotated[str, typer.Option("--role", help="agent, customer or mixed.")] = AGENT,
    file: Annotated[Path | None, typer.Option("--file", help="One utterance per line.")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="role/start_s/end_s/text objects: one call.")] = None,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (one hit each) instead of a table.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Show the hits of the rules on TEXT, a file of lines or a JSONL conversation.

    Example:  callqa rules match --role agent "这个我不清楚,你自己去查吧"
    """
    if role not in (AGENT, CUSTOMER, MIXED):
        raise fail(f"--role must be agent, customer or mixed, got {role!r}")
    if sum(x is not None for x in (text, file, jsonl)) != 1:
        raise fail("give exactly one of TEXT, --file or --jsonl")
    config = load_config_or_exit(config_path)
    matcher = build_matcher(_rules(rules_dir, config), config.text)
    if jsonl is not None:
        calls = [_jsonl_evidence(jsonl)]
    elif file is not None:
        try:
            lines = [x for x in file.read_text(encoding="utf-8").splitlines() if x.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{file}: cannot read: {exc}") from None
        calls = [example_evidence(x, role, f"line{i}") for i, x in enumerate(lines, 1)]
    else:
        calls = [example_evidence(text or "", role, "text")]
    found = [(evidence.call_id, hit) for evidence in calls for hit in detect_phrases(evidence, matcher, config.text)]
    if as_json:
        for _source, hit in found:
            out.print(json.dumps({"hit_id": hit.hit_id, **asdict(hit)}, ensure_ascii=False), markup=False)
        return
    if found:
        out.print(_hits_table(found))
    out.print(f"{len(found)} hit(s) in {len(calls)} input(s)")


def rescore(
    store: StoreArg,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules directory (default: [text] rules_dir).")]
    = None,
    config_path: ConfigOption = None,
) -> None:
    """Re-run the text rules and the red-line model over stored transcripts (no audio, no ASR).

    Each call's hits, feature row, score and classifier output are rebuilt and
    become its current result; timing results measured on the audio are kept.
    The store's scorecard (see `callqa score`) scores them.

    Example:  callqa rescore store/ --rules my_lexicons/
    """
    from pipeline.analysis import Resources
    from pipeline.rescore import require_calls, rescore_store, store_scoring

    config = load_config_or_exit(config_path)
    rules = _rules(rules_dir, config)
    target = open_store(store, config)
    try:
        require_calls(target)
        scoring = store_scoring(target, config)
        resources = Resources.load(config, transcriber=None, rules=rules, scorecard=scoring.scorecard,
                                   classifier=scoring.classifier, text=True)
        update = rescore_store(target, resources)
    except CallqaError as exc:
        raise fail(exc) from None
    out.print(f"rescored {update.calls} calls: {update.hits} text hits under rules version "
              f"{safe(update.versions['rules_version'])} and red-line model {safe(update.versions['redline_model'])}; "
              f"scored with {safe(scoring.scorecard.version)} (timing results kept)")
    if update.audio_hits_kept or update.audio_hits_dropped:
        dropped = (f"; dropped {update.audio_hits_dropped} whose rule or model is not the one that found them "
                   "(`callqa run --force` looks again)" if update.audio_hits_dropped else "")
        out.print(f"  kept {update.audio_hits_kept} hit{'' if update.audio_hits_kept == 1 else 's'} the second look "
                  "and the sound check found in the audio"
                  f"{dropped}")
    if update.skipped:
        out.print(f"  {update.skipped} calls were re-run by another writer meanwhile and keep that result")


def redact(
    audio: Annotated[Path, typer.Argument(help="Recording to redact.")],
    output: Annotated[Path, typer.Argument(help="WAV file to write.")],
    store: Annotated[str | None, typer.Option("--store", help="Take PII spans from this store.")] = None,
    call_id: Annotated[str | None, typer.Option("--call-id", help="Call id in the store (default: file stem).")] = None,
    span: Annotated[list[str] | None, typer.Option("--span", help="Extra START:END seconds to redact.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="bleep or silence.")] = "bleep",
    config_path: ConfigOption = None,
) -> None:
    """Write AUDIO to OUTPUT with personal-data spans bleeped or silenced.

    Example:  callqa redact calls/c1.wav c1_redacted.wav --store store/
    """
    from pipeline.audio.redact import redact_file
    from pipeline.store.rows import utterance_of
    from pipeline.text.pii import pii_time_spans

    config = load_config_or_exit(config_path)
    if mode not in ("bleep", "silence"):
        raise fail(f"--mode must be bleep or silence, got {mode!r}")
    spans: list[tuple[float, float]] = []
    for item in span or []:
        try:
            start, end = (float(x) for x in item.split(":"))
        except ValueError:
            raise fail(f"--span wants START:END seconds, got {item!r}") from None
        spans.append((start, end))
    if store is not None:
        target = open_store(store, config)
        wanted = call_id or audio.stem
        rows = target.read("utterances", call_ids=[wanted]).to_pylist()
        if not target.read("calls", columns=[], call_ids=[wanted]).num_rows:
            raise fail(f"{store}: no call {wanted!r} in this store (give --call-id)")
        spans.extend(pii_time_spans([utterance_of(r) for r in rows], config.pii.chinese_digits,
                                    mask_char=config.pii.mask_char))
    try:
        n = redact_file(audio, output, sorted(spans), mode)
    except UnsupportedAudioError as exc:
        raise fail(exc, EXIT_USAGE) from None
    done = {"bleep": "bleeped", "silence": "silenced"}[mode]
    out.print(f"wrote {safe(output)}: {n} span{'s' if n != 1 else ''} {done}")


__all__ = ["check", "match", "redact", "rescore", "rules_app", "test"]
