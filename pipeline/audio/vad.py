"""Find speech on each channel with the Silero VAD that ships in faster-whisper.

The VAD runs offline (its ONNX model is inside the faster-whisper wheel). The
segments it returns are the clock every timing detector works on, and they
tell the transcriber where to decode so Whisper never sees long silences.
"""

from __future__ import annotations

import numpy as np
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


def chunk_starts(samples: np.ndarray, config: VadConfig) -> list[int]:
    """Where each VAD chunk starts (samples): about every ``chunk_s``, at the quietest ``chunk_quiet_s``
    of the ``chunk_search_s`` before that (the middle of a pause, not inside a word).

    Silero's state decides what it hears: after 30-60 s of telephone-line noise alone it stops
    hearing speech, and started inside a word it can miss the next ten seconds. A chunk that starts
    in a pause, at most ``chunk_s`` after the last, avoids both.
    """
    frame = max(1, int(config.loudness_frame_s * SAMPLE_RATE_HZ))
    count = len(samples) // frame
    if count == 0:
        return [0]
    energy = np.mean(np.square(samples[:count * frame].reshape(count, frame), dtype=np.float64), axis=1)
    width = max(1, int(round(config.chunk_quiet_s / config.loudness_frame_s)))
    smoothed = np.convolve(10 * np.log10(energy + 1e-12), np.ones(width) / width, mode="same")
    chunk, search = int(config.chunk_s / config.loudness_frame_s), int(config.chunk_search_s / config.loudness_frame_s)
    starts = [0]
    while starts[-1] + chunk < count:
        low, high = max(starts[-1] + 1, starts[-1] + chunk - search), starts[-1] + chunk
        starts.append(low + int(np.argmin(smoothed[low:high])))
    return [s * frame for s in starts]


def _chunked_speech(samples: np.ndarray, config: VadConfig) -> list[tuple[int, int]]:
    """Silero's speech spans (samples), run chunk by chunk (:func:`chunk_starts`) with a fresh state;
    spans that touch across a chunk boundary are joined (up to ``max_speech_duration_s``)."""
    options = vad_options(config)
    bounds = [*chunk_starts(samples, config), len(samples)]
    found: list[tuple[int, int]] = []
    for low, high in zip(bounds, bounds[1:], strict=False):
        for stamp in get_speech_timestamps(samples[low:high], options, sampling_rate=SAMPLE_RATE_HZ):
            start, end = low + int(stamp["start"]), min(low + int(stamp["end"]), len(samples))
            if end > start:
                found.append((start, end))
    longest = int(config.max_speech_duration_s * SAMPLE_RATE_HZ)
    joined: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if joined and start <= joined[-1][1] and max(end, joined[-1][1]) - joined[-1][0] <= longest:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        elif not joined or end > joined[-1][1]:
            joined.append((start, end))
    return joined


def detect_faint_speech(channel: Channel, config: VadConfig) -> list[tuple[float, float]]:
    """Where Silero, listening harder (``[vad] faint_threshold``), hears a voice: spans in seconds.

    The same chunked run as :func:`detect_speech` with the lower threshold (and
    Silero's own lower threshold to stay in speech, 0.15 under it). Its spans
    are not speech segments: nothing is decoded or timed from them as speech.
    They tell :func:`pipeline.asr.coverage.sound_gaps` where a voice may be that
    the VAD did not take for speech: a quiet "好，谢谢" on a noisy line reaches
    a speech probability of 0.5-0.66 for 130 ms, under Silero's 200 ms minimum,
    and stays 3-4 dB over the line noise, under the ``[asr]
    sound_above_floor_db`` rule. ``"off"`` (or a silent channel) finds none.
    """
    if config.faint_threshold == "off" or peak_dbfs(channel.samples) < config.silence_floor_dbfs:
        return []
    looser = config.model_copy(update={"threshold": config.faint_threshold})
    return [(start / SAMPLE_RATE_HZ, end / SAMPLE_RATE_HZ) for start, end in _chunked_speech(channel.samples, looser)]


def detect_speech(channel: Channel, config: VadConfig) -> list[SpeechSegment]:
    """Return the speech segments of one channel, in time order, on the call clock.

    A channel whose peak is below ``config.silence_floor_dbfs`` is silent: no
    segments, and the VAD model is not run at all.
    """
    samples = channel.samples
    if peak_dbfs(samples) < config.silence_floor_dbfs:
        return []
    segments = []
    for start, end in _chunked_speech(samples, config):
        segments.append(
            SpeechSegment(
                role=channel.role,
                start_s=start / SAMPLE_RATE_HZ,
                end_s=end / SAMPLE_RATE_HZ,
                loudness_dbfs=loudness_dbfs(samples[start:end]),
            )
        )
    return segments
