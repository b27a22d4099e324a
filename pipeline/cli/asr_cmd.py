"""``callqa model info`` and ``callqa transcribe FILE``: the transcription stage from the terminal.

Each command is a thin layer over a library function (:func:`pipeline.asr.model.model_info`,
:func:`transcribe_file`). Register with::

    from pipeline.cli.asr_cmd import model_app, transcribe
    app.add_typer(model_app, name="model")
    app.command("transcribe")(transcribe)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.asr.model import model_info
from pipeline.cli.common import ConfigOption, clock, fail, out
from pipeline.config import Config, load_config
from pipeline.errors import CallqaError
from pipeline.records import SpeechSegment, Utterance

model_app = typer.Typer(help="The speech model callqa transcribes with.", no_args_is_help=True)

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="asr.model: 'embedded', a faster-whisper name or a CT2 dir.")
]


def _config(path: Path | None, model: str | None) -> Config:
    config = load_config(path)
    return config.with_overrides({"asr": {"model": model}}, "--model") if model else config


def transcribe_file(path: str | Path, config: Config) -> tuple[Any, list[SpeechSegment], list[Utterance], str]:
    """Ingest, VAD and transcribe one recording with a freshly loaded model.

    For one file from the command line; batch runs build the transcriber once
    per worker and call :func:`pipeline.asr.transcribe.transcribe_call` directly.

    Returns:
        (call, speech segments, utterances, model_id).

    Raises:
        UnsupportedAudioError, ModelError, ConfigError, LexiconError.
    """
    from pipeline.audio.decode import load_call
    from pipeline.asr.transcribe import WhisperTranscriber, transcribe_call
    from pipeline.audio.vad import detect_speech

    call = load_call(path, config)
    transcriber = WhisperTranscriber.from_config(config.asr)
    segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
    return call, segments, transcribe_call(call, segments, transcriber, config.asr), transcriber.model_id


def format_transcript(utterances: list[Utterance]) -> list[str]:
    """One line per utterance: ``[mm:ss.s-mm:ss.s] role  text`` plus a suspect note."""
    lines = []
    for u in utterances:
        note = f"  (suspect: {u.suspect_reason})" if u.suspect else ""
        lines.append(f"[{clock(u.start_s)}-{clock(u.end_s)}] {u.role:8s} {u.text}{note}")
    return lines


@model_app.command("info")
def info(config: ConfigOption = None, model: ModelOption = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show which model is in use, where it lives and its checksum (assembles the embedded one)."""
    try:
        details = model_info(_config(config, model).asr)
    except CallqaError as exc:
        raise fail(exc) from None
    if as_json:
        out.print_json(json.dumps(details, ensure_ascii=False))
        return
    for key, value in details.items():
        out.print(f"{key:20s} {value}", soft_wrap=True)


def transcribe(
    file: Annotated[Path, typer.Argument(help="Audio file (any format FFmpeg reads).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a time-stamped, role-labelled transcript of FILE (nothing is stored)."""
    try:
        call, segments, utterances, model_id = transcribe_file(file, _config(config, model))
    except CallqaError as exc:
        raise fail(exc) from None
    if as_json:
        payload = {
            "path": str(file), "call_id": call.call_id, "duration_s": call.duration_s, "model_id": model_id,
            "roles": [c.role for c in call.channels],
            "speech_segments": [asdict(s) for s in segments],
            "utterances": [asdict(u) for u in utterances],
        }
        print(json.dumps(payload, ensure_ascii=False, indent=1))
        return
    speech_s = sum(s.duration_s for s in segments)
    out.print(f"{file}  {call.duration_s:.1f} s, roles {', '.join(c.role for c in call.channels)}, "
              f"speech {speech_s:.1f} s, model {model_id}", soft_wrap=True)
    for line in format_transcript(utterances):
        out.print(line, soft_wrap=True, markup=False)
    if not utterances:
        out.print("(no speech)")
