"""Read and check what a file says about itself before any decoder sees it.

A decoder trusts the header: a WAV whose channel field was changed from 1 to
8 made FFmpeg and PyAV read past their buffers and crash the process, and
headers declaring 12 or 64 bits per sample, or an A-law tag over 16-bit PCM
data, decoded into noise that passed as "ok". :func:`probe_file` refuses such
files with one line a person understands, and tells :mod:`pipeline.audio.decode`
what the header declares (channels, rate, exact length) so the channel roles
and the maximum duration are checked before a single sample is decoded.

Only RIFF/RF64/RIFX WAV headers are read here (the format call centres
record in); other containers are left to FFmpeg, whose own parsers check them,
and the engine's worker processes contain any crash that slips through.

:func:`file_kind` and :func:`open_regular` never block: a FIFO, a device or a
directory named like a recording is reported as such, never opened for reading.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UnsupportedAudioError

#: More channels than this is not a call recording (and not a header to trust).
MAX_CHANNELS = 32
#: Above this sample rate a header is not plausible.
MAX_SAMPLE_RATE_HZ = 384_000
#: Chunks read before the audio data; more means a crafted or broken file.
MAX_CHUNKS = 4096

PCM, IEEE_FLOAT, ALAW, MULAW, EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
#: Format tags whose header fully determines the data layout (checked exactly).
_SAMPLE_FORMATS = {PCM: "PCM", IEEE_FLOAT: "IEEE float", ALAW: "A-law", MULAW: "μ-law"}
_BITS = {PCM: (8, 16, 24, 32), IEEE_FLOAT: (32, 64), ALAW: (8,), MULAW: (8,)}
# Every WAVE_FORMAT_EXTENSIBLE sub-format GUID ends with these 12 bytes (KSDATAFORMAT_SUBTYPE_*).
_GUID_TAIL = bytes.fromhex("00001000800000aa00389b71")
_UNSET_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the data size at one of these


@dataclass(frozen=True)
class WavHeader:
    """What a WAV file's ``fmt`` and ``data`` chunks declare.

    Attributes:
        format_tag: the sample format (the sub-format for WAVE_FORMAT_EXTENSIBLE).
        channels: interleaved channels.
        sample_rate_hz: samples per second per channel.
        bits_per_sample: bits of one sample (0 for most compressed formats).
        block_align: bytes of one frame (one sample of every channel).
        byte_rate: bytes per second the header declares.
        data_offset: where the audio bytes start.
        data_bytes: how many audio bytes the header declares (None: left unset by a streaming writer).
        file_bytes: the file's size.
    """

    format_tag: int
    channels: int
    sample_rate_hz: int
    bits_per_sample: int
    block_align: int
    byte_rate: int
    data_offset: int
    data_bytes: int | None
    file_bytes: int

    @property
    def is_sample_format(self) -> bool:
        """PCM, float, A-law or μ-law: the length follows exactly from the byte count."""
        return self.format_tag in _SAMPLE_FORMATS

    @property
    def missing_bytes(self) -> int:
        """Bytes the ``data`` chunk declares but the file lacks (a recording cut off mid-write)."""
        if self.data_bytes is None:
            return 0
        return max(0, self.data_offset + self.data_bytes - self.file_bytes)

    @property
    def declared_duration_s(self) -> float | None:
        """The length the header declares, exact for sample formats (None when it cannot tell)."""
        if not self.is_sample_format or self.byte_rate <= 0:
            return None
        size = self.data_bytes if self.data_bytes is not None else self.file_bytes - self.data_offset
        return max(0, size) / self.byte_rate


def format_name(tag: int) -> str:
    """A WAV format tag as a person reads it: ``PCM`` or ``format tag 12345 (0x3039)``."""
    return _SAMPLE_FORMATS.get(tag, f"format tag {tag} (0x{tag:04X})")


# -- file type -----------------------------------------------------------------------
def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words (``regular file``, ``FIFO (named pipe)``, ...)."""
    kinds = ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
             (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
             (stat.S_ISLNK, "symbolic link"))
    return next((name for test, name in kinds if test(mode)), "special file")


def check_regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of a file that is safe to read: exists, regular, readable, not empty.

    Never opens the file, so a FIFO or a device cannot block the caller.

    Raises:
        UnsupportedAudioError: missing (or a dangling link), a symlink loop, not a
            regular file (directory, FIFO, device, socket), unreadable or empty.
    """
    name = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.lexists(path)
        raise UnsupportedAudioError(name, "file not found" + (" (a dangling symbolic link)" if dangling else "")
                                    ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsupportedAudioError(name, "symbolic link loop: the link never reaches a file") from None
        raise UnsupportedAudioError(name, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL character in the path
        raise UnsupportedAudioError(name, f"not a usable path: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsupportedAudioError(name, f"not a regular file: a {file_kind(info.st_mode)}, not an audio file")
    if not os.access(path, os.R_OK):
        raise UnsupportedAudioError(name, "permission denied: the file is not readable")
    if info.st_size == 0:
        raise UnsupportedAudioError(name, "empty file (0 bytes)")
    return info


def open_regular(path: str | Path) -> int:
    """Open ``path`` for reading without blocking, refusing anything but a regular file.

    Returns:
        A file descriptor in blocking mode (the caller closes it).

    Raises:
        OSError: cannot open, or not a regular file (``EINVAL``; opening a FIFO
            this way never waits for a writer).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError as exc:  # a NUL character in the path
        raise OSError(errno.EINVAL, f"not a usable path: {exc}", str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file (a {file_kind(mode)})", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# -- WAV headers -----------------------------------------------------------------------
def _chunks(handle, endian: str, first: int, file_bytes: int):  # type: ignore[no-untyped-def]
    """(id, offset of the body, declared size) of each chunk from ``first`` on."""
    offset = first
    for _ in range(MAX_CHUNKS):
        if offset + 8 > file_bytes:
            return
        handle.seek(offset)
        head = handle.read(8)
        if len(head) < 8:
            return
        size = struct.unpack(endian + "I", head[4:])[0]
        yield head[:4], offset + 8, size
        offset += 8 + size + (size & 1)
    raise ValueError(f"more than {MAX_CHUNKS} chunks before the audio data")


def read_wav_header(path: str | Path) -> WavHeader | None:
    """The header of a RIFF/RF64/RIFX WAV file, checked; None when the file is not one.

    Raises:
        UnsupportedAudioError: the header is malformed or declares something
            no recording is (see :func:`check_wav_header`).
    """
    name = str(path)
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        magic = handle.read(12)
        if len(magic) < 12 or magic[8:12] not in (b"WAVE",) or magic[:4] not in (b"RIFF", b"RF64", b"BW64", b"RIFX"):
            return None
        endian = ">" if magic[:4] == b"RIFX" else "<"
        fmt: bytes | None = None
        data: tuple[int, int] | None = None
        ds64_data: int | None = None
        try:
            for chunk_id, body, size in _chunks(handle, endian, 12, file_bytes):
                if chunk_id == b"ds64" and size >= 16:
                    handle.seek(body)
                    ds64_data = struct.unpack("<Q", handle.read(16)[8:16])[0]
                elif chunk_id == b"fmt ":
                    if size < 16:
                        raise ValueError(f"its fmt chunk is {size} bytes, shorter than the 16 every WAV needs")
                    handle.seek(body)
                    fmt = handle.read(min(size, 64))
                    if len(fmt) < 16:
                        raise ValueError("its fmt chunk is cut off")
                elif chunk_id == b"data":
                    data = (body, size)
                    break
        except ValueError as exc:
            raise UnsupportedAudioError(name, f"malformed WAV header: {exc}") from None
    if fmt is None:
        raise UnsupportedAudioError(name, "malformed WAV header: no fmt chunk before the audio data")
    if data is None:
        raise UnsupportedAudioError(name, "malformed WAV header: no data chunk (no audio in the file)")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack(endian + "HHIIHH", fmt[:16])
    if tag == EXTENSIBLE:
        tag = _extensible_tag(name, fmt, endian, bits)
    data_bytes: int | None = data[1]
    if data_bytes == 0xFFFFFFFF and ds64_data is not None:
        data_bytes = ds64_data
    elif data_bytes in _UNSET_SIZES:
        data_bytes = None
    header = WavHeader(tag, channels, rate, bits, block_align, byte_rate, data[0], data_bytes, file_bytes)
    check_wav_header(header, name)
    return header


def _extensible_tag(name: str, fmt: bytes, endian: str, bits: int) -> int:
    """The sub-format of a WAVE_FORMAT_EXTENSIBLE header (its first two GUID bytes)."""
    if len(fmt) < 40:
        raise UnsupportedAudioError(name, "malformed WAV header: WAVE_FORMAT_EXTENSIBLE without its 22-byte "
                                          "extension (the real sample format is not stated)")
    extension_size, valid_bits = struct.unpack(endian + "HH", fmt[16:20])
    guid = fmt[24:40]
    if extension_size < 22 or guid[4:] != _GUID_TAIL:
        raise UnsupportedAudioError(name, "malformed WAV header: WAVE_FORMAT_EXTENSIBLE with an unknown "
                                          "sub-format GUID")
    if valid_bits > bits:
        raise UnsupportedAudioError(name, f"malformed WAV header: {valid_bits} valid bits in "
                                          f"{bits}-bit samples")
    return int(struct.unpack(endian + "H", guid[:2])[0])


def check_wav_header(header: WavHeader, name: str) -> None:
    """Refuse a header no decoder should be handed.

    Raises:
        UnsupportedAudioError: format tag 0, channels outside 1..:data:`MAX_CHANNELS`,
            an implausible sample rate, bits per sample the format does not have
            (PCM 8/16/24/32, float 32/64, A-law and μ-law 8), or a frame size or
            byte rate that contradicts the channels and bits (a lying header).
    """
    tag = header.format_tag
    if tag == 0:
        raise UnsupportedAudioError(name, "unsupported WAV: format tag 0 (unknown format)")
    if not 1 <= header.channels <= MAX_CHANNELS:
        raise UnsupportedAudioError(name, f"WAV header declares {header.channels} channels "
                                          f"(a recording has 1 to {MAX_CHANNELS})")
    if not 0 < header.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise UnsupportedAudioError(name, f"WAV header declares a sample rate of {header.sample_rate_hz} Hz "
                                          f"(not 1 to {MAX_SAMPLE_RATE_HZ})")
    if tag not in _SAMPLE_FORMATS:
        if header.block_align == 0:
            raise UnsupportedAudioError(name, f"malformed WAV header: {format_name(tag)} with a block size of 0")
        return  # a compressed format: its decoder checks its own frames
    label = _SAMPLE_FORMATS[tag]
    if header.bits_per_sample not in _BITS[tag]:
        allowed = ", ".join(str(b) for b in _BITS[tag])
        raise UnsupportedAudioError(name, f"unsupported WAV: {header.bits_per_sample}-bit {label} ({label} "
                                          f"samples have {allowed} bits)")
    frame = header.channels * header.bits_per_sample // 8
    if header.block_align != frame:
        raise UnsupportedAudioError(name, f"WAV header contradicts itself: {header.channels} channel(s) of "
                                          f"{header.bits_per_sample}-bit {label} make {frame}-byte frames, the "
                                          f"header says {header.block_align}")
    if header.byte_rate != header.sample_rate_hz * frame:
        raise UnsupportedAudioError(name, f"WAV header contradicts itself: {header.sample_rate_hz} Hz × "
                                          f"{frame}-byte frames is {header.sample_rate_hz * frame} bytes/s, the "
                                          f"header says {header.byte_rate}")


__all__ = ["MAX_CHANNELS", "MAX_SAMPLE_RATE_HZ", "WavHeader", "check_regular_file", "check_wav_header",
           "file_kind", "format_name", "open_regular", "read_wav_header"]
