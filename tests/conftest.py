"""Shared fixtures: real clips, audio writers and a fast (VAD-only) config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from pipeline.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "tests" / "data" / "clips"
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"
SR = 16_000


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
    """A fake Transcriber: one utterance per VAD segment, the role's scripted text (no Whisper).

    The text goes through the same Traditional-to-Simplified conversion as
    Whisper's output (``transcribe_call`` applies it), so tests can check it.
    """

    model_id = "fake@1"

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def transcribe(self, samples: np.ndarray, role: str, speech: Sequence[Any]) -> list[Any]:
        from pipeline.records import Utterance, Word

        text = self.texts[role]
        return [Utterance(role, s.start_s, s.end_s, text, (Word(text, s.start_s, s.end_s, 0.9),),
                          avg_logprob=-0.2, no_speech_prob=0.01, compression_ratio=1.0) for s in speech]


@pytest.fixture
def vad_only_config() -> Config:
    """The default config with transcription off: fast tests of ingest, store and runner."""
    return load_config().with_overrides({"asr": {"enabled": False}})
