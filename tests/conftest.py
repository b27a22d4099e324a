"""Shared fixtures: real clips, audio writers, a scripted transcriber and scorer, a fast (VAD-only) config, the CLI."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.asr.forced import Scored
from pipeline.asr.snap import longest_s
from pipeline.asr.transcribe import ChannelSpeech
from pipeline.config import Config, load_config
from pipeline.records import AGENT, CUSTOMER, Call, CallEvidence, Channel, SpeechSegment, Utterance, Word

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "tests" / "data" / "clips"
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"
SR = 16_000


def silent_call(duration_s: float = 20.0) -> Call:
    """A stereo agent/customer call of silence (for stages that read the audio through a stand-in model)."""
    samples = np.zeros(int(duration_s * SR), np.float32)
    return Call("c1", "c1.wav", "x", (Channel(AGENT, samples), Channel(CUSTOMER, samples.copy())), 8000, 2,
                "pcm_mulaw", "wav", duration_s)


def evidence_of(*utterances: Utterance) -> CallEvidence:
    """Call ``c1`` (20 s, agent and customer) with these utterances, each its own speech segment."""
    speech = tuple(SpeechSegment(u.role, u.start_s, u.end_s, -20.0) for u in utterances)
    return CallEvidence("c1", 20.0, (AGENT, CUSTOMER), segments=speech, utterances=utterances)


class TableScorer:
    """Stands in for ForcedScorer: scores from a table, one token per character.

    A text's entry is its log probability (spread evenly over its characters) or a list of
    per-character log probabilities. A text not in the table scores 0 when it is the written
    one (the first) and -100 otherwise, so only the readings a test names can pass.
    """

    def __init__(self, table: dict[str, float | list[float]]) -> None:
        self.table = table
        self.calls: list[tuple[float, tuple[str, ...]]] = []

    def score(self, audio: np.ndarray, texts: Sequence[str]) -> list[Scored]:
        self.calls.append((len(audio) / SR, tuple(texts)))
        out = []
        for i, text in enumerate(texts):
            entry = self.table.get(text, 0.0 if i == 0 else -100.0)
            per_char = entry if isinstance(entry, list) else [entry / len(text)] * len(text)
            out.append(Scored(tuple(ord(c) for c in text), tuple(per_char)))
        return out


def read_clip(name: str) -> np.ndarray:
    """A real clip as float32 mono at 16 kHz (shipped clips first, then ../shared)."""
    path = CLIPS / name if (CLIPS / name).exists() else SHARED_SPEECH / name
    if not path.exists():
        pytest.skip(f"real clip {name} not available (needs ../shared/data/speech)")
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == SR
    return data


def place(layout: Sequence[tuple[str, float]], total_s: float, gain: float = 1.0) -> np.ndarray:
    """A channel with each (clip name, start_s) placed on a silent track."""
    track = np.zeros(int(total_s * SR), np.float32)
    for name, start_s in layout:
        clip = read_clip(name) * gain
        start = int(start_s * SR)
        end = min(len(track), start + len(clip))
        track[start:end] += clip[: end - start]
    return track


def write_wav(path: Path, samples: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> Path:
    """Write mono (n,) or multi-channel (n, channels) float audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def ffmpeg_convert(source: Path, target: Path, *args: str) -> Path:
    """Convert with the ffmpeg binary that imageio-ffmpeg ships (no apt step)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), *args,
                    str(target)], check=True)
    return target


@pytest.fixture
def stereo_call(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a stereo WAV with agent clips on the left and customer clips on the right."""

    def make(name: str = "call.wav", agent: Sequence[tuple[str, float]] = (("asr_example.wav", 0.5),),
             customer: Sequence[tuple[str, float]] = (("BAC009S0764W0121.wav", 7.0),),
             total_s: float = 12.0, directory: Path | None = None) -> Path:
        stereo = np.stack([place(agent, total_s), place(customer, total_s)], axis=1)
        return write_wav((directory or tmp_path) / name, stereo)

    return make


class ScriptedTranscriber:
    """A fake :class:`pipeline.asr.transcribe.Transcriber`: one utterance per VAD segment with the role's
    scripted text (no Whisper).

    Picklable (a module-level class holding plain data), so it also runs in the
    batch's worker processes. The text goes through the same Traditional-to-
    Simplified conversion and guard as Whisper's output (``transcribe_call``
    applies them), so tests can check those too.
    """

    model_id = "fake@1"

    def __init__(self, texts: dict[str, str], probability: float = 0.9) -> None:
        self.texts = dict(texts)
        self.probability = probability

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        return [Utterance(channel.role, s.start_s, s.end_s, self.texts[channel.role],
                          self._words(self.texts[channel.role], s.start_s, s.end_s),
                          avg_logprob=-0.2, no_speech_prob=0.01, compression_ratio=1.0)
                for channel in channels for s in channel.speech]

    def _words(self, text: str, start_s: float, end_s: float) -> tuple[Word, ...]:
        """One word for the text over the segment where it can be said that long (0.5 s a character);
        none over a longer segment, so the utterance covers its whole span as Whisper's segments do."""
        if end_s - start_s > longest_s(text):
            return ()
        return (Word(text, start_s, end_s, self.probability),)


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    """An input folder of four real clips and one broken WAV (a batch that must go on past it)."""
    directory = tmp_path / "in"
    directory.mkdir()
    for name in ("asr_example.wav", "BAC009S0764W0121.wav", "news_5s.wav", "news_8s.wav"):
        shutil.copy(CLIPS / name, directory / name)
    (directory / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    return directory


@pytest.fixture
def vad_only_config() -> Config:
    """The default config with transcription off: fast tests of ingest, store and runner."""
    return load_config().with_overrides({"asr": {"enabled": False}})


@dataclass(frozen=True)
class CliResult:
    """What one ``callqa`` command did: exit code and what it printed on stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Run ``callqa`` commands in this process (typer's CliRunner).

    The CLI prints through two rich consoles made at import time
    (``pipeline.cli.common.out`` / ``err``), bound to the streams of that
    moment, so CliRunner's swapped ``sys.stdout`` never sees what they print;
    their files are pointed at buffers here instead.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pipeline.cli import common

        self.out, self.err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(common.out, "file", self.out)
        monkeypatch.setattr(common.err, "file", self.err)

    def __call__(self, *args: object) -> CliResult:
        from typer.testing import CliRunner

        from pipeline.cli.app import app

        for buffer in (self.out, self.err):
            buffer.seek(0)
            buffer.truncate()
        result = CliRunner().invoke(app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result.exit_code, self.out.getvalue() + result.stdout, self.err.getvalue() + result.stderr)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("show", store)``: run a callqa command in-process and get its exit code and output."""
    return Cli(monkeypatch)


def hand_versions():
    """The versions of rows tests build by hand."""
    from pipeline.timing.detect import TIMING_VERSION
    from pipeline.versions import ANALYSIS_VERSION, Versions

    return Versions("cfg-test", ANALYSIS_VERSION, "fake@1", "rules-test", TIMING_VERSION, "none")


def scored_call(evidence, hits=(), *, call_date: str = "2026-11-20", facts: dict | None = None,
                timing: dict | None = None, scorecard=None, status: str = "ok", error: str = ""):
    """A ``run`` :class:`~pipeline.store.CallResult` for ``evidence`` and ``hits``, built and scored with
    the library's own functions (features, scorecard, row builders): a store without audio or ASR."""
    from dataclasses import asdict

    from pipeline.scoring.features import build_features, with_score
    from pipeline.scoring.scorecard import load_scorecard, score_call
    from pipeline.store import CallResult, new_result_id
    from pipeline.store.rows import features_row, hit_rows, utterance_rows
    from pipeline.store.tables import METADATA_COLUMNS

    versions = hand_versions()
    transcript, analysis, score = new_result_id(), new_result_id(), new_result_id()
    key = {"call_id": evidence.call_id, "call_date": call_date, **versions.columns()}
    facts = {"call_date": call_date, **(facts or {})}
    call = {**key, **{name: facts.get(name) for name in METADATA_COLUMNS}, "transcript_id": transcript,
            "analysis_id": analysis, "score_id": score, "status": status, "path": f"/calls/{evidence.call_id}.wav",
            "audio_sha256": "0" * 64, "duration_s": evidence.duration_s, "roles": list(evidence.roles)}
    if status != "ok":
        call.update(error_type="UnsupportedAudioError", error_message=error)
        return CallResult(call, {})
    row = build_features(evidence, list(hits), timing or {}, facts, versions, 0.5)
    scored = with_score(row, score_call(list(hits), row, scorecard or load_scorecard()))
    return CallResult(call, {
        "segments": [{**key, "transcript_id": transcript, **asdict(s)} for s in evidence.segments],
        "utterances": utterance_rows(evidence.utterances, None, {**key, "transcript_id": transcript}),
        "hits": hit_rows(hits, {**key, "analysis_id": analysis}),
        "features": [features_row({**scored, **key, "score_id": score})],
    })
