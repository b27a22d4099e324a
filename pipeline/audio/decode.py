"""Decode a recording into a :class:`~pipeline.records.Call`.

Decoding uses PyAV, whose wheels bundle FFmpeg's libraries (faster-whisper
already depends on it), so WAV PCM/μ-law/A-law/GSM, MP3, M4A/AAC, OGG/Opus,
FLAC and AMR all decode in-process on a fresh machine with no apt step and no
``ffmpeg`` executable. Every channel is resampled to 16 kHz float32 and kept
separate: on a stereo recording each channel is one speaker.

Every way a file can be unusable becomes an
:class:`~pipeline.errors.UnsupportedAudioError` with a reason a person
understands; nothing here prints or logs transcript data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.config import Config
from pipeline.errors import UnsupportedAudioError
from pipeline.records import MIXED, SAMPLE_RATE_HZ, Call, Channel

#: Below this rate a file is not telephone speech (narrow-band telephony is 8 kHz).
MIN_SAMPLE_RATE_HZ = 8_000
#: Role name that drops a channel (e.g. a third, unused channel).
IGNORE = "ignore"
# A file whose decoded audio falls this far short of its declared length is truncated.
_TRUNCATION_TOLERANCE_S = 0.5
_TRUNCATION_TOLERANCE_RATIO = 0.02


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UnsupportedAudioError(str(path), "file not found")
    if not path.is_file():
        raise UnsupportedAudioError(str(path), "not a regular file")
    if not os.access(path, os.R_OK):
        raise UnsupportedAudioError(str(path), "permission denied: the file is not readable")
    if path.stat().st_size == 0:
        raise UnsupportedAudioError(str(path), "empty file (0 bytes)")


@dataclass(frozen=True)
class _Decoded:
    planes: np.ndarray  # (channels, samples) float32 at 16 kHz
    source_rate_hz: int
    source_channels: int
    codec: str
    container: str
    declared_duration_s: float | None


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.PermissionError:
        raise UnsupportedAudioError(str(path), "permission denied: the file is not readable") from None
    except (av.error.InvalidDataError, av.error.EOFError):
        raise UnsupportedAudioError(str(path), "not an audio file (FFmpeg cannot read its format)") from None
    except av.error.FFmpegError as exc:
        raise UnsupportedAudioError(str(path), f"cannot open: {exc.strerror or exc}") from None


def _decode(path: Path, max_duration_s: float) -> _Decoded:
    with _open(path) as container:
        if not container.streams.audio:
            raise UnsupportedAudioError(str(path), "contains no audio stream")
        stream = container.streams.audio[0]
        context = stream.codec_context
        source_rate = int(context.sample_rate or 0)
        source_channels = int(context.channels or 0)
        if source_rate <= 0 or source_channels <= 0:
            raise UnsupportedAudioError(str(path), "audio stream has no sample rate or channel count")
        if source_rate < MIN_SAMPLE_RATE_HZ:
            raise UnsupportedAudioError(
                str(path), f"sample rate {source_rate} Hz is below the {MIN_SAMPLE_RATE_HZ} Hz minimum for speech"
            )
        declared = _declared_duration_s(container, stream)
        if declared is not None and declared > max_duration_s:
            raise UnsupportedAudioError(
                str(path), f"longer than the configured maximum ({declared:.0f} s > {max_duration_s:.0f} s)"
            )
        layout = "mono" if source_channels == 1 else ("stereo" if source_channels == 2 else None)
        resampler = av.AudioResampler(
            format="fltp", layout=layout or context.layout.name, rate=SAMPLE_RATE_HZ
        )
        chunks: list[np.ndarray] = []
        decoded_s = 0.0
        # Resampling codec-sized frames one by one is slow; group them first
        # (as faster-whisper's decode_audio does), ~30 s of audio per group.
        fifo = av.AudioFifo()
        group = 30 * source_rate
        try:
            for frame in container.decode(stream):
                frame.pts = None
                fifo.write(frame)
                decoded_s += frame.samples / source_rate
                if decoded_s > max_duration_s:
                    raise UnsupportedAudioError(
                        str(path), f"longer than the configured maximum (> {max_duration_s:.0f} s)"
                    )
                if fifo.samples >= group:
                    chunks.extend(out.to_ndarray() for out in resampler.resample(fifo.read()))
            if fifo.samples:
                chunks.extend(out.to_ndarray() for out in resampler.resample(fifo.read()))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        except av.error.FFmpegError as exc:
            reason = "truncated or corrupt" if chunks else "corrupt: no frame could be decoded"
            raise UnsupportedAudioError(str(path), f"{reason} ({exc.strerror or exc})") from None
        codec = context.name
        container_name = container.format.name
    planes = (
        np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
        if chunks
        else np.zeros((source_channels, 0), np.float32)
    )
    return _Decoded(planes, source_rate, source_channels, codec, container_name, declared)


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE file's ``data`` chunk declares but the file lacks (0 if complete or not WAV).

    FFmpeg silently decodes what is there and reports the shorter length, so a
    recording cut off mid-write would otherwise pass as a short call.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                    return 0
                return max(0, offset + 8 + chunk_size - size)
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0


def _declared_duration_s(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _roles_for(path: Path, n_channels: int, channel_roles: Sequence[str]) -> list[str]:
    if n_channels == 1:
        return [MIXED]
    if len(channel_roles) < n_channels:
        raise UnsupportedAudioError(
            str(path),
            f"has {n_channels} channels but only {len(channel_roles)} roles are mapped "
            "(set input.channel_roles or the manifest's channel_roles, e.g. agent,customer,ignore)",
        )
    roles = list(channel_roles[:n_channels])
    kept = [r for r in roles if r != IGNORE]
    if len(set(kept)) != len(kept) or not kept:
        raise UnsupportedAudioError(str(path), f"channel roles {roles} must name each role at most once")
    return roles


def load_call(
    path: str | Path,
    config: Config,
    call_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    channel_roles: Sequence[str] | None = None,
    audio_sha256: str | None = None,
) -> Call:
    """Decode ``path`` into a :class:`Call` with one 16 kHz float32 channel per role.

    Args:
        path: any file FFmpeg reads.
        config: the run's configuration (``input`` section).
        call_id: stable id; defaults to the file name without extension.
        metadata: manifest columns carried into every output row.
        channel_roles: per-call override of ``config.input.channel_roles``.
        audio_sha256: the file's hash if the caller already computed it.

    Raises:
        UnsupportedAudioError: missing, unreadable, empty, not audio, corrupt,
            truncated, zero length, too long, too low a sample rate, or more
            channels than roles.
    """
    path = Path(path)
    _check_readable(path)
    missing = _wav_missing_bytes(path)
    if missing:
        raise UnsupportedAudioError(
            str(path), f"truncated: the WAV header declares {missing} more bytes than the file holds"
        )
    decoded = _decode(path, config.input.max_duration_s)
    n_samples = decoded.planes.shape[1]
    if n_samples == 0:
        raise UnsupportedAudioError(str(path), "no audio samples (zero length)")
    duration_s = n_samples / SAMPLE_RATE_HZ
    declared = decoded.declared_duration_s
    if declared is not None and declared - duration_s > max(
        _TRUNCATION_TOLERANCE_S, _TRUNCATION_TOLERANCE_RATIO * declared
    ):
        raise UnsupportedAudioError(str(path), f"truncated: decoded {duration_s:.1f} s of a declared {declared:.1f} s")
    roles = _roles_for(path, decoded.source_channels, channel_roles or config.input.channel_roles)
    channels = tuple(
        Channel(role, np.ascontiguousarray(decoded.planes[i]))
        for i, role in enumerate(roles)
        if role != IGNORE
    )
    return Call(
        call_id=call_id or path.stem,
        path=str(path),
        audio_sha256=audio_sha256 or file_sha256(path),
        channels=channels,
        source_sample_rate_hz=decoded.source_rate_hz,
        source_channels=decoded.source_channels,
        codec=decoded.codec,
        container=decoded.container,
        duration_s=duration_s,
        metadata=dict(metadata or {}),
    )
