"""``callqa rules check|test|match``, ``callqa rescore`` and ``callqa redact``.

Thin layers over :func:`pipeline.text.rules.load_rules`,
:func:`pipeline.text.matcher.run_examples` / :func:`~pipeline.text.matcher.detect_phrases`,
:func:`pipeline.rescore.rescore` and :func:`pipeline.audio.redact.redact_file`. Register with::

    from pipeline.cli.rules_cmd import redact, rescore, rules_app
    app.add_typer(rules_app, name="rules")
    app.command("rescore")(rescore)
    app.command("redact")(redact)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOption, fail, load_config_or_exit
from pipeline.config import Config
from pipeline.text.matcher import build_matcher, detect_phrases, example_evidence, run_examples
from pipeline.errors import CallqaError, LexiconError
from pipeline.text.rules import RuleSet, load_rules
from pipeline.records import AGENT, CUSTOMER, MIXED, CallEvidence, Utterance

rules_app = typer.Typer(help="QA rule sets: validate, run their examples, try them on text.", no_args_is_help=True)

DirArg = Annotated[Path | None, typer.Argument(help="Rules directory (default: [text] rules_dir or shipped).")]


def _rules(directory: Path | None, config: Config) -> RuleSet:
    target = directory if directory is not None else (config.text.rules_dir or None)
    try:
        return load_rules(target)
    except LexiconError as exc:
        raise fail(exc) from None


@rules_app.command("check")
def check(directory: DirArg = None, config_path: ConfigOption = None) -> None:
    """Validate rule-set files; print the combined version and rule count."""
    rules = _rules(directory, load_config_or_exit(config_path))
    print(f"ok: {len(rules.rules)} rules, version {rules.version}")


@rules_app.command("test")
def test(directory: DirArg = None, config_path: ConfigOption = None) -> None:
    """Run every rule's own examples; exit 1 when any example fails."""
    config = load_config_or_exit(config_path)
    rules = _rules(directory, config)
    failures = run_examples(build_matcher(rules, config.text), config.text)
    for line in failures:
        print(line)
    n = sum(len(r.examples_match) + len(r.examples_no_match) for r in rules.rules)
    print(f"{n - len(failures)}/{n} examples pass ({len(rules.rules)} rules, version {rules.version})")
    if failures:
        raise typer.Exit(1)


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


@rules_app.command("match")
def match(
    text: Annotated[str | None, typer.Argument(help="One utterance to try.")] = None,
    role: Annotated[str, typer.Option("--role", help="agent, customer or mixed.")] = AGENT,
    file: Annotated[Path | None, typer.Option("--file", help="One utterance per line.")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="role/start_s/end_s/text objects: one call.")] = None,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules directory.")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Print the hits of the rules on TEXT, a file of lines or a JSONL conversation, as JSON lines."""
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
    for evidence in calls:
        for hit in detect_phrases(evidence, matcher, config.text, config.pii):
            row = asdict(hit)
            sys.stdout.write(json.dumps({"hit_id": hit.hit_id, **row}, ensure_ascii=False) + "\n")


def rescore(
    store: Annotated[Path, typer.Argument(metavar="STORE", help="Store directory written by callqa run.")],
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules directory (default: shipped).")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Re-run the text rules over stored transcripts (no audio, no ASR) and re-score every call.

    New hits are stored under the new rules version next to the old ones; each
    call's feature row, score and classifier output are rebuilt from them.

    Example:  callqa rescore store/ --rules my_lexicons/
    """
    from pipeline.rescore import rescore as run_rescore
    from pipeline.store import Store

    config = load_config_or_exit(config_path)
    rules = _rules(rules_dir, config)
    if not store.is_dir():
        raise fail(f"{store}: store directory not found")
    try:
        summary = run_rescore(Store(store), rules, config)
    except CallqaError as exc:
        raise fail(exc, 1) from None
    print(f"rescored {summary.calls} calls: {summary.hits} text hits under rules version {summary.rules_version}; "
          "feature rows rebuilt and re-scored (timing results carried over)")


def redact(
    audio: Annotated[Path, typer.Argument(help="Recording to redact.")],
    output: Annotated[Path, typer.Argument(help="WAV file to write.")],
    store: Annotated[Path | None, typer.Option("--store", help="Take PII spans from this store.")] = None,
    call_id: Annotated[str | None, typer.Option("--call-id", help="Call id in the store (default: file stem).")] = None,
    span: Annotated[list[str] | None, typer.Option("--span", help="Extra START:END seconds to redact.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="bleep or silence.")] = "bleep",
    config_path: ConfigOption = None,
) -> None:
    """Write AUDIO to OUTPUT with personal-data spans bleeped or silenced."""
    from pipeline.audio.redact import pii_time_spans, redact_file
    from pipeline.store import Store

    config = load_config_or_exit(config_path)
    if mode not in ("bleep", "silence"):
        raise fail(f"--mode must be bleep or silence, got {mode!r}")
    spans: list[tuple[float, float]] = []
    try:
        for item in span or []:
            a, b = item.split(":")
            spans.append((float(a), float(b)))
    except ValueError:
        raise fail(f"--span wants START:END seconds, got {item!r}") from None
    try:
        if store is not None:
            for evidence in Store(store).evidence([call_id or audio.stem]):
                spans.extend(pii_time_spans(evidence.utterances, config.pii.chinese_digits,
                                            mask_char=config.pii.mask_char))
        n = redact_file(audio, output, sorted(spans), mode)
    except CallqaError as exc:
        raise fail(exc, 1) from None
    print(f"wrote {output}: {n} spans {mode}ed")
