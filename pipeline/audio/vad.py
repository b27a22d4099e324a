"""Find speech on each channel with the Silero VAD that ships in faster-whisper.

The VAD runs offline (its ONNX model is inside the faster-whisper wheel). The
segments it returns are the clock every timing detector works on, and they
tell the transcriber where to decode so Whisper never sees long silences.
"""

from __future__ import annotations

from faster_whisper.vad import VadOptions, get_speech_timestamps

from pipeline.audio.levels import loudness_dbfs, peak_dbfs
from pipeline.config import VadConfig
from pipeline.records import SAMPLE_RATE_HZ, Channel, SpeechSegment


def vad_options(config: VadConfig) -> VadOptions:
    """faster-whisper's VadOptions built from callqa's ``[vad]`` section."""
    return VadOptions(
        threshold=config.threshold,
        min_speech_duration_ms=config.min_speech_duration_ms,
        min_silence_duration_ms=config.min_silence_duration_ms,
        speech_pad_ms=config.speech_pad_ms,
        max_speech_duration_s=config.max_speech_duration_s,
    )


def detect_speech(channel: Channel, config: VadConfig) -> list[SpeechSegment]:
    """Return the speech segments of one channel, in time order, on the call clock.

    A channel whose peak is below ``config.silence_floor_dbfs`` is silent: no
    segments, and the VAD model is not run at all.
    """
    samples = channel.samples
    if peak_dbfs(samples) < config.silence_floor_dbfs:
        return []
    timestamps = get_speech_timestamps(samples, vad_options(config), sampling_rate=SAMPLE_RATE_HZ)
    segments = []
    for stamp in timestamps:
        start, end = int(stamp["start"]), min(int(stamp["end"]), len(samples))
        if end <= start:
            continue
        segments.append(
            SpeechSegment(
                role=channel.role,
                start_s=start / SAMPLE_RATE_HZ,
                end_s=end / SAMPLE_RATE_HZ,
                loudness_dbfs=loudness_dbfs(samples[start:end]),
            )
        )
    return segments
