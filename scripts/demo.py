"""The README demo: build three realistic calls from real clips and run callqa on them.

The clips in ``tests/data/clips`` are real Mandarin recordings (AISHELL-1 and
FunASR, see ATTRIBUTION.md there). They are placed on agent and customer
channels with gaps, an interruption and a long dead-air stretch, converted to
telephone formats (8 kHz μ-law WAV, a mono MP3), listed in a manifest with
agent/team metadata, and processed with ``callqa run``. Everything goes under
``demo/`` (git-ignored); the last line printed says where the results are.

    python scripts/demo.py [--out demo]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "tests" / "data" / "clips"
RATE = 16_000

# (call id, layout per role: [(clip, start_s)], total_s, format, metadata)
CALLS = [
    ("demo-001", {"agent": [("asr_example.wav", 0.4), ("news_5s.wav", 11.5)],
                  "customer": [("BAC009S0764W0121.wav", 6.5), ("BAC009S0764W0122.wav", 17.5)]},
     22.0, "wav16k", {"agent_id": "A1001", "team": "售后一组", "started_at": "2026-11-21T09:12:00+08:00",
                      "direction": "inbound", "hangup_party": "customer"}),
    ("demo-002", {"agent": [("asr_example.wav", 5.5)],  # starts 1.5 s before the customer stops talking
                  "customer": [("news_8s.wav", 0.5), ("BAC009S0764W0121.wav", 25.0)]},
     30.0, "ulaw8k", {"agent_id": "A1002", "team": "售后二组", "started_at": "2026-11-21T10:40:00+08:00",
                      "direction": "inbound", "hangup_party": "agent"}),
    ("demo-003", {"mixed": [("BAC009S0764W0122.wav", 0.3), ("asr_example.wav", 5.0)]},
     11.0, "mp3mono", {"agent_id": "A1001", "team": "售后一组", "started_at": "2026-11-21T11:05:00+08:00",
                       "direction": "outbound"}),
]


def read_clip(name: str) -> np.ndarray:
    with wave.open(str(CLIPS / name)) as handle:
        assert handle.getframerate() == RATE and handle.getnchannels() == 1
        return np.frombuffer(handle.readframes(handle.getnframes()), np.int16).astype(np.float32) / 32768


def assemble(layout: dict[str, list[tuple[str, float]]], total_s: float) -> np.ndarray:
    """(channels, samples) float32: one row per role, clips placed at their start times."""
    tracks = []
    for placements in layout.values():
        track = np.zeros(int(total_s * RATE), np.float32)
        for clip_name, start_s in placements:
            clip = read_clip(clip_name)
            start = int(start_s * RATE)
            track[start:start + len(clip)] += clip[: len(track) - start]
        tracks.append(track)
    return np.stack(tracks)


def write_audio(path: Path, audio: np.ndarray, kind: str) -> None:
    """Encode with PyAV: 16 kHz PCM WAV, 8 kHz μ-law WAV (telephony) or mono MP3."""
    codec, rate = {"wav16k": ("pcm_s16le", RATE), "ulaw8k": ("pcm_mulaw", 8000), "mp3mono": ("libmp3lame", RATE)}[kind]
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout=layout)
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def build(out: Path) -> Path:
    """Write the demo calls and their manifest; return the manifest path."""
    calls_dir = out / "calls"
    calls_dir.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["call_id", "path", "agent_id", "team", "started_at", "direction", "hangup_party"])
        for call_id, layout, total_s, kind, meta in CALLS:
            suffix = ".mp3" if kind == "mp3mono" else ".wav"
            path = calls_dir / f"{call_id}{suffix}"
            write_audio(path, assemble(layout, total_s), kind)
            writer.writerow([call_id, f"calls/{path.name}", meta["agent_id"], meta["team"], meta["started_at"],
                             meta["direction"], meta.get("hangup_party", "")])
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "demo", help="Demo directory (default: ./demo).")
    args = parser.parse_args()
    manifest = build(args.out)
    print(f"built {len(CALLS)} calls from real clips: {manifest}")
    command = [sys.executable, "-m", "pipeline", "run", str(manifest), "--out", str(args.out / "store")]
    result = subprocess.run(command)
    if result.returncode not in (0, 1):
        return result.returncode
    subprocess.run([sys.executable, "-m", "pipeline", "show", str(args.out / "store")], check=False)
    store = (args.out / "store").resolve()
    print(f"results: {store}  (Delta Lake tables calls/ utterances/ hits/ features/ ...; see docs/store.md)")
    print(f"next: callqa show {store} demo-002   ·   callqa users add {store} you --role lead && "
          f"callqa review {store}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
