"""Levels of decoded audio: RMS loudness, peak and clipping, in dBFS.

Measured once per channel after decoding (stored in ``calls.channels``) and
per speech segment after VAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.records import Channel

_SILENT_DBFS = -120.0
#: Samples measured at once: a 3-hour channel is 691 MB, and a whole-channel temporary
#: (a float64 square, an abs) would cost 1-2 times that again.
BLOCK_SAMPLES = 1 << 20


def blocks(samples: np.ndarray, size: int = BLOCK_SAMPLES) -> list[np.ndarray]:
    """``samples`` as views of at most ``size`` samples (no copies)."""
    return [samples[start:start + size] for start in range(0, len(samples), size)] or [samples]


def loudness_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` in dB relative to full scale (-120 for silence)."""
    if samples.size == 0:
        return _SILENT_DBFS
    energy = sum(float(np.sum(np.square(block, dtype=np.float64))) for block in blocks(samples))
    rms = float(np.sqrt(energy / samples.size))
    return max(_SILENT_DBFS, 20.0 * np.log10(rms)) if rms > 0 else _SILENT_DBFS


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level of ``samples`` in dBFS (-120 for silence)."""
    if samples.size == 0:
        return _SILENT_DBFS
    peak = max(float(np.max(samples)), -float(np.min(samples)))  # no abs() copy of the channel
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
    count = sum(int(np.count_nonzero(np.abs(block) >= clip_level)) for block in blocks(samples))
    clipped = count / samples.size if samples.size else 0.0
    return ChannelFacts(channel.role, loudness_dbfs(samples), peak_dbfs(samples), clipped)
