"""Header checks before decoding (pipeline/audio/probe.py) and the decoder's hardening (lying headers,
NaN samples, FIFOs, memory)."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import CLIPS, read_clip, write_wav

from pipeline.audio import decode
from pipeline.audio.decode import file_sha256, load_call
from pipeline.audio.probe import check_regular_file, open_regular, read_wav_header
from pipeline.errors import UnsupportedAudioError

CLIP = CLIPS / "asr_example.wav"  # 16 kHz mono 16-bit PCM; fmt at byte 12, data at byte 70
FMT = 20  # offset of the fmt fields: tag(2) channels(2) rate(4) byte_rate(4) block_align(2) bits(2)


def patched(tmp_path: Path, name: str, *fields: tuple[int, str, int]) -> Path:
    """The real clip with header fields (offset, struct format, value) overwritten."""
    data = bytearray(CLIP.read_bytes())
    for offset, fmt, value in fields:
        struct.pack_into(fmt, data, offset, value)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def refused(path: Path, config, reason: str) -> str:
    with pytest.raises(UnsupportedAudioError) as info:
        load_call(path, config)
    assert info.value.path == str(path)
    assert reason in info.value.reason, info.value.reason
    assert "\n" not in str(info.value)
    return info.value.reason


def test_real_clip_header_is_read_as_declared():
    header = read_wav_header(CLIP)
    assert header is not None
    assert (header.format_tag, header.channels, header.sample_rate_hz, header.bits_per_sample) == (1, 1, 16000, 16)
    assert header.declared_duration_s == pytest.approx(5.547, abs=1e-3)
    assert header.missing_bytes == 0
    assert read_wav_header(CLIPS / "ATTRIBUTION.md") is None  # not a WAV: left to FFmpeg


@pytest.mark.parametrize("channels", [8, 64, 0])
def test_lying_channel_count_is_refused_before_decoding(tmp_path, vad_only_config, monkeypatch, channels):
    # The segfault: the channel field of a mono 16-bit file changed to 8 or 64.
    monkeypatch.setattr(decode, "_decode", lambda *a: pytest.fail("decoder reached"))
    path = patched(tmp_path, f"ch{channels}.wav", (FMT + 2, "<H", channels))
    reason = refused(path, vad_only_config, "channels" if channels != 8 else "contradicts itself")
    if channels == 8:
        assert "8 channel(s) of 16-bit PCM make 16-byte frames, the header says 2" in reason


@pytest.mark.parametrize("bits", [1, 7, 12, 64])
def test_impossible_bits_per_sample(tmp_path, vad_only_config, bits):
    path = patched(tmp_path, f"bits{bits}.wav", (FMT + 14, "<H", bits))
    assert refused(path, vad_only_config, f"unsupported WAV: {bits}-bit PCM") .endswith("have 8, 16, 24, 32 bits)")


@pytest.mark.parametrize(("tag", "reason"), [
    (0, "format tag 0 (unknown format)"),
    (3, "16-bit IEEE float"),
    (0xFFFE, "WAVE_FORMAT_EXTENSIBLE without its 22-byte extension"),
    (12345, "FFmpeg has no decoder for format tag 12345 (0x3039)"),
    (6, "16-bit A-law"),  # an A-law tag over 16-bit PCM data
    (7, "16-bit μ-law"),
])
def test_format_tags_give_one_line_reasons(tmp_path, vad_only_config, tag, reason):
    # Before: tags 0, 3, 0xFFFE and 12345 were stored as AttributeError ('NoneType' ... 'sample_rate'),
    # A-law/μ-law tags over PCM decoded into noise as "ok".
    refused(patched(tmp_path, f"tag{tag}.wav", (FMT, "<H", tag)), vad_only_config, reason)


def test_byte_rate_and_block_align_must_agree(tmp_path, vad_only_config):
    refused(patched(tmp_path, "rate.wav", (FMT + 4, "<I", 48000)), vad_only_config,
            "48000 Hz × 2-byte frames is 96000 bytes/s, the header says 32000")
    refused(patched(tmp_path, "align.wav", (FMT + 12, "<H", 4)), vad_only_config, "the header says 4")
    refused(patched(tmp_path, "rate0.wav", (FMT + 4, "<I", 0)), vad_only_config, "sample rate of 0 Hz")


def test_malformed_chunks(tmp_path, vad_only_config):
    data = CLIP.read_bytes()
    no_fmt = tmp_path / "nofmt.wav"
    no_fmt.write_bytes(data[:12] + b"junk" + data[16:])
    refused(no_fmt, vad_only_config, "no fmt chunk")
    short_fmt = patched(tmp_path, "shortfmt.wav", (16, "<I", 8))
    refused(short_fmt, vad_only_config, "malformed WAV header")
    many = tmp_path / "many.wav"  # thousands of empty chunks before the audio: refused, not walked for ever
    many.write_bytes(data[:36] + b"pad \0\0\0\0" * 5000 + data[36:])
    refused(many, vad_only_config, "more than 4096 chunks")


def test_valid_extensible_and_float_files_still_decode(tmp_path, vad_only_config):
    clip = read_clip("asr_example.wav")
    stereo = np.stack([clip, clip * 0.5], axis=1)
    write_wav(tmp_path / "ext.wav", stereo, subtype="PCM_24")  # libsndfile writes EXTENSIBLE for 24-bit
    assert read_wav_header(tmp_path / "ext.wav").format_tag == 1
    call = load_call(tmp_path / "ext.wav", vad_only_config)
    assert [c.role for c in call.channels] == ["agent", "customer"]
    assert np.allclose(call.channel("customer").samples, clip * 0.5, atol=1e-4)
    write_wav(tmp_path / "float.wav", clip, subtype="FLOAT")
    assert np.allclose(load_call(tmp_path / "float.wav", vad_only_config).channels[0].samples, clip, atol=1e-6)


def test_eight_real_channels_decode_when_mapped(tmp_path, vad_only_config):
    # 8-channel planar frames crashed PyAV's to_ndarray: the decoder reads packed frames instead.
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (16000, 8)).astype(np.float32)
    path = write_wav(tmp_path / "eight.wav", audio)
    refused(path, vad_only_config, "has 8 channels but only 2 roles are mapped")
    roles = ("ignore", "agent", "ignore", "ignore", "ignore", "ignore", "customer", "ignore")
    call = load_call(path, vad_only_config, channel_roles=roles)
    assert [c.role for c in call.channels] == ["agent", "customer"]
    assert np.allclose(call.channel("agent").samples, audio[:, 1], atol=1e-4)
    assert np.allclose(call.channel("customer").samples, audio[:, 6], atol=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rate", [16000, 8000])
def test_non_finite_samples_are_an_error_naming_the_file(tmp_path, vad_only_config, bad, rate):
    # Before: real speech with NaN samples measured -120 dBFS, no speech, and scored 100/A.
    speech = read_clip("asr_example.wav")[:: 16000 // rate].copy()
    speech[int(2.5 * rate)] = bad
    path = tmp_path / "nan.wav"
    soundfile.write(path, speech, rate, subtype="FLOAT")
    reason = refused(path, vad_only_config, "samples are not numbers (NaN or infinite) from 2.")
    assert reason.endswith("the audio is unusable")


def test_maximum_duration_is_checked_from_the_header(tmp_path, vad_only_config, monkeypatch):
    # A 5-hour WAV (sparse: no disk used) is refused from its header, without decoding.
    seconds = 5 * 3600
    path = tmp_path / "long.wav"
    data_bytes = seconds * 16000 * 2
    header = CLIP.read_bytes()[:12] + CLIP.read_bytes()[12:36] + b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    monkeypatch.setattr(decode, "_decode", lambda *a: pytest.fail("decoder reached"))
    refused(path, vad_only_config, "longer than the configured maximum (18000 s > 14400 s)")


def test_a_fifo_is_refused_without_blocking(tmp_path, vad_only_config):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    result: dict[str, object] = {}

    def attempt() -> None:
        with pytest.raises(OSError, match="not a regular file"):
            file_sha256(fifo)
        try:
            load_call(fifo, vad_only_config)
        except UnsupportedAudioError as exc:
            result["reason"] = exc.reason

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "reading a FIFO blocked"
    assert result["reason"] == "not a regular file: a FIFO (named pipe), not an audio file"


def test_file_types_and_links_have_reasons(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    os.symlink(tmp_path / "absent.wav", tmp_path / "dangling.wav")
    os.symlink(tmp_path / "loop_a.wav", tmp_path / "loop_b.wav")
    os.symlink(tmp_path / "loop_b.wav", tmp_path / "loop_a.wav")
    expected = {
        "dir.wav": "not a regular file: a directory",
        "dangling.wav": "file not found (a dangling symbolic link)",
        "loop_a.wav": "symbolic link loop",
        "absent.wav": "file not found",
    }
    for name, reason in expected.items():
        with pytest.raises(UnsupportedAudioError) as info:
            check_regular_file(tmp_path / name)
        assert info.value.reason.startswith(reason), info.value.reason
    with pytest.raises(UnsupportedAudioError, match="character device"):
        check_regular_file("/dev/null")
    with pytest.raises(OSError, match="character device"):
        open_regular("/dev/zero")


def test_protocol_names_are_files_not_ffmpeg_urls(tmp_path, vad_only_config, monkeypatch):
    # A recording named like an FFmpeg protocol ("pipe:0") is read as a file, never from stdin.
    monkeypatch.chdir(tmp_path)
    Path("pipe:0").write_bytes(CLIP.read_bytes())
    call = load_call(Path("pipe:0"), vad_only_config)
    assert call.duration_s == pytest.approx(5.547, abs=0.01)


def test_text_playlist_posing_as_audio_is_not_followed(tmp_path, vad_only_config):
    # FFmpeg's concat demuxer would read the listed (relative) file as this call's audio.
    (tmp_path / "other.wav").write_bytes(CLIP.read_bytes())
    playlist = tmp_path / "list.wav"
    playlist.write_text("ffconcat version 1.0\nfile 'other.wav'\n", encoding="utf-8")
    refused(playlist, vad_only_config, "not an audio file (not an audio container callqa reads)")


def test_decoding_memory_is_the_decoded_audio_not_a_multiple(tmp_path, vad_only_config):
    # 10 minutes of stereo: the kept arrays are 2 × 38.4 MB; the old decoder concatenated
    # 30-s chunks (2× at its peak) before splitting channels.
    clip = read_clip("news_8s.wav")
    minutes = 10
    left = np.resize(clip, minutes * 60 * 16000)
    path = write_wav(tmp_path / "long.wav", np.stack([left, left[::-1]], axis=1))
    del left
    tracemalloc.start()
    try:
        call = load_call(path, vad_only_config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = sum(c.samples.nbytes for c in call.channels)
    assert kept == 2 * minutes * 60 * 16000 * 4
    assert peak < kept * 1.15, f"peak {peak / 1e6:.0f} MB for {kept / 1e6:.0f} MB of audio"


def test_level_measurements_work_in_blocks():
    # Peak, loudness, clipping and loudness tracks of a 10-minute channel: no whole-channel
    # temporaries (an abs() copy, a float64 square) on top of the channel itself.
    from pipeline.audio.levels import loudness_dbfs, measure_channel, peak_dbfs
    from pipeline.audio.loudness import loudness_tracks
    from pipeline.records import Call, Channel

    samples = np.resize(read_clip("news_8s.wav"), 10 * 60 * 16000)
    channel = Channel("agent", samples)
    call = Call("c", "p", "sha", (channel,), 16000, 1, "pcm_s16le", "wav", len(samples) / 16000)
    tracemalloc.start()
    try:
        facts = measure_channel(channel, 0.999)
        level, peak = loudness_dbfs(samples), peak_dbfs(samples)
        tracks = loudness_tracks(call, [], 0.1)
        _, used = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # At most a block's float64 square (8 MB); whole-channel temporaries were 77 MB (float64) + 38 MB (abs).
    assert used < 2 * (1 << 20) * 8, f"{used / 1e6:.0f} MB for a {samples.nbytes / 1e6:.0f} MB channel"
    assert facts.loudness_dbfs == level and facts.peak_dbfs == peak
    assert peak == pytest.approx(20 * np.log10(np.abs(samples).max()))
    assert level == pytest.approx(10 * np.log10(np.mean(samples.astype(np.float64) ** 2)))
    assert len(tracks["agent"].dbfs) == 6000
