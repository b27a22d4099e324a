"""Peak memory of decoding and analysing long calls (VAD-only), against the decoded audio's own size.

Builds calls from the real clips in tests/data/clips (speech turns with one
second of silence between them, or pure silence), writes them as 8 kHz μ-law
(telephony) or 16 kHz PCM WAV, and measures each in a fresh process:

* ``baseline``: resident memory after the imports, before any call (the interpreter,
  numpy, PyAV, onnxruntime...);
* ``audio``: the decoded call's own size, channels × samples × 4 bytes (16 kHz float32:
  230 MB per hour per channel), which any in-memory analysis must hold once;
* ``decode``: peak resident memory of :func:`pipeline.audio.decode.load_call`;
* ``analyse``: peak of decoding plus every analysis stage (``analyse_call`` with
  ``[asr] enabled = false``: VAD, onset repair, loudness, timing, features, score).

Each is printed in MB with ``over`` = (peak - baseline) / audio: 1.0 means the
peak is the decoded audio and nothing else. Default: 1, 60 and 180 minutes
(180 silent, as in the issue); ``--speech-180`` adds a 3-hour speech call (its
VAD takes minutes on 2 cores).

    python scripts/bench/memory_long_calls.py
    python scripts/bench/memory_long_calls.py --minutes 1 60 --speech-180
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
SR = 16_000


@dataclass(frozen=True)
class Case:
    name: str
    minutes: float
    channels: int
    speech: bool
    ulaw: bool


def write_call(case: Case, directory: Path) -> Path:
    """Write the call in ten-minute blocks (the writer never holds the whole call)."""
    clips = [soundfile.read(p, dtype="float32")[0] for p in sorted(CLIPS.glob("*.wav"))]
    total = int(case.minutes * 60 * SR)
    rate = 8000 if case.ulaw else SR
    path = directory / f"{case.name}.wav"
    subtype = "ULAW" if case.ulaw else "PCM_16"
    block = 10 * 60 * SR
    with soundfile.SoundFile(path, "w", rate, case.channels, subtype=subtype, format="WAV") as out:
        position, turn, clip_at = 0, 0, 0
        while position < total:
            size = min(block, total - position)
            audio = np.zeros((size, case.channels), np.float32)
            if case.speech:  # turns alternate between the channels, 1 s of silence between turns
                cursor = 0
                while cursor < size:
                    clip = clips[turn % len(clips)]
                    take = min(len(clip) - clip_at, size - cursor)
                    audio[cursor:cursor + take, turn % case.channels] = clip[clip_at:clip_at + take]
                    cursor += take
                    clip_at += take
                    if clip_at == len(clip):
                        cursor += SR
                        clip_at, turn = 0, turn + 1
            if rate != SR:
                audio = audio[::2]
            out.write(audio)
            position += size
    return path


CHILD = r"""
import json, resource, sys, time
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6
from pipeline.analysis import Resources, analyse_call
from pipeline.audio.decode import load_call
from pipeline.config import load_config
config = load_config().with_overrides({"asr": {"enabled": False}})
resources = Resources.load(config, transcriber=None) if sys.argv[2] == "analyse" else None
baseline = rss_mb()
started = time.perf_counter()
call = load_call(sys.argv[1], config)
audio = sum(c.samples.nbytes for c in call.channels) / 1e6
if resources is not None:
    from pipeline.store.rows import call_facts
    facts = call_facts(call.call_id, "2026-11-23", call.path, call.audio_sha256, {}, call)
    result = analyse_call(call, resources, facts)
    outcome = result.analysis.features.get("outcome")
else:
    outcome = None
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
print(json.dumps({"baseline_mb": baseline, "audio_mb": audio, "peak_mb": peak,
                  "seconds": time.perf_counter() - started, "outcome": outcome}))
"""


def measure(path: Path, mode: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{path.name} ({mode}) failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 60, 180],
                        help="call lengths (180 and above are silent unless --speech-180)")
    parser.add_argument("--speech-180", action="store_true", help="also a 3-hour call with speech (slow VAD)")
    parser.add_argument("--decode-only", action="store_true", help="skip the analysis measurements")
    args = parser.parse_args()
    cases = [Case(f"{m:g}min_stereo_ulaw", m, 2, True, True) if m < 180 else
             Case(f"{m:g}min_silent_mono", m, 1, False, False) for m in args.minutes]
    if args.speech_180:
        cases.append(Case("180min_speech_mono", 180, 1, True, True))
    print(f"{'call':<22} {'step':<8} {'audio MB':>9} {'baseline':>9} {'peak MB':>9} {'over':>6} {'s':>7}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            path = write_call(case, Path(tmp))
            for mode in ("decode",) + (() if args.decode_only else ("analyse",)):
                started = time.perf_counter()
                figures = measure(path, mode)
                over = (figures["peak_mb"] - figures["baseline_mb"]) / max(figures["audio_mb"], 1e-9)
                print(f"{case.name:<22} {mode:<8} {figures['audio_mb']:9.0f} {figures['baseline_mb']:9.0f} "
                      f"{figures['peak_mb']:9.0f} {over:6.2f} {time.perf_counter() - started:7.1f}  "
                      f"{figures['outcome'] or ''}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
