"""Raised voice (提高分贝): a speaker much louder than their own usual level in the same call.

A role's *speech level* at a frame is the energy average of its speech frames
in a ``raised_voice_smoothing_s`` window (:func:`pipeline.audio.loudness.speech_level_dbfs`).
The role's baseline is the median of that level over all its speech. Speech at
least ``raised_voice_db`` above the baseline for at least ``raised_voice_min_s``
is a raised-voice span. Comparing each speaker with themselves makes the rule
independent of line gain and microphone distance.

For the agent such a span is ``acoustic.raised_voice`` (八大要点 禁止随意提高
分贝, DOMAIN.md §4b). Loudness alone cannot tell 质问 from speaking up on a
bad line, so the hit is ``non_fatal`` (error class ``customer``) for a
reviewer to confirm, not a fatal error. The customer's raised spans are an
agitation feature only. Without tracks (e.g. ``rescore`` from the store), the
segments' own ``loudness_dbfs`` stand in, at segment resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.audio.loudness import LoudnessTrack, speech_level_dbfs
from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Hit
from pipeline.timing.columns import Feature, per_role

RAISED_RULE = "acoustic.raised_voice"

FEATURES: tuple[Feature, ...] = (
    *per_role("{role}_speech_level_dbfs_median", "float",
              "{Role}'s median speech loudness (dBFS), the raised-voice baseline."),
    *per_role("{role}_raised_voice_count", "int",
              "Spans where the {role} is timing.raised_voice_db above own median."),
    *per_role("{role}_raised_voice_s", "float", "Total {role} raised-voice time (s)."),
    *per_role("{role}_loudness_dbfs_mean", "float", "Mean loudness of the {role}'s speech segments (dBFS)."),
    *per_role("{role}_loudness_dbfs_std", "float", "Spread of the {role}'s segment loudness (dB)."),
)


@dataclass(frozen=True)
class RaisedSpan:
    """``role`` spoke ``excess_db`` (median) above their baseline from ``start_s`` to ``end_s``."""

    role: str
    start_s: float
    end_s: float
    excess_db: float


def raised_spans_from_track(track: LoudnessTrack, config: TimingConfig) -> tuple[list[RaisedSpan], float]:
    """Raised spans of one track and the role's baseline (NaN with too little speech)."""
    if track.speech.sum() * track.frame_s < config.raised_voice_min_baseline_s:
        return [], math.nan
    level = speech_level_dbfs(track, config.raised_voice_smoothing_s)
    baseline = float(np.nanmedian(level))
    above = track.speech & (np.nan_to_num(level, nan=-np.inf) >= baseline + config.raised_voice_db)
    runs: list[list[int]] = []
    bridge = int(round(config.raised_voice_bridge_s / track.frame_s))
    for frame in np.flatnonzero(above).tolist():
        if runs and frame - runs[-1][1] <= bridge:
            runs[-1][1] = frame + 1
        else:
            runs.append([frame, frame + 1])
    spans = []
    for i, j in runs:
        start_s, end_s = i * track.frame_s, j * track.frame_s
        if end_s - start_s >= config.raised_voice_min_s:
            excess = float(np.nanmedian(level[i:j])) - baseline
            spans.append(RaisedSpan(track.role, start_s, end_s, excess))
    return spans, baseline


def raised_spans_from_segments(evidence: CallEvidence, role: str,
                               config: TimingConfig) -> tuple[list[RaisedSpan], float]:
    """The fallback without tracks: whole segments above the role's median segment level."""
    segments = [s for s in evidence.segments_of(role) if math.isfinite(s.loudness_dbfs)]
    if sum(s.duration_s for s in segments) < config.raised_voice_min_baseline_s:
        return [], math.nan
    baseline = float(np.median([s.loudness_dbfs for s in segments]))
    return [RaisedSpan(role, s.start_s, s.end_s, s.loudness_dbfs - baseline) for s in segments
            if s.loudness_dbfs >= baseline + config.raised_voice_db and s.duration_s >= config.raised_voice_min_s
            ], baseline


def find_raised_voice(evidence: CallEvidence, config: TimingConfig,
                      loudness: Mapping[str, LoudnessTrack] | None) -> tuple[list[RaisedSpan], dict[str, float]]:
    """Raised spans of agent and customer (none on mono calls) and each role's baseline dBFS."""
    if evidence.is_mono:
        return [], {}
    spans: list[RaisedSpan] = []
    baselines: dict[str, float] = {}
    for role in (AGENT, CUSTOMER):
        if role not in evidence.roles:
            continue
        if loudness is not None and role in loudness:
            found, baselines[role] = raised_spans_from_track(loudness[role], config)
        else:
            found, baselines[role] = raised_spans_from_segments(evidence, role, config)
        spans.extend(found)
    return sorted(spans, key=lambda s: s.start_s), baselines


def loudness_features(spans: list[RaisedSpan], baselines: Mapping[str, float],
                      evidence: CallEvidence) -> dict[str, float | int | None]:
    """The :data:`FEATURES` of agent and customer; raised-voice ones are ``None`` on mono calls."""
    features: dict[str, float | int | None] = {}
    for role in (AGENT, CUSTOMER):
        levels = [s.loudness_dbfs for s in evidence.segments_of(role) if math.isfinite(s.loudness_dbfs)]
        features[f"{role}_loudness_dbfs_mean"] = float(np.mean(levels)) if levels else None
        features[f"{role}_loudness_dbfs_std"] = float(np.std(levels)) if levels else None
        if evidence.is_mono or role not in baselines:
            features.update({f"{role}_speech_level_dbfs_median": None, f"{role}_raised_voice_count": None,
                             f"{role}_raised_voice_s": None})
            continue
        mine = [s for s in spans if s.role == role]
        features[f"{role}_speech_level_dbfs_median"] = baselines[role]
        features[f"{role}_raised_voice_count"] = len(mine)
        features[f"{role}_raised_voice_s"] = float(sum(s.end_s - s.start_s for s in mine))
    return features


def detect_raised_voice(evidence: CallEvidence, config: TimingConfig, spans: list[RaisedSpan],
                        detector_version: str) -> list[Hit]:
    """One ``acoustic.raised_voice`` hit per agent raised span (severity: see module doc)."""
    return [
        Hit(call_id=evidence.call_id, rule_id=RAISED_RULE, detector_version=detector_version, category="raised_voice",
            severity="non_fatal", error_class="customer", role=AGENT, start_s=s.start_s,
            end_s=min(s.end_s, evidence.duration_s) if evidence.duration_s >= s.start_s else s.end_s,
            match_type="acoustic",
            detail=f"{s.excess_db:.1f} dB above own median for {s.end_s - s.start_s:.1f} s "
                   f"(>= {config.raised_voice_db:g} dB, >= {config.raised_voice_min_s:g} s)")
        for s in spans if s.role == AGENT
    ]
