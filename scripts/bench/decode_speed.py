"""Decode speed of callqa's ingest vs the alternatives, on one long telephony file.

Builds a long stereo 8 kHz μ-law call (default 60 min) from the real clips in
tests/data/clips, then times, in the same run:

* callqa ``load_call`` (PyAV in-process, per-channel resample to 16 kHz float32),
* the ``ffmpeg`` executable from imageio-ffmpeg as a subprocess, piping 16 kHz
  float32 back (what pydub does under the hood; pydub itself also needs an
  ``ffprobe`` executable for μ-law WAV, which no PyPI wheel here ships),
* faster-whisper ``decode_audio(split_stereo=True)`` (PyAV, the ASR library's own path).

Prints seconds, audio seconds decoded per wall second, and each ratio to callqa.

    python scripts/bench/decode_speed.py --minutes 60
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import soundfile
from faster_whisper import decode_audio

from pipeline.audio.decode import load_call
from pipeline.config import load_config

CLIPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "clips"


def build_long_call(minutes: float, directory: Path) -> Path:
    clips = [soundfile.read(p, dtype="float32")[0] for p in sorted(CLIPS.glob("*.wav"))]
    total = int(minutes * 60 * 16_000)
    left, right = np.zeros(total, np.float32), np.zeros(total, np.float32)
    position, turn = 0, 0
    while position < total:
        clip = clips[turn % len(clips)]
        end = min(total, position + len(clip))
        (left if turn % 2 == 0 else right)[position:end] = clip[: end - position]
        position = end + 16_000  # one second of silence between turns
        turn += 1
    wav = directory / "long16k.wav"
    soundfile.write(wav, np.stack([left, right], axis=1), 16_000, subtype="PCM_16")
    target = directory / "long_call_ulaw.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(wav), "-ar", "8000",
                    "-c:a", "pcm_mulaw", str(target)], check=True)
    return target


def ffmpeg_pipe(path: Path) -> np.ndarray:
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "f32le",
                          "-ar", "16000", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2).T.copy()


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_long_call(args.minutes, Path(tmp))
        audio_s = args.minutes * 60
        results = {
            "callqa load_call (PyAV, 16 kHz float32 per channel)": timed(lambda: load_call(path, config)),
            "ffmpeg subprocess pipe (pydub's route)": timed(lambda: ffmpeg_pipe(path)),
            "faster_whisper.decode_audio(split_stereo=True)": timed(
                lambda: decode_audio(str(path), split_stereo=True)),
        }
    baseline = results["callqa load_call (PyAV, 16 kHz float32 per channel)"]
    print(f"{args.minutes:.0f}-minute stereo 8 kHz mu-law call")
    print(f"{'decoder':55s} {'wall s':>8s} {'x real time':>12s} {'ratio to callqa':>16s}")
    for name, seconds in results.items():
        print(f"{name:55s} {seconds:8.2f} {audio_s / seconds:12.0f} {seconds / baseline:16.2f}")


if __name__ == "__main__":
    main()
