"""Write a copy of a recording with personal-data spans bleeped or silenced.

Spans are given on the call clock, e.g. from
:func:`pipeline.text.pii.pii_time_spans` (PII found in utterance text, mapped to
word timings). Decoding and encoding use PyAV; the output
is 16-bit PCM WAV with the source's channel count and sample rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from pipeline.errors import UnsupportedAudioError

BLEEP_HZ = 1000.0


def redact_samples(samples: np.ndarray, rate_hz: int, spans: Sequence[tuple[float, float]],
                   mode: str = "bleep") -> np.ndarray:
    """Return ``samples`` (frames x channels float32) with ``spans`` replaced by a tone or silence."""
    if mode not in ("bleep", "silence"):
        raise ValueError(f"mode must be 'bleep' or 'silence', got {mode!r}")
    out = samples.copy()
    for start_s, end_s in spans:
        a, b = max(0, int(start_s * rate_hz)), min(len(out), int(np.ceil(end_s * rate_hz)))
        if b <= a:
            continue
        if mode == "silence":
            out[a:b] = 0.0
        else:
            t = np.arange(a, b) / rate_hz
            out[a:b] = (0.2 * np.sin(2 * np.pi * BLEEP_HZ * t)).astype(np.float32)[:, None]
    return out


def redact_file(src: str | Path, dst: str | Path, spans: Sequence[tuple[float, float]],
                mode: str = "bleep") -> int:
    """Decode ``src``, redact ``spans`` and write ``dst`` as WAV; returns the number of spans applied.

    Raises:
        UnsupportedAudioError: ``src`` cannot be decoded.
    """
    try:
        with av.open(str(src)) as container:
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout.name, rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out_frame in resampler.resample(frame):
                    chunks.append(out_frame.to_ndarray().reshape(-1, len(stream.codec_context.layout.channels)))
            layout = stream.codec_context.layout.name
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise UnsupportedAudioError(str(src), f"cannot decode audio for redaction: {exc}") from None
    n_ch = len(av.AudioLayout(layout).channels)
    samples = np.concatenate(chunks) if chunks else np.zeros((0, n_ch), np.float32)
    redacted = redact_samples(samples.astype(np.float32), rate, spans, mode)
    pcm = (np.clip(redacted, -1.0, 1.0) * 32767).astype(np.int16)
    with av.open(str(dst), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return len(spans)
