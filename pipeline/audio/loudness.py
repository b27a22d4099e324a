"""Per-channel loudness tracks and VAD onset repair.

:func:`loudness_tracks` measures each channel's level in short frames (RMS,
dBFS) once, right after VAD, and marks the frames inside that role's speech
segments: one reshape and one mean per channel, cheap next to the VAD. The
tracks serve two stages: :func:`refine_segments` moves late VAD onsets back
(here), and the raised-voice detector (:mod:`pipeline.timing.raised_voice`)
compares a speaker's level with their own baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.audio.levels import BLOCK_SAMPLES
from pipeline.records import SAMPLE_RATE_HZ, Call, SpeechSegment

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


def loudness_tracks(call: Call, segments: Iterable[SpeechSegment], frame_s: float) -> dict[str, LoudnessTrack]:
    """Per-frame loudness of every channel of ``call``, with its speech frames marked.

    Args:
        call: the decoded call.
        segments: VAD segments of the call (any order, any roles).
        frame_s: frame length in seconds (``[vad] loudness_frame_s``).

    Returns:
        ``{role: LoudnessTrack}`` for each channel.
    """
    hop = max(1, int(round(frame_s * SAMPLE_RATE_HZ)))
    segments = list(segments)
    tracks = {}
    for channel in call.channels:
        n = len(channel.samples) // hop
        frames = channel.samples[: n * hop].reshape(n, hop)  # a view; measured a block of frames at a time
        step = max(1, BLOCK_SAMPLES // hop)
        energy = np.concatenate([np.mean(np.square(frames[i:i + step], dtype=np.float32), axis=1, dtype=np.float64)
                                 for i in range(0, n, step)] or [np.empty(0)])
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


def speech_level_dbfs(track: LoudnessTrack, smoothing_s: float) -> np.ndarray:
    """Speech level per frame: the energy average of speech frames within ``smoothing_s`` (NaN outside speech).

    Pauses and noise frames outside speech are left out, so a pause does not dilute the level.
    """
    width = max(1, int(round(smoothing_s / track.frame_s)))
    mask = track.speech.astype(np.float64)
    energy = np.power(10.0, track.dbfs.astype(np.float64) / 10.0) * mask
    kernel = np.ones(width)
    num, den = np.convolve(energy, kernel, "same"), np.convolve(mask, kernel, "same")
    with np.errstate(divide="ignore", invalid="ignore"):
        level = 10.0 * np.log10(num / den)
    level[~track.speech] = np.nan
    return level


def noise_floor_db(track: LoudnessTrack) -> float | None:
    """The channel's line noise: the 10th percentile of its frames outside speech. None with fewer
    than 10 such frames (no floor to measure)."""
    quiet = track.dbfs[~track.speech]
    return float(np.percentile(quiet, 10)) if quiet.size >= 10 else None


def sound_threshold_db(track: LoudnessTrack, above_floor_db: float, below_speech_db: float) -> float | None:
    """The level a frame of ``track`` must reach to be the speaker's sound: ``above_floor_db`` over the
    channel's noise floor (:func:`noise_floor_db`) and no more than ``below_speech_db`` under its median
    speech frame. None with no floor to measure."""
    floor = noise_floor_db(track)
    if floor is None:
        return None
    threshold = floor + above_floor_db
    if track.speech.any():
        threshold = max(threshold, float(np.median(track.dbfs[track.speech])) - below_speech_db)
    return threshold


class OnsetRepair(Protocol):
    """The onset repair settings: ``[vad]`` (the speech Whisper decodes) or ``[timing]`` (who spoke when)."""

    onset_above_floor_db: float
    onset_below_speech_db: float
    onset_max_shift_s: float


def refine_segments(segments: Iterable[SpeechSegment], tracks: Mapping[str, LoudnessTrack],
                    config: OnsetRepair) -> list[SpeechSegment]:
    """Move each segment's start back over loud frames the VAD missed.

    Under telephone coding and noise the Silero VAD can start a turn up to a
    second late after a long silence (measured in ``scripts/bench/detector_eval.py``),
    while the frame energy rises clearly at the true onset. A segment's start
    moves back, at most ``onset_max_shift_s``, over contiguous frames at least
    ``onset_above_floor_db`` above the channel's noise floor (10th percentile of its
    non-speech frames) and no more than ``onset_below_speech_db`` under its median
    speech frame.

    Returns:
        The segments in the input order, with ``loudness_dbfs`` unchanged.
    """
    thresholds = {role: sound_threshold_db(track, config.onset_above_floor_db, config.onset_below_speech_db)
                  for role, track in tracks.items()}  # one per channel, not per segment
    out = []
    for s in segments:
        track, threshold = tracks.get(s.role), thresholds.get(s.role)
        if track is None or threshold is None:
            out.append(s)
            continue
        i = min(int(s.start_s / track.frame_s + 1e-6), len(track.dbfs))  # 5.8 / 0.1 is 57.999...
        lowest = max(0, i - int(round(config.onset_max_shift_s / track.frame_s)))
        j = i
        while j > lowest and track.dbfs[j - 1] >= threshold:
            j -= 1
        if j == i:  # no loud frame before the VAD start: the start stays where VAD put it
            out.append(s)
            continue
        start_s = min(s.start_s, j * track.frame_s)
        out.append(SpeechSegment(s.role, start_s, s.end_s, s.loudness_dbfs))
    return out


__all__ = ["LoudnessTrack", "OnsetRepair", "loudness_tracks", "noise_floor_db", "refine_segments",
           "sound_threshold_db", "speech_level_dbfs", "with_segments"]
