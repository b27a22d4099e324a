"""Everything after transcription, for one call: detectors, features, score, classifier.

:class:`Analysers` holds the heavy, reusable objects (compiled lexicon
matcher, red-line text model, scorecard, promoted classifier). It is built
once per worker by the runner and reused by ``callqa rescore``, so a call
analysed during ``callqa run`` and re-analysed from the store go through the
same code.

Versions. Each hit carries the version of the detector that raised it (the
rule sets' version, :data:`pipeline.timing.detect.RULES_VERSION`, the
red-line model's version). A call's feature row carries all of them joined
by :data:`RULES_VERSION_SEP` in ``rules_version``, which is how a stored score
is traced back to the exact hits it was computed from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.scoring.classifier import TrainedModel, apply_model, load_promoted, promoted_name
from pipeline.config import Config
from pipeline.text.matcher import LexiconMatcher, build_matcher, detect_phrases
from pipeline.audio.loudness import LoudnessTrack
from pipeline.text.redline_model import (
    CARD_FILE,
    RedlineTextModel,
    card_version,
    find_redline_model,
    score_utterances,
)
from pipeline.timing.detect import RULES_VERSION as TIMING_VERSION
from pipeline.timing.detect import TimingResult, detect_timing
from pipeline.scoring.features import build_features, with_score
from pipeline.text.rules import RuleSet, load_rules
from pipeline.records import CallEvidence, Hit
from pipeline.text.pii import mask_hit
from pipeline.scoring.scorecard import Scorecard, load_scorecard, score_call
from pipeline.store import RULES_VERSION_SEP


def redline_model_path(config: Config) -> str | None:
    """Where the configured red-line text model lives, or None when off or not installed."""
    path = find_redline_model(config.classifier.redline_model)
    return None if path is None else str(path)


def is_timing_version(version: str) -> bool:
    """True for a version string of the timing detectors ("timing-N")."""
    return version.split("-", 1)[0] == TIMING_VERSION.split("-", 1)[0]


def join_versions(rules: str | None, timing: str | None, redline: str | None) -> str:
    """The combined ``rules_version`` of a feature row: rule sets, timing detectors, red-line model.

    A part is None when that detector did not run (no transcript, no model).
    """
    return RULES_VERSION_SEP.join(v for v in (rules, timing, redline) if v)


def planned_rules_version(config: Config) -> str:
    """What :attr:`Analysers.rules_version` will be, without compiling or loading any model."""
    text = config.asr.enabled
    path = redline_model_path(config) if text else None
    redline = None
    if path is not None:
        try:
            redline = card_version(json.loads((Path(path) / CARD_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            redline = "redline_text@unreadable"
    return join_versions(load_rules(config.text.rules_dir or None).version if text else None, TIMING_VERSION, redline)


def classifier_note(config: Config) -> str:
    """Which classifier will score the calls, in words (printed by ``callqa run``)."""
    name = promoted_name(config.classifier.models_dir)
    if name is None:
        return f"no classifier promoted in {config.classifier.models_dir}/: scorecard only"
    return f"classifier {config.classifier.models_dir}/{name}"


@dataclass(frozen=True)
class Analysers:
    """The detectors, scorecard and classifier one worker applies to every call."""

    config: Config
    rules: RuleSet
    matcher: LexiconMatcher | None
    hold_phrases: tuple[str, ...]
    backchannels: tuple[str, ...]
    redline: RedlineTextModel | None
    scorecard: Scorecard
    classifier: TrainedModel | None

    @classmethod
    def load(cls, config: Config, rules: RuleSet | None = None, text: bool | None = None) -> Analysers:
        """Load rule sets, the red-line model, the scorecard and the promoted classifier.

        Args:
            config: the run's configuration.
            rules: rule sets to use instead of ``text.rules_dir``'s.
            text: run the text detectors; default ``asr.enabled`` (no transcript, no text rules).

        Raises:
            LexiconError: a rule set is malformed.
            ConfigError: the scorecard is missing or invalid.
            ModelError: the red-line model or the promoted classifier cannot be loaded.
        """
        rules = rules if rules is not None else load_rules(config.text.rules_dir or None)
        text = config.asr.enabled if text is None else text
        redline_path = redline_model_path(config) if text else None
        return cls(
            config=config, rules=rules,
            matcher=build_matcher(rules, config.text) if text else None,
            hold_phrases=rules.lists.get("hold_announcement", ()),
            backchannels=rules.lists.get("backchannel", ()),
            redline=RedlineTextModel.load(redline_path) if redline_path else None,
            scorecard=load_scorecard(config.scoring.scorecard or None, config.scoring.pass_score or None),
            classifier=load_promoted(config.classifier.models_dir),
        )

    @property
    def rules_version(self) -> str:
        """Versions of every detector applied, joined (the ``rules_version`` of feature rows)."""
        return join_versions(self.rules.version if self.matcher is not None else None, TIMING_VERSION,
                             self.redline.version if self.redline is not None else None)

    def text_hits(self, evidence: CallEvidence) -> list[Hit]:
        """Lexicon rules and the red-line text model, with personal data masked in the evidence text."""
        if self.matcher is None:
            return []
        pii = self.config.pii if self.config.pii.detect and self.config.pii.mask else None
        hits = detect_phrases(evidence, self.matcher, self.config.text, pii)
        if self.redline is not None:
            classifier = self.config.classifier
            hits += score_utterances(evidence, self.redline, classifier.redline_threshold or None,
                                     severity=classifier.redline_severity)
        return [mask_hit(h, pii) for h in hits] if pii is not None else hits

    def timing(self, evidence: CallEvidence, tracks: Mapping[str, LoudnessTrack] | None) -> TimingResult:
        """Speech rate, silence, interruptions, latency, talk ratio, raised voice, hang-up."""
        return detect_timing(evidence, self.config.timing, tracks, self.hold_phrases, self.backchannels)

    def feature_row(self, evidence: CallEvidence, hits: Sequence[Hit], timing_features: Mapping[str, Any],
                    call_facts: Mapping[str, Any], versions: Mapping[str, str]) -> dict[str, Any]:
        """The call's feature row, scored by the scorecard and, when one is promoted, the classifier."""
        row = build_features(evidence, hits, timing_features, call_facts, versions)
        row = with_score(row, score_call(hits, row, self.scorecard))
        return apply_model([row], self.classifier)[0]


__all__ = ["Analysers", "classifier_note", "is_timing_version", "join_versions", "planned_rules_version",
           "redline_model_path"]
