"""Levels of decoded audio: RMS loudness, peak and clipping, in dBFS.

Measured once per channel after decoding (stored in ``calls.channels``) and
per speech segment after VAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.records import Channel

_SILENT_DBFS = -120.0


def loudness_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` in dB relative to full scale (-120 for silence)."""
    if samples.size == 0:
        return _SILENT_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(_SILENT_DBFS, 20.0 * np.log10(rms)) if rms > 0 else _SILENT_DBFS


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level of ``samples`` in dBFS (-120 for silence)."""
    if samples.size == 0:
        return _SILENT_DBFS
    peak = float(np.max(np.abs(samples)))
    return max(_SILENT_DBFS, 20.0 * np.log10(peak)) if peak > 0 else _SILENT_DBFS



@dataclass(frozen=True)
class ChannelFacts:
    """Level facts of one channel, measured on the decoded 16 kHz audio."""

    role: str
    loudness_dbfs: float
    peak_dbfs: float
    clipping_ratio: float


def measure_channel(channel: Channel, clip_level: float) -> ChannelFacts:
    """Overall loudness, peak and share of clipped samples of one channel."""
    samples = channel.samples
    clipped = float(np.mean(np.abs(samples) >= clip_level)) if samples.size else 0.0
    return ChannelFacts(channel.role, loudness_dbfs(samples), peak_dbfs(samples), clipped)
