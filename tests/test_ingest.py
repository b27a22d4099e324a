"""Ingest on every supported format (made from real clips at test time) and every bad input."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import CLIPS, ffmpeg_convert, place, read_clip, write_wav

from pipeline.audio.decode import load_call
from pipeline.errors import UnsupportedAudioError
from pipeline.records import SAMPLE_RATE_HZ

SOURCE = CLIPS / "asr_example.wav"
SOURCE_S = 5.547

FORMATS = [
    ("pcm_u8.wav", ["-c:a", "pcm_u8"], "pcm_u8", 16000),
    ("pcm24.wav", ["-c:a", "pcm_s24le"], "pcm_s24le", 16000),
    ("pcm32.wav", ["-c:a", "pcm_s32le"], "pcm_s32le", 16000),
    ("mulaw.wav", ["-ar", "8000", "-c:a", "pcm_mulaw"], "pcm_mulaw", 8000),
    ("alaw.wav", ["-ar", "8000", "-c:a", "pcm_alaw"], "pcm_alaw", 8000),
    ("call.mp3", ["-c:a", "libmp3lame"], "mp3float", 16000),
    ("call.m4a", ["-c:a", "aac"], "aac", 16000),
    ("call.ogg", ["-c:a", "libvorbis"], "vorbis", 16000),
    ("call.opus", ["-c:a", "libopus"], "opus", 48000),
    ("call.flac", ["-c:a", "flac"], "flac", 16000),
    ("call.amr", ["-ar", "8000", "-c:a", "libopencore_amrnb"], "amrnb", 8000),
    ("wideband44k.wav", ["-ar", "44100"], "pcm_s16le", 44100),
]


@pytest.mark.parametrize(("name", "args", "codec", "rate"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_format_decodes_to_16k_float(tmp_path, vad_only_config, name, args, codec, rate):
    path = ffmpeg_convert(SOURCE, tmp_path / name, *args)
    call = load_call(path, vad_only_config)
    assert call.codec == codec
    assert call.source_sample_rate_hz == rate
    assert [c.role for c in call.channels] == ["mixed"]
    assert call.duration_s == pytest.approx(SOURCE_S, abs=0.07)
    samples = call.channels[0].samples
    assert samples.dtype == np.float32
    # The decoded speech keeps its energy (lossy codecs included): not silence, not garbage.
    original = read_clip("asr_example.wav")
    assert np.sqrt(np.mean(samples**2)) == pytest.approx(np.sqrt(np.mean(original**2)), rel=0.25)


def test_gsm_wav_decodes(tmp_path, vad_only_config):
    # FFmpeg builds here cannot encode GSM; libsndfile (soundfile) can.
    clip = read_clip("asr_example.wav")[::2]
    path = tmp_path / "gsm.wav"
    soundfile.write(path, clip, 8000, format="WAV", subtype="GSM610")
    call = load_call(path, vad_only_config)
    assert call.codec == "gsm_ms"
    assert call.duration_s == pytest.approx(SOURCE_S, abs=0.05)


def test_stereo_keeps_channels_apart_with_default_roles(stereo_call, vad_only_config):
    call = load_call(stereo_call(), vad_only_config)
    agent, customer = call.channel("agent"), call.channel("customer")
    # agent speaks 0.5..6 s, customer 7..11.2 s: each channel is silent while the other talks
    assert np.abs(agent.samples[int(7.5 * SAMPLE_RATE_HZ):int(11 * SAMPLE_RATE_HZ)]).max() == 0
    assert np.abs(customer.samples[: int(6.5 * SAMPLE_RATE_HZ)]).max() == 0
    assert np.abs(agent.samples).max() > 0.05 and np.abs(customer.samples).max() > 0.05
    assert call.duration_s == pytest.approx(12.0, abs=1e-3)
    assert call.source_channels == 2 and not call.is_mono


def test_per_call_role_override_swaps_channels(stereo_call, vad_only_config):
    path = stereo_call()
    default = load_call(path, vad_only_config)
    swapped = load_call(path, vad_only_config, channel_roles=("customer", "agent"))
    assert np.array_equal(swapped.channel("agent").samples, default.channel("customer").samples)


def test_three_channels_need_a_mapping(tmp_path, vad_only_config):
    track = place([("asr_example.wav", 0.0)], 6.0)
    path = write_wav(tmp_path / "three.wav", np.stack([track, track * 0.5, track * 0.1], axis=1))
    with pytest.raises(UnsupportedAudioError, match="has 3 channels but only 2 roles are mapped"):
        load_call(path, vad_only_config)
    call = load_call(path, vad_only_config, channel_roles=("agent", "customer", "ignore"))
    assert [c.role for c in call.channels] == ["agent", "customer"]


def expect_error(path: Path, config, reason: str) -> None:
    with pytest.raises(UnsupportedAudioError) as info:
        load_call(path, config)
    assert info.value.path == str(path)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_empty_file(tmp_path, vad_only_config):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    expect_error(path, vad_only_config, "empty file (0 bytes)")


def test_text_file_renamed_wav(tmp_path, vad_only_config):
    path = tmp_path / "notes.wav"
    path.write_text("客户投诉记录，不是音频\n" * 20, encoding="utf-8")
    expect_error(path, vad_only_config, "not an audio file")


def test_truncated_wav(tmp_path, vad_only_config):
    full = (CLIPS / "news_8s.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[: len(full) // 3])
    expect_error(path, vad_only_config, "truncated")


def test_corrupt_payload(tmp_path, vad_only_config):
    good = ffmpeg_convert(SOURCE, tmp_path / "good.mp3", "-c:a", "libmp3lame")
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(7)
    data[:] = rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()  # nothing recognisable left
    path = tmp_path / "noise.mp3"
    path.write_bytes(bytes(data))
    expect_error(path, vad_only_config, "not an audio file")


def test_zero_length_wav(tmp_path, vad_only_config):
    path = write_wav(tmp_path / "zero.wav", np.zeros(0, np.float32))
    expect_error(path, vad_only_config, "zero length")


def test_longer_than_maximum(tmp_path, vad_only_config):
    config = vad_only_config.with_overrides({"input": {"max_duration_s": 3.0}})
    expect_error(CLIPS / "news_8s.wav", config, "longer than the configured maximum")


def test_sample_rate_too_low(tmp_path, vad_only_config):
    path = ffmpeg_convert(SOURCE, tmp_path / "low.wav", "-ar", "4000")
    expect_error(path, vad_only_config, "4000 Hz is below the 8000 Hz minimum")


def test_missing_and_unreadable(tmp_path, vad_only_config, monkeypatch):
    expect_error(tmp_path / "absent.wav", vad_only_config, "file not found")
    path = write_wav(tmp_path / "locked.wav", read_clip("asr_example.wav"))
    monkeypatch.setattr("pipeline.audio.decode.os.access", lambda *_: False)  # tests run as root in CI
    expect_error(path, vad_only_config, "permission denied")


def test_audio_hash_identifies_content(tmp_path, vad_only_config):
    a = load_call(CLIPS / "news_5s.wav", vad_only_config)
    copy = tmp_path / "copy.wav"
    copy.write_bytes((CLIPS / "news_5s.wav").read_bytes())
    assert load_call(copy, vad_only_config).audio_sha256 == a.audio_sha256
    assert load_call(CLIPS / "news_8s.wav", vad_only_config).audio_sha256 != a.audio_sha256
