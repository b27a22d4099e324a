"""``callqa model info`` and ``callqa transcribe FILE``: the transcription stage from the terminal.

Each command is a thin layer over a library function (:func:`pipeline.asr.model.model_info`,
:func:`transcribe_file`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NamedTuple

import typer

from pipeline.asr.coverage import Gap, coverage_columns, crosstalk_of, gap_label
from pipeline.asr.model import model_info
from pipeline.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    clock,
    coverage_summary,
    fail,
    load_config_or_exit,
    out,
    safe,
)
from pipeline.config import Config
from pipeline.errors import CallqaError, UnsupportedAudioError
from pipeline.records import Call, CallEvidence, SpeechSegment, Utterance

model_app = typer.Typer(help="The speech model callqa transcribes with.", no_args_is_help=True, rich_markup_mode=None)

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="[asr] model: 'embedded', a faster-whisper name or a CT2 dir.")
]


def _config(path: Path | None, model: str | None) -> Config:
    config = load_config_or_exit(path)
    return config.with_overrides({"asr": {"model": model}}, "--model") if model else config


class FileTranscript(NamedTuple):
    """What ``callqa transcribe`` prints for one file (the text is what ``callqa run`` stores)."""

    call: Call
    segments: list[SpeechSegment]
    utterances: list[Utterance]
    gaps: list[Gap]
    coverage: dict[str, float | int | None]
    model_id: str


def transcribe_file(path: str | Path, config: Config) -> FileTranscript:
    """Decode, VAD, onset repair, ASR and PII masking of one recording: the text ``callqa run`` stores.

    Goes through :func:`pipeline.analysis.transcribe_audio` and
    :func:`pipeline.analysis.protect_pii`, the same path as a batch; the
    coverage figures are the feature columns ``run`` stores
    (:func:`pipeline.asr.coverage.coverage_columns`).

    Raises:
        UnsupportedAudioError, ModelError, ConfigError, LexiconError.
    """
    from pipeline.analysis import Resources, protect_pii, transcribe_audio
    from pipeline.audio.decode import load_call

    call = load_call(path, config)
    resources = Resources.load(config, text=False)
    transcript = transcribe_audio(call, resources)
    utterances, _pii = protect_pii(transcript.utterances, config)
    evidence = CallEvidence(call.call_id, call.duration_s, tuple(c.role for c in call.channels),
                            transcript.segments, tuple(utterances))
    coverage = coverage_columns(evidence, crosstalk_of(transcript.segments, config.asr),
                                config.asr.coverage_word_margin_s, config.asr.gap_min_s,
                                config.asr.coverage_snap_words)
    return FileTranscript(call, list(transcript.segments), list(utterances), list(transcript.gaps), coverage,
                          resources.versions.asr_model)


def format_transcript(utterances: Sequence[Utterance], gaps: Sequence[Gap] = ()) -> list[str]:
    """One line per utterance, ``[mm:ss.s-mm:ss.s] role  text`` plus a suspect note; and one per stretch of
    speech without text, ``[mm:ss.s-mm:ss.s] role  ░ speech here, no text (reason)``, in time order."""
    lines = []
    for u in utterances:
        note = f"  (suspect: {u.suspect_reason})" if u.suspect else ""
        lines.append((u.start_s, f"[{clock(u.start_s)}-{clock(u.end_s)}] {u.role:8s} {u.text}{note}"))
    for g in gaps:
        if g.reason == "crosstalk":  # the other side's voice, not this role's speech
            continue
        detail = f": {g.detail}" if g.detail else ""
        lines.append((g.start_s, f"[{clock(g.start_s)}-{clock(g.end_s)}] {g.role:8s} ░ {gap_label(g.reason)} "
                                 f"({g.reason}){detail}"))
    return [line for _start, line in sorted(lines, key=lambda item: item[0])]


@model_app.command("info")
def info(config: ConfigOption = None, model: ModelOption = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show which model is in use, where it lives and its checksum (assembles the embedded one).

    Example:  callqa model info --model large-v3
    """
    try:
        details = model_info(_config(config, model).asr)
    except CallqaError as exc:
        raise fail(exc) from None
    if as_json:
        out.print_json(json.dumps(details, ensure_ascii=False))
        return
    for key, value in details.items():
        out.print(f"{key:20s} {safe(value)}")


def transcribe(
    file: Annotated[Path, typer.Argument(help="Audio file (any format FFmpeg reads).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a time-stamped, role-labelled transcript of FILE (nothing is stored).

    The text is what `callqa run` would store for the file: the same VAD, onset
    repair, speech model, hallucination guard and personal-data masking. Speech
    that has no text is shown where it happened ("speech here, no text", with
    the reason), and the share of each role's speech with text heads the list.

    Example:  callqa transcribe call.wav --json > call.json
    """
    try:
        result = transcribe_file(file, _config(config, model))
    except UnsupportedAudioError as exc:
        raise fail(exc, EXIT_USAGE) from None
    except CallqaError as exc:
        raise fail(exc) from None
    call, segments, utterances = result.call, result.segments, result.utterances
    if as_json:
        payload = {
            "path": str(file), "call_id": call.call_id, "duration_s": call.duration_s, "model_id": result.model_id,
            "roles": [c.role for c in call.channels],
            "speech_segments": [asdict(s) for s in segments],
            "utterances": [asdict(u) for u in utterances],
            "gaps": [asdict(g) for g in result.gaps],
            "coverage": result.coverage,
        }
        out.print(json.dumps(payload, ensure_ascii=False, indent=1), markup=False, highlight=False)
        return
    speech_s = sum(s.duration_s for s in segments)
    out.print(f"{safe(file)}  {call.duration_s:.1f} s, roles {', '.join(c.role for c in call.channels)}, "
              f"speech {speech_s:.1f} s, model {safe(result.model_id)}")
    summary = coverage_summary(result.coverage)
    if summary:
        out.print(summary, markup=False)
    for line in format_transcript(utterances, result.gaps):
        out.print(line, markup=False)
    if not utterances:
        out.print("(no speech)" if not segments else "(speech found, but no text was recognised: listen to it)")
