"""Ground-truth stereo calls built from the real Mandarin clips in ``../shared/data/speech``.

Place real utterance clips on an agent and a customer channel at chosen times,
with chosen gaps, overlaps and gain changes, optionally under telephone
conditions (band-pass 300-3400 Hz, 8 kHz, G.711 μ-law, noise at a given SNR),
and get back the 16 kHz stereo audio together with a truth record of every
event: speech spans per role, mutual silences, interruptions (who, when, how
long, with what text), raised-voice spans, per-role speech time and characters.

Where speech is inside a clip is measured once per clip with the project's own
VAD (:func:`pipeline.audio.vad.detect_speech`) on the *clean, isolated* clip; the
truth of a built call is those spans moved to where the clip was placed. What
the tests check is therefore that mixing, overlaps, gain changes, telephone
coding and noise do not move the detectors' answers.

Library use::

    from scripts.make_calls import ClipBank, Layout, Placement, build_call, random_layout
    bank = ClipBank.load()
    layout = random_layout(bank, numpy.random.default_rng(0))
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0, seed=0)

CLI (writes ``call_000.wav`` + ``call_000.json`` ...)::

    python -m scripts.make_calls --out /tmp/calls --count 5 --telephone --snr-db 20
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from scipy.signal import butter, resample_poly, sosfilt

from pipeline.audio.vad import detect_speech
from pipeline.chinese import matching_form
from pipeline.config import TimingConfig, VadConfig, default_config
from pipeline.records import AGENT, CUSTOMER, SAMPLE_RATE_HZ, Channel
from pipeline.spans import union
from pipeline.timing.interruptions import only_backchannels

#: Where the real clips live (read in place; some may not be redistributed).
SPEECH_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech"
#: Every clip is normalised to this active speech level before its gain is applied.
SPEECH_LEVEL_DBFS = -28.0
#: Clips whose reference text is verified (references.tsv) and short enough to place.
TEXT_CLIPS = (
    "BAC009S0764W0121.wav", "BAC009S0764W0122.wav", "asr_example.wav", "IT0011W0001.wav",
    "TEST_NET_Y0000000000_-KTKHdZ2fb8_S00000.wav", "TEST_MEETING_T0000000001_S00000.wav",
)
#: Clips whose speech boundaries the VAD finds within ~0.1 s under telephone coding and
#: noise (the two WenetSpeech clips start softly or at the file edge and move by up to 0.8 s);
#: the default pool of :func:`random_layout`.
STABLE_CLIPS = ("BAC009S0764W0121.wav", "BAC009S0764W0122.wav", "asr_example.wav", "IT0011W0001.wav")
#: Long recordings without a verified transcript: slices of them make long turns (coverage, loops).
LONG_CLIPS = ("vad_example_70s.wav", "news_8s.wav", "news_5s.wav")
#: A role's clips closer than this are one turn (a pause for breath, not the end of a turn).
TURN_GAP_S = 1.0
#: Text given to a short backchannel slice ("嗯" while the other side speaks).
BACKCHANNEL_TEXT = "嗯"
#: Listening noises the benchmarks give the interruption detector (never an interruption).
BACKCHANNELS = ("嗯", "对", "好的", "是的")

Span = tuple[float, float]


@dataclass(frozen=True)
class Placement:
    """One clip (or a slice of it) on one role's channel.

    Attributes:
        role: ``agent`` or ``customer``.
        clip: file name in the speech directory.
        start_s: call time where the clip's first *speech* (not its file start) begins.
        gain_db: gain relative to the normalised level (raised voice: >= 6 dB).
        offset_s: where the slice starts inside the clip file.
        length_s: slice length (``None`` = to the end of the clip).
        text: what is said; ``None`` = the clip's reference text.
    """

    role: str
    clip: str
    start_s: float
    gain_db: float = 0.0
    offset_s: float = 0.0
    length_s: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Layout:
    """A whole call: placements, total length and optional hang-up metadata."""

    placements: tuple[Placement, ...]
    duration_s: float
    hangup_party: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class ClipBank:
    """Clips loaded once, normalised, with their reference texts and speech spans."""

    directory: Path
    audio: dict[str, np.ndarray]
    texts: dict[str, str]
    vad: VadConfig
    _spans: dict[tuple[str, float, float | None], list[Span]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path = SPEECH_DIR, vad: VadConfig | None = None) -> ClipBank:
        """Read every clip of ``directory`` (16 kHz WAV) and ``references.tsv``.

        Raises:
            FileNotFoundError: the directory or its references.tsv is missing.
        """
        directory = Path(directory)
        table = directory / "references.tsv"
        if not table.exists():
            raise FileNotFoundError(f"{table}: no references.tsv (real clips not available)")
        texts: dict[str, str] = {}
        for line in table.read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 4:
                texts[parts[0]] = parts[3].strip()
        audio = {}
        for path in sorted(directory.glob("*.wav")):
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
            if rate != SAMPLE_RATE_HZ:
                continue
            audio[path.name] = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
        bank = cls(directory, audio, texts, vad or default_config().vad)
        for name in list(audio):
            spans = bank.spans(name)
            level = _active_level_dbfs(audio[name], spans)
            audio[name] = (audio[name] * 10 ** ((SPEECH_LEVEL_DBFS - level) / 20)).astype(np.float32)
        return bank

    def slice(self, clip: str, offset_s: float = 0.0, length_s: float | None = None) -> np.ndarray:
        """The clip's samples from ``offset_s`` for ``length_s`` (normalised level)."""
        samples = self.audio[clip]
        start = int(round(offset_s * SAMPLE_RATE_HZ))
        end = len(samples) if length_s is None else min(len(samples), start + int(round(length_s * SAMPLE_RATE_HZ)))
        return samples[start:end]

    def spans(self, clip: str, offset_s: float = 0.0, length_s: float | None = None) -> list[Span]:
        """Speech spans of the clean slice, relative to the slice start (cached)."""
        key = (clip, offset_s, length_s)
        if key not in self._spans:
            # measured with 1 s of silence either side, as the clip will sit in a call
            samples = self.slice(clip, offset_s, length_s)
            pad = np.zeros(SAMPLE_RATE_HZ, np.float32)
            channel = Channel(AGENT, np.concatenate([pad, samples, pad]))
            length = len(samples) / SAMPLE_RATE_HZ
            spans = [(max(0.0, s.start_s - 1.0), min(length, s.end_s - 1.0)) for s in detect_speech(channel, self.vad)]
            self._spans[key] = [(round(a, 3), round(b, 3)) for a, b in spans if b > a]
        return self._spans[key]

    def text(self, placement: Placement) -> str:
        """What the placement says (its own text, else the clip's reference)."""
        return placement.text if placement.text is not None else self.texts.get(placement.clip, "")


def _active_level_dbfs(samples: np.ndarray, spans: Sequence[Span]) -> float:
    parts = [samples[int(a * SAMPLE_RATE_HZ):int(b * SAMPLE_RATE_HZ)] for a, b in spans] or [samples]
    speech = np.concatenate(parts).astype(np.float64)
    return float(10 * np.log10(np.mean(speech**2) + 1e-12))


def _placed_spans(bank: ClipBank, p: Placement) -> list[Span]:
    spans = bank.spans(p.clip, p.offset_s, p.length_s)
    if not spans:
        return []
    shift = p.start_s - spans[0][0]
    return [(a + shift, b + shift) for a, b in spans]


def truth_of(layout: Layout, bank: ClipBank) -> dict[str, Any]:
    """Every event of ``layout`` (see module doc); pure, no audio needed."""
    clips = []
    for p in layout.placements:
        spans = _placed_spans(bank, p)
        text = bank.text(p)
        clips.append({**asdict(p), "text": text, "chars": _count_chars(text), "spans": spans})
    active = {role: union([s for c in clips if c["role"] == role for s in c["spans"]]) for role in (AGENT, CUSTOMER)}
    everyone = union(active[AGENT] + active[CUSTOMER])
    silences = [{"start_s": a[1], "end_s": b[0], "duration_s": b[0] - a[1]}
                for a, b in zip(everyone, everyone[1:], strict=False)]
    interruptions = []
    # A turn is a role's speech with pauses under TURN_GAP_S (:func:`_turns`). A turn interrupts the other side
    # when it starts inside one of the other side's turns (from its first speech to its last, pauses
    # included); the overlap is the time both really speak from then until either turn ends.
    turns = _turns(clips)
    for turn in turns:
        start = turn["spans"][0][0]
        other = next((t for t in turns if t["role"] != turn["role"]
                      and t["spans"][0][0] < start < t["spans"][-1][1]), None)
        if other is None:
            continue
        end = min(turn["spans"][-1][1], other["spans"][-1][1])
        both = sum(max(0.0, min(b, d, end) - max(a, c, start)) for a, b in turn["spans"] for c, d in other["spans"])
        interruptions.append({"by": turn["role"], "of": other["role"], "start_s": start, "end_s": end,
                              "overlap_s": both, "text": turn["text"], "chars": turn["chars"]})
    interruptions.sort(key=lambda e: e["start_s"])
    overlap = sum(max(0.0, min(b, d) - max(a, c)) for a, b in active[AGENT] for c, d in active[CUSTOMER])
    medians = {role: float(np.median([c["gain_db"] for c in clips if c["role"] == role] or [0.0]))
               for role in (AGENT, CUSTOMER)}
    raised = [{"role": c["role"], "start_s": c["spans"][0][0], "end_s": c["spans"][-1][1],
               "gain_db": c["gain_db"] - medians[c["role"]]}
              for c in clips if c["spans"] and c["gain_db"] - medians[c["role"]] >= 6.0]
    return {
        "duration_s": layout.duration_s,
        "hangup_party": layout.hangup_party,
        "clips": clips,
        "speech": {role: active[role] for role in active},
        "speech_s": {role: sum(b - a for a, b in active[role]) for role in active},
        "chars": {role: sum(c["chars"] for c in clips if c["role"] == role) for role in active},
        "first_speech_s": {role: (active[role][0][0] if active[role] else None) for role in active},
        "silences": silences,
        "interruptions": interruptions,
        "overlap_s": overlap,
        "raised_voice": raised,
    }


def reported_interruptions(truth: dict[str, Any], timing: TimingConfig,
                           backchannels: Sequence[str] = BACKCHANNELS) -> list[dict[str, Any]]:
    """The truth's interruptions the detector should report, by its own rules
    (:mod:`pipeline.timing.interruptions`): both speak at least ``interruption_min_overlap_s``; not
    backchannels only; ``interruption_min_chars`` characters, or as long as an interruption whose
    words are not known (``interruption_unchecked_min_speech_s``), or no reference text at all (a
    slice of a long recording)."""
    quiet = {matching_form(b) for b in backchannels}
    return [i for i in truth["interruptions"]
            if i["overlap_s"] >= timing.interruption_min_overlap_s and not only_backchannels(i["text"], quiet)
            and (i["chars"] >= timing.interruption_min_chars or not i["text"]
                 or i["overlap_s"] >= timing.interruption_unchecked_min_speech_s)]


def _turns(clips: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each role's speech split into turns at every pause of :data:`TURN_GAP_S` or more.

    A pause inside one clip splits it as a pause between clips does (one clip of
    the bank holds a 1.3 s silence): who interrupts whom must follow from where
    the speech is, as the detector sees it, not from how the clips were cut.
    A clip's text goes to the turn its speech starts in.
    """
    turns: list[dict[str, Any]] = []
    pieces = sorted(((span, clip, k == 0) for clip in clips for k, span in enumerate(clip["spans"])),
                    key=lambda piece: piece[0][0])
    for (start, end), clip, first in pieces:
        mine = [t for t in turns if t["role"] == clip["role"]]
        if mine and start - mine[-1]["spans"][-1][1] < TURN_GAP_S:
            turn = mine[-1]
            turn["spans"].append((start, end))
        else:
            turn = {"role": clip["role"], "spans": [(start, end)], "text": "", "chars": 0}
            turns.append(turn)
        if first:
            turn["text"] += clip["text"]
            turn["chars"] += clip["chars"]
    return turns


def _count_chars(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


def telephone_channel(samples: np.ndarray, *, snr_db: float | None, rng: np.random.Generator,
                      ulaw: bool = True, band_pass: bool = True) -> np.ndarray:
    """One channel through a telephone line: band-pass, 8 kHz, noise, μ-law, back to 16 kHz."""
    x = samples.astype(np.float64)
    if band_pass:
        x = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
    x = resample_poly(x, 1, 2)
    if snr_db is not None:
        x = x + rng.standard_normal(len(x)) * 10 ** ((SPEECH_LEVEL_DBFS - snr_db) / 20)
    x = np.clip(x, -1.0, 1.0)
    if ulaw:
        x = mulaw_decode(mulaw_encode(x))
    return resample_poly(x, 2, 1).astype(np.float32)


def hold_music(seconds: float, seed: int, level_dbfs: float = SPEECH_LEVEL_DBFS) -> np.ndarray:
    """A synthetic hold melody at 16 kHz: three plucked notes a second, each four harmonics decaying over
    half a second, pitches drawn from two octaves around A4, at ``level_dbfs`` RMS.

    No recorded music ships with the project; Whisper writes song credits over this
    ("作词 作曲 …") as it does over real music, which is what the tests need."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    out = np.zeros_like(t)
    for k, semitones in enumerate(rng.integers(-12, 12, size=int(seconds * 3))):
        f0 = 440.0 * 2 ** (semitones / 12)
        start = int(k / 3 * SAMPLE_RATE_HZ)
        tt = t[: min(len(t), start + SAMPLE_RATE_HZ // 2) - start]
        out[start:start + len(tt)] += np.exp(-3 * tt) * sum(np.sin(2 * np.pi * f0 * h * tt) / h for h in (1, 2, 3, 4))
    rms = np.sqrt(np.mean(out ** 2)) or 1.0
    return (out / rms * 10 ** (level_dbfs / 20)).astype(np.float32)


def mulaw_encode(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Quantise [-1, 1] to 8-bit μ-law codes (0..255)."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.round((y + 1) / 2 * mu).astype(np.uint8)


def mulaw_decode(codes: np.ndarray, mu: int = 255) -> np.ndarray:
    """Inverse of :func:`mulaw_encode`."""
    y = codes.astype(np.float64) / mu * 2 - 1
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def build_call(layout: Layout, bank: ClipBank, *, telephone: bool = False, snr_db: float | None = None,
               seed: int = 0, crosstalk_db: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Mix ``layout`` into a stereo call.

    Args:
        layout: the placements (agent = column 0, customer = column 1).
        bank: the loaded clips.
        telephone: band-pass, 8 kHz G.711 μ-law round trip.
        snr_db: white line noise this many dB below the speech level (``None`` = none).
        seed: noise seed.
        crosstalk_db: each side's voice also leaks into the other's channel this many dB down
            (echo on the line; ``None`` = none). The truth is unchanged: leakage is nobody's speech.

    Returns:
        ``(audio, truth)``: float32 array of shape (samples, 2) at 16 kHz, and
        the truth record of :func:`truth_of` (JSON-serialisable).
    """
    n = int(round(layout.duration_s * SAMPLE_RATE_HZ))
    tracks = {AGENT: np.zeros(n, np.float32), CUSTOMER: np.zeros(n, np.float32)}
    for p in layout.placements:
        spans = bank.spans(p.clip, p.offset_s, p.length_s)
        lead = spans[0][0] if spans else 0.0
        samples = bank.slice(p.clip, p.offset_s, p.length_s) * np.float32(10 ** (p.gain_db / 20))
        start = int(round((p.start_s - lead) * SAMPLE_RATE_HZ))
        lo, hi = max(0, start), min(n, start + len(samples))
        if hi > lo:
            tracks[p.role][lo:hi] += samples[lo - start:hi - start]
    if crosstalk_db is not None:
        leak = np.float32(10 ** (-crosstalk_db / 20))
        tracks = {AGENT: tracks[AGENT] + leak * tracks[CUSTOMER], CUSTOMER: tracks[CUSTOMER] + leak * tracks[AGENT]}
    rng = np.random.default_rng(seed)
    for role in tracks:
        if telephone:
            tracks[role] = telephone_channel(tracks[role], snr_db=snr_db, rng=rng)[:n]
        elif snr_db is not None:
            noise = rng.standard_normal(n) * 10 ** ((SPEECH_LEVEL_DBFS - snr_db) / 20)
            tracks[role] = (tracks[role] + noise).astype(np.float32)
    audio = np.clip(np.stack([tracks[AGENT], tracks[CUSTOMER]], axis=1), -1.0, 1.0).astype(np.float32)
    return audio, truth_of(layout, bank)


def random_layout(bank: ClipBank, rng: np.random.Generator, *, turns: int = 8,
                  p_silence: float = 0.2, p_interrupt: float = 0.25, p_backchannel: float = 0.1,
                  p_raised: float = 0.5, clips: Sequence[str] = STABLE_CLIPS) -> Layout:
    """A random call whose events sit well clear of the default thresholds.

    Gaps are 0.6-2.5 s (turn taking) or 6.5-12 s (silence > 5 s); interruptions
    overlap the other side by 0.8 s or more; a backchannel is a 0.5 s slice
    saying "嗯"; a raised turn is +10..13 dB over the speaker's other turns.
    The agent speaks first after 0.3-6 s.
    """
    names = [c for c in clips if c in bank.audio]
    placements: list[Placement] = []
    prev_end = {AGENT: 0.0, CUSTOMER: 0.0}
    t = float(rng.uniform(0.3, 6.0))
    last_role, last_spans = CUSTOMER, [(0.0, 0.0)]
    for i in range(turns):
        role = AGENT if last_role == CUSTOMER else CUSTOMER
        clip = names[int(rng.integers(len(names)))]
        start, kind = t, rng.random()
        a, b = last_spans[-1]
        if i > 0 and kind < p_interrupt:
            lo, hi = max(a + 0.3, prev_end[role] + 0.6), b - 0.8
            if hi > lo:
                start = float(rng.uniform(max(lo, hi - 1.5), hi))
        elif i > 0 and kind < p_interrupt + p_backchannel:
            lo, hi = max(a + 0.5, prev_end[role] + 0.6), b - 1.2
            if hi > lo:
                at = float(rng.uniform(lo, hi))
                placements.append(Placement(role, clip, at, float(rng.uniform(-1.5, 1.5)),
                                            offset_s=_first_speech(bank, clip) + 0.5, length_s=0.5,
                                            text=BACKCHANNEL_TEXT))
                prev_end[role] = at + 0.6
                start = max(prev_end.values()) + float(rng.uniform(0.6, 2.5))
        elif i > 0 and kind < p_interrupt + p_backchannel + p_silence:
            start = max(prev_end.values()) + float(rng.uniform(6.5, 12.0))
        placement = Placement(role, clip, round(start, 3), float(rng.uniform(-1.5, 1.5)))
        spans = _placed_spans(bank, placement)
        placements.append(placement)
        prev_end[role] = max(prev_end[role], spans[-1][1])
        last_role, last_spans = role, spans
        t = max(prev_end.values()) + float(rng.uniform(0.6, 2.5))
    if rng.random() < p_raised:
        placements = _raise_one(placements, rng)
    duration = max(prev_end.values()) + float(rng.uniform(0.5, 4.0))
    party = [None, AGENT, CUSTOMER][int(rng.integers(3))]
    return Layout(tuple(placements), round(duration, 3), hangup_party=party)


def stress_layout(bank: ClipBank, rng: np.random.Generator, *, turns: int = 10,
                  overlap_s: tuple[float, float] = (0.5, 4.0), p_overlap: float = 0.35, p_long: float = 0.25,
                  clips: Sequence[str] = TEXT_CLIPS, long_clips: Sequence[str] = LONG_CLIPS) -> Layout:
    """A call that is hard to transcribe and to time: overlaps of chosen length and long turns.

    Turns alternate between the roles. With ``p_overlap`` a turn starts while
    the other side is still speaking, ``overlap_s`` (uniform in the range,
    less when the other turn is shorter) before that turn's speech ends; with
    ``p_long`` a turn is long: three to five clips back to back with short
    pauses, or a 15-35 s slice of a long recording, cut where speech starts and
    ends (text unknown: coverage only). Other gaps are 0.6-2.5 s. Every clip is at its normalised level
    +-3 dB.
    """
    names = [c for c in clips if c in bank.audio]
    longs = [c for c in long_clips if c in bank.audio]
    placements: list[Placement] = []
    prev_end = {AGENT: 0.0, CUSTOMER: 0.0}
    last_turn: list[Span] = []
    t = float(rng.uniform(0.3, 3.0))
    role = AGENT
    for i in range(turns):
        start = t
        if i > 0 and last_turn and rng.random() < p_overlap:
            other_start, other_end = last_turn[0][0], last_turn[-1][1]
            wanted = float(rng.uniform(*overlap_s))
            start = max(other_end - wanted, other_start + 0.4, prev_end[role] + 0.6)
        turn = _turn(bank, rng, role, start, names, longs, p_long)
        placements += turn
        spans = sorted(s for p in turn for s in _placed_spans(bank, p))
        if spans:
            prev_end[role] = max(prev_end[role], spans[-1][1])
            last_turn = spans
        t = max(prev_end.values()) + float(rng.uniform(0.6, 2.5))
        role = CUSTOMER if role == AGENT else AGENT
    duration = max(prev_end.values()) + float(rng.uniform(0.8, 3.0))
    return Layout(tuple(placements), round(duration, 3))


def _turn(bank: ClipBank, rng: np.random.Generator, role: str, start: float, names: Sequence[str],
          longs: Sequence[str], p_long: float) -> list[Placement]:
    """One turn of :func:`stress_layout`: a clip, several clips back to back, or a long slice."""
    gain = float(rng.uniform(-3.0, 3.0))
    if rng.random() >= p_long:
        return [Placement(role, names[int(rng.integers(len(names)))], round(start, 3), gain)]
    if longs and rng.random() < 0.5:
        clip = longs[0]
        total = len(bank.audio[clip]) / SAMPLE_RATE_HZ
        length = float(min(rng.uniform(15.0, 35.0), total - 1.0))
        offset = float(rng.uniform(0.0, max(0.0, total - length)))
        offset, length = _on_words(bank.spans(clip), offset, length)
        return [Placement(role, clip, round(start, 3), gain, offset_s=round(offset, 3), length_s=round(length, 3),
                          text="")]
    placements = []
    at = start
    for _ in range(int(rng.integers(3, 6))):
        placement = Placement(role, names[int(rng.integers(len(names)))], round(at, 3), gain)
        placements.append(placement)
        at = _placed_spans(bank, placement)[-1][1] + float(rng.uniform(0.15, 0.35))
    return placements


def _on_words(spans: Sequence[Span], offset_s: float, length_s: float) -> tuple[float, float]:
    """A slice of a long recording moved in to start where a stretch of speech starts and end where
    one ends (a turn starts and ends on words): cut at random, its first and last spans were pieces of
    a word that no listener could transcribe, counted as reference speech."""
    inside = [(a, b) for a, b in spans if a >= offset_s and b <= offset_s + length_s]
    if not inside:
        return offset_s, length_s
    start, end = inside[0][0], inside[-1][1]
    return start, end - start


def _first_speech(bank: ClipBank, clip: str) -> float:
    spans = bank.spans(clip)
    return spans[0][0] if spans else 0.0


def _raise_one(placements: list[Placement], rng: np.random.Generator) -> list[Placement]:
    """Raise one full-length turn of a role that has at least three others."""
    for role in rng.permutation([AGENT, CUSTOMER]):
        full = [i for i, p in enumerate(placements) if p.role == role and p.length_s is None]
        if len(full) >= 4:
            i = int(rng.choice(full))
            placements[i] = replace(placements[i], gain_db=placements[i].gain_db + float(rng.uniform(10.0, 13.0)))
            break
    return placements


def reference_utterances(truth: dict[str, Any]) -> list[Any]:
    """A perfect transcript of a built call: one utterance per placed clip, reference text."""
    from pipeline.records import Utterance

    out = [Utterance(role=c["role"], start_s=round(c["spans"][0][0], 3),
                     end_s=round(c["spans"][-1][1], 3), text=c["text"])
           for c in truth["clips"] if c["spans"]]
    return sorted(out, key=lambda u: u.start_s)


def write_call(directory: Path, name: str, audio: np.ndarray, truth: dict[str, Any], *,
               telephone: bool = False) -> Path:
    """Write ``name.wav`` (16 kHz PCM, or 8 kHz μ-law when ``telephone``) and ``name.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / f"{name}.wav"
    if telephone:
        soundfile.write(wav, resample_poly(audio, 1, 2, axis=0), SAMPLE_RATE_HZ // 2, subtype="ULAW")
    else:
        soundfile.write(wav, audio, SAMPLE_RATE_HZ, subtype="PCM_16")
    (directory / f"{name}.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1, default=float),
                                           encoding="utf-8")
    return wav


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write ``--count`` random ground-truth calls into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--telephone", action="store_true", help="8 kHz μ-law, band-pass")
    parser.add_argument("--snr-db", type=float, default=None)
    args = parser.parse_args(argv)
    bank = ClipBank.load()
    rng = np.random.default_rng(args.seed)
    for i in range(args.count):
        layout = random_layout(bank, rng, turns=args.turns)
        audio, truth = build_call(layout, bank, telephone=args.telephone, snr_db=args.snr_db, seed=args.seed + i)
        print(write_call(args.out, f"call_{i:03d}", audio, truth, telephone=args.telephone))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
