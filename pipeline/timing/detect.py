"""The timing and acoustic detectors behind one call: :func:`detect_timing`.

Run order in ``pipeline/batch.py``: after VAD, ``tracks = loudness_tracks(call,
segments)`` (cheap, needs the audio); after transcription, ``detect_timing(
evidence, config.timing, tracks, hold_phrases, backchannels)``. On ``rescore``
from the store pass ``loudness=None``: raised voice then falls back to segment
loudness.

Feature names carry their unit (``_s`` seconds, ``_chars_per_min``,
``_dbfs``, ``_count``, ``_ratio``); values are NaN where nothing was measured
(no replies, no rated speech) and ``None`` where not applicable (role-scoped
features on mono calls).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from pipeline.config import TimingConfig
from pipeline.timing.hangup import detect_hangup, hangup_features
from pipeline.timing.interruptions import detect_interruptions, find_interruptions, interruption_features
from pipeline.timing.latency import detect_response_latency, latency_features, response_latencies, talk_features
from pipeline.audio.loudness import (
    LoudnessTrack,
    detect_raised_voice,
    find_raised_voice,
    loudness_features,
    loudness_tracks,
)
from pipeline.timing.silence import detect_silence, find_silences, silence_features
from pipeline.timing.speech_rate import detect_speech_rate, speech_rate_features
from pipeline.records import CallEvidence, Hit

#: Version of these detectors' logic, stored with every hit (bump on any behaviour change).
RULES_VERSION = "timing-1"

__all__ = ["RULES_VERSION", "LoudnessTrack", "TimingResult", "detect_timing", "loudness_tracks"]

FeatureValue = float | int | str | None


@dataclass(frozen=True)
class TimingResult:
    """Hits of every timing/acoustic detector and the per-call features."""

    hits: tuple[Hit, ...]
    features: Mapping[str, FeatureValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", MappingProxyType(dict(self.features)))


def detect_timing(
    evidence: CallEvidence,
    config: TimingConfig,
    loudness: Mapping[str, LoudnessTrack] | None,
    hold_phrases: Sequence[str],
    backchannels: Sequence[str],
) -> TimingResult:
    """Run speech rate, silence/hold/answer delay, interruptions, latency, talk, raised voice and hang-up.

    Args:
        evidence: the call's VAD segments, utterances (may be empty) and metadata.
        config: the ``[timing]`` thresholds.
        loudness: per-role loudness tracks from :func:`loudness_tracks`, or ``None``.
        hold_phrases: announcement phrases that excuse a silence as a hold ("请稍等"…).
        backchannels: listening noises that are never interruptions ("嗯", "对"…).

    Returns:
        The hits (time-ordered) and the feature mapping.
    """
    silences = find_silences(evidence, config, hold_phrases)
    interruptions = find_interruptions(evidence, config, backchannels)
    replies = response_latencies(evidence)
    raised, baselines = find_raised_voice(evidence, config, loudness)
    hits = [
        *detect_speech_rate(evidence, config, RULES_VERSION),
        *detect_silence(evidence, config, silences, RULES_VERSION),
        *detect_interruptions(evidence, interruptions, RULES_VERSION),
        *detect_response_latency(evidence, config, replies, RULES_VERSION),
        *detect_raised_voice(evidence, config, raised, RULES_VERSION),
        *detect_hangup(evidence, config, RULES_VERSION),
    ]
    features: dict[str, FeatureValue] = {}
    features.update(speech_rate_features(evidence, config))
    features.update(silence_features(silences, evidence))
    features.update(interruption_features(interruptions, evidence))
    features.update(latency_features(replies, evidence))
    features.update(talk_features(evidence, config))
    features.update(loudness_features(raised, baselines, evidence))
    features.update(hangup_features(evidence, config))
    hits.sort(key=lambda h: (h.start_s, h.rule_id))
    return TimingResult(tuple(hits), features)
