"""Audio for the review page: a call's recording as WAV, PII bleeped, served with HTTP range requests.

The file to decode is looked up by call id in the store's ``calls.path``
column; nothing from the request ever becomes a path. Any format FFmpeg reads
(μ-law, GSM, AMR, MP3...) is decoded with PyAV and served as 16-bit PCM WAV
at the source rate and channel count, which every browser plays. Where the
configuration masks PII, the spans in ``utterances.pii_spans`` (and masked
text) are replaced by a tone with :func:`pipeline.audio.redact.redact_samples`.
"""

from __future__ import annotations

import io
import re
import threading
import wave
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.audio.redact import redact_samples
from pipeline.errors import UnsupportedAudioError
from pipeline.spans import union

#: Seconds added around each PII span before bleeping (word timings are approximate).
PII_PAD_S = 0.15
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def pii_spans(utterances: Iterable[Mapping[str, Any]], mask_char: str = "*",
              pad_s: float = PII_PAD_S) -> list[tuple[float, float]]:
    """Call-clock spans to bleep: every stored ``pii_spans`` entry, padded and merged.

    An utterance whose text was masked (runs of four ``mask_char``) but has no
    stored span (PII detection was off) is bleeped whole: better too much than a spoken number.
    """
    spans: list[tuple[float, float]] = []
    for utterance in utterances:
        found = utterance.get("pii_spans") or []
        spans.extend((max(0.0, p["start_s"] - pad_s), p["end_s"] + pad_s) for p in found)
        if not found and mask_char * 4 in (utterance.get("text") or ""):
            spans.append((utterance["start_s"], utterance["end_s"]))
    return union(spans)


def decode_samples(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a recording to (frames x channels) float32 at its own sample rate.

    Raises:
        UnsupportedAudioError: the file is missing or FFmpeg cannot decode it.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            n_channels = len(stream.codec_context.layout.channels)
            resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout.name, rate=rate)
            chunks = [frame.to_ndarray().reshape(-1, n_channels)
                      for packet_frame in container.decode(stream) for frame in resampler.resample(packet_frame)]
            chunks += [frame.to_ndarray().reshape(-1, n_channels) for frame in resampler.resample(None)]
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise UnsupportedAudioError(str(path), f"cannot decode the recording: {exc}") from None
    samples = np.concatenate(chunks) if chunks else np.zeros((0, n_channels), np.float32)
    return samples.astype(np.float32, copy=False), int(rate)


def wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """(frames x channels) float32 as a 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def render_call_audio(path: str | Path, bleep: Sequence[tuple[float, float]] = ()) -> bytes:
    """Decode ``path`` and return it as WAV with ``bleep`` spans replaced by a tone."""
    samples, rate = decode_samples(path)
    if bleep:
        samples = redact_samples(samples, rate, bleep, mode="bleep")
    return wav_bytes(samples, rate)


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes outside the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for, or None for the whole file.

    Only single ranges are honoured (what audio elements send); a malformed
    header is ignored (whole file), as RFC 9110 allows.

    Raises:
        RangeNotSatisfiable: the range starts past the end of the file.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return start, end


@dataclass(frozen=True)
class _Entry:
    data: bytes


class AudioCache:
    """Rendered WAV files, least recently used dropped first once over ``max_bytes``."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._max = max_bytes
        self._items: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}

    def get(self, key: tuple[Any, ...], render: Any) -> bytes:
        """The cached bytes for ``key``, rendering them once (concurrent requests wait for one render)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key].data
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key].data
            data = render()
            with self._lock:
                self._items[key] = _Entry(data)
                total = sum(len(e.data) for e in self._items.values())
                while total > self._max and len(self._items) > 1:
                    _, dropped = self._items.popitem(last=False)
                    total -= len(dropped.data)
                self._key_locks.pop(key, None)
        return data


def resolve_audio_path(stored: str, store_root: str | Path) -> Path | None:
    """The recording a ``calls.path`` value names: as stored, else relative to the store's parent folder."""
    candidate = Path(stored)
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute():
        beside = Path(store_root).resolve().parent / candidate
        if beside.is_file():
            return beside
    return None


__all__ = ["AudioCache", "RangeNotSatisfiable", "decode_samples", "parse_range", "pii_spans", "render_call_audio",
           "resolve_audio_path", "wav_bytes"]
