"""Raised voice (提高分贝): a speaker much louder than their own usual level in the same call.

:func:`loudness_tracks` measures each channel's level in 100 ms frames (RMS,
dBFS) once, right after VAD, and marks the frames inside that role's speech
segments: one reshape and one mean per channel, cheap next to the VAD.

A role's *speech level* at a frame is the energy average of the speech frames
in a :data:`SMOOTHING_S` window around it (pauses and noise frames outside
speech are left out, so a pause does not dilute it). The role's baseline is the
median of that level over all its speech. Speech at least ``raised_voice_db``
above the baseline for at least ``raised_voice_min_s`` is a raised-voice span.
Comparing each speaker with themselves makes the rule independent of line gain
and microphone distance.

For the agent such a span is ``acoustic.raised_voice`` (八大要点 禁止随意提高
分贝, DOMAIN.md §4b). Loudness alone cannot tell 质问 from speaking up on a
bad line, so the hit is ``non_fatal`` (error class ``customer``) for a
reviewer to confirm, not a fatal error. The customer's raised spans are an
agitation feature only. Without tracks (e.g. ``rescore`` from the store), the
segments' own ``loudness_dbfs`` stand in, at segment resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, SAMPLE_RATE_HZ, Call, CallEvidence, Hit, SpeechSegment

RAISED_RULE = "acoustic.raised_voice"
#: Frame length of a loudness track.
FRAME_S = 0.1
#: Window of the speech-level average (0.5 s = 5 frames).
SMOOTHING_S = 0.5
#: Raised stretches closer than this are one span (a breath does not lower the voice).
BRIDGE_S = 0.5
#: A role needs this much speech before it has a baseline to be compared with.
MIN_BASELINE_SPEECH_S = 3.0
_FLOOR_DBFS = -120.0


@dataclass(frozen=True, eq=False)
class LoudnessTrack:
    """One role's level per frame: ``dbfs[i]`` covers ``i*frame_s .. (i+1)*frame_s``."""

    role: str
    frame_s: float
    dbfs: np.ndarray
    speech: np.ndarray

    def __post_init__(self) -> None:
        if self.dbfs.shape != self.speech.shape or self.dbfs.ndim != 1:
            raise ValueError("LoudnessTrack: dbfs and speech must be 1-D arrays of one length")


@dataclass(frozen=True)
class RaisedSpan:
    """``role`` spoke ``excess_db`` (median) above their baseline from ``start_s`` to ``end_s``."""

    role: str
    start_s: float
    end_s: float
    excess_db: float


def loudness_tracks(call: Call, segments: Iterable[SpeechSegment],
                    frame_s: float = FRAME_S) -> dict[str, LoudnessTrack]:
    """Per-frame loudness of every channel of ``call``, with its speech frames marked.

    Args:
        call: the decoded call.
        segments: VAD segments of the call (any order, any roles).
        frame_s: frame length in seconds.

    Returns:
        ``{role: LoudnessTrack}`` for each channel.
    """
    hop = max(1, int(round(frame_s * SAMPLE_RATE_HZ)))
    segments = list(segments)
    tracks = {}
    for channel in call.channels:
        n = len(channel.samples) // hop
        frames = channel.samples[: n * hop].astype(np.float32).reshape(n, hop)
        energy = np.mean(np.square(frames, dtype=np.float32), axis=1, dtype=np.float64)
        dbfs = np.maximum(_FLOOR_DBFS, 10.0 * np.log10(np.maximum(energy, 1e-30))).astype(np.float32)
        frame = hop / SAMPLE_RATE_HZ
        tracks[channel.role] = LoudnessTrack(channel.role, frame, dbfs, _speech_mask(n, frame, channel.role, segments))
    return tracks


def with_segments(tracks: Mapping[str, LoudnessTrack],
                  segments: Iterable[SpeechSegment]) -> dict[str, LoudnessTrack]:
    """``tracks`` with their speech frames re-marked from ``segments`` (levels reused, not recomputed)."""
    segments = list(segments)
    return {role: LoudnessTrack(role, t.frame_s, t.dbfs, _speech_mask(len(t.dbfs), t.frame_s, role, segments))
            for role, t in tracks.items()}


def _speech_mask(n: int, frame_s: float, role: str, segments: Sequence[SpeechSegment]) -> np.ndarray:
    """Which of ``n`` frames have their centre inside one of ``role``'s segments."""
    speech = np.zeros(n, bool)
    centres = (np.arange(n) + 0.5) * frame_s
    for s in segments:
        if s.role == role:
            speech[np.searchsorted(centres, s.start_s):np.searchsorted(centres, s.end_s)] = True
    return speech


def speech_level_dbfs(track: LoudnessTrack) -> np.ndarray:
    """Smoothed speech level per frame (NaN outside speech)."""
    width = max(1, int(round(SMOOTHING_S / track.frame_s)))
    mask = track.speech.astype(np.float64)
    energy = np.power(10.0, track.dbfs.astype(np.float64) / 10.0) * mask
    kernel = np.ones(width)
    num, den = np.convolve(energy, kernel, "same"), np.convolve(mask, kernel, "same")
    with np.errstate(divide="ignore", invalid="ignore"):
        level = 10.0 * np.log10(num / den)
    level[~track.speech] = np.nan
    return level


def raised_spans_from_track(track: LoudnessTrack, config: TimingConfig) -> tuple[list[RaisedSpan], float]:
    """Raised spans of one track and the role's baseline (NaN with too little speech)."""
    if track.speech.sum() * track.frame_s < MIN_BASELINE_SPEECH_S:
        return [], math.nan
    level = speech_level_dbfs(track)
    baseline = float(np.nanmedian(level))
    above = track.speech & (np.nan_to_num(level, nan=-np.inf) >= baseline + config.raised_voice_db)
    runs: list[list[int]] = []
    bridge = int(round(BRIDGE_S / track.frame_s))
    for frame in np.flatnonzero(above).tolist():
        if runs and frame - runs[-1][1] <= bridge:
            runs[-1][1] = frame + 1
        else:
            runs.append([frame, frame + 1])
    spans = []
    for i, j in runs:
        start_s, end_s = i * track.frame_s, j * track.frame_s
        if end_s - start_s >= config.raised_voice_min_s:
            excess = float(np.nanmedian(level[i:j])) - baseline
            spans.append(RaisedSpan(track.role, start_s, end_s, excess))
    return spans, baseline


def raised_spans_from_segments(evidence: CallEvidence, role: str,
                               config: TimingConfig) -> tuple[list[RaisedSpan], float]:
    """The fallback without tracks: whole segments above the role's median segment level."""
    segments = [s for s in evidence.segments_of(role) if math.isfinite(s.loudness_dbfs)]
    if sum(s.duration_s for s in segments) < MIN_BASELINE_SPEECH_S:
        return [], math.nan
    baseline = float(np.median([s.loudness_dbfs for s in segments]))
    return [RaisedSpan(role, s.start_s, s.end_s, s.loudness_dbfs - baseline) for s in segments
            if s.loudness_dbfs >= baseline + config.raised_voice_db and s.duration_s >= config.raised_voice_min_s
            ], baseline


def find_raised_voice(evidence: CallEvidence, config: TimingConfig,
                      loudness: Mapping[str, LoudnessTrack] | None) -> tuple[list[RaisedSpan], dict[str, float]]:
    """Raised spans of agent and customer (none on mono calls) and each role's baseline dBFS."""
    if evidence.is_mono:
        return [], {}
    spans: list[RaisedSpan] = []
    baselines: dict[str, float] = {}
    for role in (AGENT, CUSTOMER):
        if role not in evidence.roles:
            continue
        if loudness is not None and role in loudness:
            found, baselines[role] = raised_spans_from_track(loudness[role], config)
        else:
            found, baselines[role] = raised_spans_from_segments(evidence, role, config)
        spans.extend(found)
    return sorted(spans, key=lambda s: s.start_s), baselines


def loudness_features(spans: list[RaisedSpan], baselines: Mapping[str, float],
                      evidence: CallEvidence) -> dict[str, float | int | None]:
    """``R_speech_level_dbfs_median``, ``R_raised_voice_count`` and ``R_raised_voice_s`` for
    agent and customer (``customer_raised_voice_s`` is the agitation signal); ``None`` on mono."""
    features: dict[str, float | int | None] = {}
    for role in (AGENT, CUSTOMER):
        if evidence.is_mono or role not in baselines:
            features.update({f"{role}_speech_level_dbfs_median": None, f"{role}_raised_voice_count": None,
                             f"{role}_raised_voice_s": None})
            continue
        mine = [s for s in spans if s.role == role]
        features[f"{role}_speech_level_dbfs_median"] = baselines[role]
        features[f"{role}_raised_voice_count"] = len(mine)
        features[f"{role}_raised_voice_s"] = float(sum(s.end_s - s.start_s for s in mine))
    return features


def detect_raised_voice(evidence: CallEvidence, config: TimingConfig, spans: list[RaisedSpan],
                        rules_version: str) -> list[Hit]:
    """One ``acoustic.raised_voice`` hit per agent raised span (severity: see module doc)."""
    return [
        Hit(call_id=evidence.call_id, rule_id=RAISED_RULE, rules_version=rules_version, category="raised_voice",
            severity="non_fatal", error_class="customer", role=AGENT, start_s=s.start_s,
            end_s=min(s.end_s, evidence.duration_s) if evidence.duration_s >= s.start_s else s.end_s,
            match_type="acoustic",
            detail=f"{s.excess_db:.1f} dB above own median for {s.end_s - s.start_s:.1f} s "
                   f"(>= {config.raised_voice_db:g} dB, >= {config.raised_voice_min_s:g} s)")
        for s in spans if s.role == AGENT
    ]


def refine_segments(segments: Iterable[SpeechSegment], tracks: Mapping[str, LoudnessTrack],
                    above_floor_db: float = 12.0, below_speech_db: float = 10.0,
                    max_shift_s: float = 1.5) -> list[SpeechSegment]:
    """Move each segment's start back over loud frames the VAD missed.

    Under telephone coding and noise the Silero VAD can start a turn up to a
    second late after a long silence (measured in ``scripts/bench/detector_eval.py``),
    while the frame energy rises clearly at the true onset. A segment's start
    moves back, at most ``max_shift_s``, over contiguous frames at least
    ``above_floor_db`` above the channel's noise floor (10th percentile of its
    non-speech frames) and no more than ``below_speech_db`` under its median
    speech frame. Call this once after VAD and store the result, so that
    ``rescore`` sees the same segments.

    Returns:
        The segments in the input order, with ``loudness_dbfs`` unchanged.
    """
    out = []
    for s in segments:
        track = tracks.get(s.role)
        quiet = track.dbfs[~track.speech] if track is not None else np.empty(0)
        if track is None or quiet.size < 10:
            out.append(s)
            continue
        speech = track.dbfs[track.speech]
        threshold = float(np.percentile(quiet, 10)) + above_floor_db
        if speech.size:
            threshold = max(threshold, float(np.median(speech)) - below_speech_db)
        i = min(int(s.start_s / track.frame_s), len(track.dbfs))
        lowest = max(0, i - int(round(max_shift_s / track.frame_s)))
        j = i
        while j > lowest and track.dbfs[j - 1] >= threshold:
            j -= 1
        start_s = min(s.start_s, j * track.frame_s)
        out.append(SpeechSegment(s.role, start_s, s.end_s, s.loudness_dbfs) if start_s < s.start_s else s)
    return out
