"""Decode a recording into a :class:`~pipeline.records.Call`.

Decoding uses PyAV, whose wheels bundle FFmpeg's libraries (faster-whisper
already depends on it), so WAV PCM/μ-law/A-law/GSM, MP3, M4A/AAC, OGG/Opus,
FLAC and AMR all decode in-process on a fresh machine with no apt step and no
``ffmpeg`` executable. Every channel is resampled to 16 kHz float32 and kept
separate: on a stereo recording each channel is one speaker.

Before a decoder sees a file, :mod:`pipeline.audio.probe` checks that it is a
regular file and that a WAV header tells the truth; the channel roles and the
maximum duration are checked against what the file declares. FFmpeg opens only
local files (``file:`` protocol) of the audio container formats in
:data:`CONTAINERS`, so a text file posing as a recording cannot make it read
other files. Decoding fills one float32 array per kept channel in place (no
concatenated copies): memory is the decoded audio plus about 30 s of work.

Every way a file can be unusable becomes an
:class:`~pipeline.errors.UnsupportedAudioError` with a reason a person
understands (samples that are NaN or infinite included); nothing here prints
or logs transcript data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.audio.probe import WavHeader, check_regular_file, format_name, open_regular, read_wav_header
from pipeline.config import Config, InputConfig
from pipeline.errors import UnsupportedAudioError
from pipeline.records import MIXED, SAMPLE_RATE_HZ, Call, Channel

#: Role name that drops a channel (e.g. a third, unused channel).
IGNORE = "ignore"
#: FFmpeg demuxers allowed to read a recording (``format_whitelist``).
CONTAINERS = ("wav", "w64", "mp3", "aac", "mov", "mp4", "m4a", "3gp", "ogg", "opus", "flac", "amr", "amrnb",
              "amrwb", "gsm", "asf", "matroska", "webm", "aiff", "caf", "au", "wv")
_OPEN_OPTIONS = {"format_whitelist": ",".join(CONTAINERS), "protocol_whitelist": "file"}
# Source seconds resampled at once: resampling codec-sized frames one by one is
# slow (faster-whisper's decode_audio groups them too); 30 s bounds the work memory.
_GROUP_S = 30


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be read or is not a regular file (a FIFO or
            a device is refused without waiting on it).
    """
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Decoded:
    planes: list[np.ndarray]  # one float32 array at 16 kHz per kept channel
    roles: list[str]
    source_rate_hz: int
    source_channels: int
    codec: str
    container: str
    declared_duration_s: float | None


class _Planes:
    """One float32 array per kept channel, filled in place and grown by reallocation (never concatenated)."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.arrays = [np.empty(max(capacity, 1), np.float32) for _ in range(channels)]
        self.length = 0

    def append(self, block: np.ndarray, keep: Sequence[int]) -> None:
        """Append ``block`` (frames × source channels) keeping the columns ``keep``."""
        end = self.length + block.shape[0]
        if end > len(self.arrays[0]):
            grown = max(end, int(len(self.arrays[0]) * 1.5))
            for array in self.arrays:
                array.resize(grown, refcheck=False)  # realloc: large blocks move by remapping, not copying
        for array, column in zip(self.arrays, keep, strict=True):
            array[self.length:end] = block[:, column]
        self.length = end

    def finish(self) -> list[np.ndarray]:
        for array in self.arrays:
            array.resize(self.length, refcheck=False)
        return self.arrays


def _open(path: Path) -> av.container.InputContainer:
    try:
        # Tags are never used; undecodable ones must not fail the call (metadata_errors).
        return av.open("file:" + os.path.abspath(path), mode="r", options=_OPEN_OPTIONS, metadata_errors="replace")
    except av.error.PermissionError:
        raise UnsupportedAudioError(str(path), "permission denied: the file is not readable") from None
    except (av.error.InvalidDataError, av.error.EOFError):
        raise UnsupportedAudioError(str(path), "not an audio file (FFmpeg cannot read its format)") from None
    except av.error.ArgumentError:  # a format outside CONTAINERS (playlists, images, video-only...)
        raise UnsupportedAudioError(str(path), "not an audio file (not an audio container callqa reads)") from None
    except av.error.FFmpegError as exc:
        raise UnsupportedAudioError(str(path), f"cannot open: {exc.strerror or exc}") from None


def _check_rate(path: Path, rate: int, settings: InputConfig) -> None:
    if rate < settings.min_sample_rate_hz:
        raise UnsupportedAudioError(str(path), f"sample rate {rate} Hz is below the {settings.min_sample_rate_hz} "
                                               "Hz minimum for speech")


def _check_length(path: Path, declared_s: float | None, settings: InputConfig) -> None:
    if declared_s is not None and declared_s > settings.max_duration_s:
        raise UnsupportedAudioError(str(path), f"longer than the configured maximum ({declared_s:.0f} s > "
                                               f"{settings.max_duration_s:.0f} s)")


def _decode(path: Path, settings: InputConfig, channel_roles: Sequence[str], header: WavHeader | None) -> _Decoded:
    max_s = settings.max_duration_s
    with _open(path) as container:
        if not container.streams.audio:
            raise UnsupportedAudioError(str(path), "contains no audio stream")
        stream = container.streams.audio[0]
        context = stream.codec_context
        if context is None or context.codec is None:
            what = format_name(header.format_tag) if header is not None else "this audio codec"
            raise UnsupportedAudioError(str(path), f"unsupported audio: FFmpeg has no decoder for {what}")
        source_rate = int(context.sample_rate or 0)
        source_channels = int(context.channels or 0)
        if source_rate <= 0 or source_channels <= 0:
            raise UnsupportedAudioError(str(path), "audio stream has no sample rate or channel count")
        _check_rate(path, source_rate, settings)
        roles = _roles_for(path, source_channels, channel_roles)
        declared = _declared_duration_s(container, stream)
        _check_length(path, declared, settings)
        keep = [i for i, role in enumerate(roles) if role != IGNORE]
        expected_s = min(declared, max_s) if declared else 60.0
        planes = _Planes(len(keep), int(expected_s * SAMPLE_RATE_HZ * 1.01) + SAMPLE_RATE_HZ)
        # Packed (interleaved) output: PyAV reads one plane, never one per channel
        # (planar frames with 8 channels crash PyAV's to_ndarray).
        resampler = av.AudioResampler(format="flt", layout=context.layout.name, rate=SAMPLE_RATE_HZ)
        fifo = av.AudioFifo()
        group = _GROUP_S * source_rate
        decoded_s = 0.0

        def take(frames: list[av.AudioFrame]) -> None:
            for out in frames:
                block = out.to_ndarray().reshape(-1, source_channels)
                if not np.isfinite(block).all():
                    at_s = planes.length / SAMPLE_RATE_HZ + int(np.argmin(np.isfinite(block).all(axis=1))) / \
                        SAMPLE_RATE_HZ
                    raise UnsupportedAudioError(str(path), f"samples are not numbers (NaN or infinite) from "
                                                           f"{at_s:.2f} s: the audio is unusable")
                planes.append(block, keep)

        try:
            for frame in container.decode(stream):
                frame.pts = None
                fifo.write(frame)
                decoded_s += frame.samples / source_rate
                if decoded_s > max_s:
                    raise UnsupportedAudioError(str(path), f"longer than the configured maximum (> {max_s:.0f} s)")
                if fifo.samples >= group:
                    take(resampler.resample(fifo.read()))
            if fifo.samples:
                take(resampler.resample(fifo.read()))
            take(resampler.resample(None))
        except (av.error.FFmpegError, ValueError) as exc:
            reason = "truncated or corrupt" if planes.length else "corrupt: no frame could be decoded"
            detail = exc.strerror if isinstance(exc, av.error.FFmpegError) and exc.strerror else str(exc)
            raise UnsupportedAudioError(str(path), f"{reason} ({detail})") from None
        codec = context.name
        container_name = container.format.name
    return _Decoded(planes.finish(), [roles[i] for i in keep], source_rate, source_channels, codec,
                    container_name, declared)


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


def _check_header(path: Path, header: WavHeader, settings: InputConfig, channel_roles: Sequence[str]) -> None:
    """What a WAV header declares, checked before decoding: complete, rate, roles, length."""
    if header.missing_bytes:
        raise UnsupportedAudioError(
            str(path), f"truncated: the WAV header declares {header.missing_bytes} more bytes than the file holds"
        )
    _check_rate(path, header.sample_rate_hz, settings)
    _roles_for(path, header.channels, channel_roles)
    _check_length(path, header.declared_duration_s, settings)


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
        UnsupportedAudioError: missing, not a regular file, unreadable, empty,
            not audio, a WAV header that lies (see :mod:`pipeline.audio.probe`),
            corrupt, truncated, zero length, too long, too low a sample rate,
            more channels than roles, or samples that are NaN or infinite.
    """
    path = Path(path)
    settings = config.input
    roles = channel_roles or settings.channel_roles
    check_regular_file(path)
    try:
        header = read_wav_header(path)
    except OSError as exc:  # changed since check_regular_file looked
        raise UnsupportedAudioError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if header is not None:
        _check_header(path, header, settings, roles)
    decoded = _decode(path, settings, roles, header)
    n_samples = len(decoded.planes[0]) if decoded.planes else 0
    if n_samples == 0:
        raise UnsupportedAudioError(str(path), "no audio samples (zero length)")
    duration_s = n_samples / SAMPLE_RATE_HZ
    declared = decoded.declared_duration_s
    if declared is not None and declared - duration_s > max(
        settings.truncation_tolerance_s, settings.truncation_tolerance_share * declared
    ):
        raise UnsupportedAudioError(str(path), f"truncated: decoded {duration_s:.1f} s of a declared {declared:.1f} s")
    try:
        sha = audio_sha256 or file_sha256(path)
    except OSError as exc:
        raise UnsupportedAudioError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return Call(
        call_id=call_id or path.stem,
        path=str(path),
        audio_sha256=sha,
        channels=tuple(Channel(role, samples) for role, samples in zip(decoded.roles, decoded.planes, strict=True)),
        source_sample_rate_hz=decoded.source_rate_hz,
        source_channels=decoded.source_channels,
        codec=decoded.codec,
        container=decoded.container,
        duration_s=duration_s,
        metadata=dict(metadata or {}),
    )
