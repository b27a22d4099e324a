"""Character error rate of callqa's transcription vs plain faster-whisper.

On every clip of ``../shared/data/speech`` that has a verified reference, at
16 kHz and at 8 kHz μ-law (telephone quality), with the same model:

- ``plain``: ``WhisperModel.transcribe`` with default settings, CER scored
  with and without OpenCC t2s (Whisper base often emits Traditional
  characters for Mandarin, which count as errors without the conversion);
- ``callqa``: :func:`pipeline.analysis.transcribe_audio` (VAD, onset repair, ASR, guard) with the default config.

CER is computed with jiwer over all clips together (total edits / total
reference characters) after removing punctuation and spaces. Prints both
CERs and the ratio callqa / plain per sample rate. Goal: ratio <= 1.

Usage: python scripts/bench/asr_accuracy.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import jiwer
from faster_whisper import decode_audio

from pipeline.analysis import Resources, transcribe_audio
from pipeline.audio.decode import load_call
from pipeline.chinese import matching_form
from pipeline.config import load_config

SPEECH_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech"


def strip_punctuation(text: str) -> str:
    """Text without punctuation, symbols or spaces, characters unchanged (no t2s)."""
    return "".join(ch for ch in text.lower() if unicodedata.category(ch)[0] not in "PZSC")


def to_telephone(source: Path, target: Path) -> None:
    """8 kHz μ-law WAV copy of ``source`` (ffmpeg binary from imageio-ffmpeg)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(source),
                    "-ar", "8000", "-c:a", "pcm_mulaw", str(target)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="decode each clip this many times")
    parser.add_argument("--config", type=Path, default=None, help="a config file (e.g. another [asr] model)")
    args = parser.parse_args()

    config = load_config(args.config)
    resources = Resources.load(config, text=False)
    transcriber = resources.transcriber
    assert transcriber is not None
    with open(SPEECH_DIR / "references.tsv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["reference_text"]]
    print(f"{len(rows)} clips, {sum(len(r['reference_text']) for r in rows)} reference characters, "
          f"model {transcriber.model_id}")
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("16k", "8k-mulaw"):
            refs: list[str] = []
            plain_raw: list[str] = []
            plain_t2s: list[str] = []
            ours: list[str] = []
            for row in rows * args.repeats:
                path = SPEECH_DIR / row["file"]
                if label == "8k-mulaw":
                    target = Path(tmp) / row["file"]
                    if not target.exists():
                        to_telephone(path, target)
                    path = target
                audio = decode_audio(str(path), sampling_rate=16_000)
                text = "".join(s.text for s in transcriber.model.transcribe(audio)[0])  # type: ignore[attr-defined]
                utterances = transcribe_audio(load_call(path, config), resources).utterances
                refs.append(matching_form(row["reference_text"]))
                plain_raw.append(strip_punctuation(text) or "-")
                plain_t2s.append(matching_form(text) or "-")
                ours.append(matching_form("".join(u.text for u in utterances)) or "-")
            cer_raw, cer_t2s, cer_ours = (jiwer.cer(refs, hyp) for hyp in (plain_raw, plain_t2s, ours))
            print(f"{label:9s} CER plain {cer_raw:.3f} | plain+t2s {cer_t2s:.3f} | callqa {cer_ours:.3f} "
                  f"| ratio callqa/plain {cer_ours / cer_raw:.2f}, callqa/(plain+t2s) {cer_ours / cer_t2s:.2f}")


if __name__ == "__main__":
    main()
