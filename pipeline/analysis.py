"""The stage order, written once.

    decode → VAD → onset repair → ASR → PII → text rules and red-line model
           → timing → features → scorecard → classifier

Every path through callqa goes through these functions: ``callqa run`` (via
:mod:`pipeline.process`), ``callqa transcribe`` (:func:`transcribe_audio`),
``callqa rescore`` (:func:`analyse_evidence` on stored transcripts), the
benchmarks and the distributed engines.

- :class:`Resources` holds the heavy, reusable objects (Whisper, the compiled
  lexicon, the red-line text model, the scorecard, the classifier). Build it
  once per worker with :meth:`Resources.load` and pass it in; tests pass a fake
  transcriber the same way.
- :func:`transcribe_audio`: VAD, onset repair and ASR of a decoded call.
- :func:`protect_pii`: find personal data and mask it, once, before anything reads the text.
- :func:`analyse_evidence`: text rules, red-line model, timing, features,
  scorecard and classifier, on evidence that may come from audio or from the store.
- :func:`analyse_call`: all of the above for one decoded call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipeline.asr.coverage import Gap, coverage_columns, crosstalk_of, sound_gaps
from pipeline.asr.guard import HallucinationLexicon, load_hallucination_lexicon
from pipeline.asr.model import resolve_model
from pipeline.asr.transcribe import Transcriber, Transcription, WhisperTranscriber, decode_unheard, transcribe_speech
from pipeline.audio.levels import ChannelFacts, measure_channel
from pipeline.audio.loudness import LoudnessTrack, loudness_tracks, refine_segments, with_segments
from pipeline.audio.vad import detect_faint_speech, detect_speech
from pipeline.config import Config
from pipeline.records import Call, CallEvidence, Hit, SpeechSegment, Utterance
from pipeline.scoring.classifier import TrainedModel, apply_model
from pipeline.scoring.features import build_features, with_score
from pipeline.scoring.scorecard import Scorecard, ScoreResult, load_scorecard, score_call
from pipeline.text.matcher import LexiconMatcher, build_matcher, detect_phrases
from pipeline.text.pii import PiiTime, locate_pii, mask_utterance
from pipeline.text.redline_model import RedlineTextModel, redline_model_path, redline_version, score_utterances
from pipeline.text.rules import RuleSet, load_rules
from pipeline.text.second_look import recheck_model_hits, same_words, second_look
from pipeline.text.sound_check import sound_check
from pipeline.timing.detect import TIMING_VERSION, TimingResult, detect_timing, timing_evidence
from pipeline.versions import ANALYSIS_VERSION, NONE, Versions

#: Use the transcriber named by ``[asr]`` (the default of :meth:`Resources.load`).
FROM_CONFIG = "from-config"


@dataclass(frozen=True)
class Resources:
    """Everything heavy one worker applies to every call; build once with :meth:`load`."""

    config: Config
    transcriber: Transcriber | None
    hallucinations: HallucinationLexicon
    rules: RuleSet
    matcher: LexiconMatcher | None
    redline: RedlineTextModel | None
    scorecard: Scorecard
    classifier: TrainedModel | None
    #: The speech model of the transcripts these resources analyse when they do not
    #: transcribe themselves (an engine's analysis workers); None: from the transcriber.
    speech_model: str | None = None

    @classmethod
    def load(cls, config: Config, *, transcriber: Transcriber | None | str = FROM_CONFIG,
             rules: RuleSet | None = None, scorecard: Scorecard | None = None,
             classifier: TrainedModel | None = None, text: bool | None = None) -> Resources:
        """Load the models, rule sets and scorecard a worker needs.

        Args:
            config: the run's configuration.
            transcriber: a transcriber to use (tests pass a fake), None for no
                transcription, or :data:`FROM_CONFIG` (load Whisper when ``asr.enabled``).
            rules: rule sets to use instead of ``text.rules_dir``'s.
            scorecard: the scorecard to use instead of ``scoring.scorecard``'s
                (a store records the one it is scored with).
            classifier: the promoted classifier (None: scorecard only).
            text: run the text detectors; default: when there is a transcriber
                or transcripts (``asr.enabled``).

        Raises:
            ModelError: the speech or red-line model cannot be loaded.
            LexiconError: a rule set or the hallucination lexicon is malformed.
            ConfigError: the scorecard is missing or invalid.
        """
        if transcriber == FROM_CONFIG:
            transcriber = WhisperTranscriber.from_config(config.asr) if config.asr.enabled else None
        assert not isinstance(transcriber, str), f"unknown transcriber {transcriber!r}"
        text = config.asr.enabled if text is None else text
        rules = rules if rules is not None else load_rules(config.text.rules_dir)
        redline_path = redline_model_path(config.classifier.redline_model) if text else None
        return cls(
            config=config, transcriber=transcriber,
            hallucinations=load_hallucination_lexicon(config.asr.guard.hallucination_lexicon),
            rules=rules, matcher=build_matcher(rules, config.text) if text else None,
            redline=RedlineTextModel.load(redline_path) if redline_path is not None else None,
            scorecard=scorecard if scorecard is not None else load_scorecard(config.scoring.scorecard),
            classifier=classifier,
        )

    @property
    def versions(self) -> Versions:
        """What the results of these resources depend on (stored on every row)."""
        return Versions(
            config_hash=self.config.config_hash, analysis_version=ANALYSIS_VERSION,
            asr_model=self.transcriber.model_id if self.transcriber is not None else (self.speech_model or NONE),
            rules_version=self.rules.version if self.matcher is not None else NONE,
            timing_version=TIMING_VERSION,
            redline_model=self.redline.version if self.redline is not None else NONE,
        )

    def with_scoring(self, scorecard: Scorecard, classifier: TrainedModel | None) -> Resources:
        """The same resources scoring with another scorecard and classifier."""
        return replace(self, scorecard=scorecard, classifier=classifier)


@dataclass(frozen=True)
class ResourceSpec:
    """How to build a worker's :class:`Resources`: picklable, so engines send it to worker processes.

    Attributes mirror :meth:`Resources.load`'s arguments; :meth:`versions` tells
    what the results will record without loading any model (the batch's resume key).
    """

    config: Config
    transcriber: Transcriber | None | str = FROM_CONFIG
    scorecard: Scorecard | None = None
    classifier: TrainedModel | None = None

    def load(self) -> Resources:
        """Build the resources (in the worker that will use them)."""
        return Resources.load(self.config, transcriber=self.transcriber, scorecard=self.scorecard,
                              classifier=self.classifier)

    def load_for_analysis(self) -> Resources:
        """Everything but the speech model: for workers that analyse calls another worker transcribed."""
        loaded = Resources.load(self.config, transcriber=None, scorecard=self.scorecard, classifier=self.classifier,
                                text=self.config.asr.enabled)
        return replace(loaded, speech_model=self.versions().asr_model)

    def load_for_scoring(self) -> Resources:
        """Only what scoring stored rows needs: the scorecard and classifier (no speech or text models)."""
        return Resources.load(self.config, transcriber=None, scorecard=self.scorecard, classifier=self.classifier,
                              text=False)

    def with_scoring(self, scorecard: Scorecard, classifier: TrainedModel | None) -> ResourceSpec:
        """The same spec scoring with another scorecard and classifier."""
        return replace(self, scorecard=scorecard, classifier=classifier)

    def versions(self) -> Versions:
        """What :attr:`Resources.versions` will be, without loading any model into memory.

        Raises:
            ModelError: the configured speech or red-line model cannot be found.
            LexiconError: a rule set is malformed.
        """
        config = self.config
        text = config.asr.enabled
        if isinstance(self.transcriber, str):
            asr_model = resolve_model(config.asr.model).model_id if config.asr.enabled else NONE
        else:
            asr_model = self.transcriber.model_id if self.transcriber is not None else NONE
        return Versions(
            config_hash=config.config_hash, analysis_version=ANALYSIS_VERSION, asr_model=asr_model,
            rules_version=load_rules(config.text.rules_dir).version if text else NONE,
            timing_version=TIMING_VERSION,
            redline_model=(redline_version(config.classifier.redline_model) or NONE) if text else NONE,
        )


# -- audio stages ----------------------------------------------------------------
@dataclass(frozen=True)
class Transcript:
    """What the audio stages found: speech per role, its loudness, the recognised text and the speech without
    text (``gaps``, each with its reason; :mod:`pipeline.asr.coverage`)."""

    segments: tuple[SpeechSegment, ...]
    utterances: tuple[Utterance, ...]
    tracks: Mapping[str, LoudnessTrack]
    channels: tuple[ChannelFacts, ...]
    gaps: tuple[Gap, ...] = ()


def transcribe_audio(call: Call, resources: Resources) -> Transcript:
    """VAD, onset repair and ASR of a decoded call (the text is not masked yet).

    Raises:
        Nothing for bad audio (that failed at decoding); exceptions here are bugs
        or model failures and become the call's error row in a batch.
    """
    config = resources.config
    segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
    tracks = loudness_tracks(call, segments, config.vad.loudness_frame_s)
    if config.vad.onset_repair:
        segments = refine_segments(segments, tracks, config.vad)
        tracks = with_segments(tracks, segments)
    segments = sorted(segments, key=lambda s: (s.start_s, s.role))
    transcription = (transcribe_speech(call, segments, resources.transcriber, config.asr, resources.hallucinations)
                     if resources.transcriber is not None else None)
    facts = tuple(measure_channel(channel, config.vad.clip_level) for channel in call.channels)
    if transcription is None:
        return Transcript(tuple(segments), (), tracks, facts)
    transcription, unheard = hear_missed_sound(call, segments, tracks, transcription, resources)
    gaps = tuple(sorted((*transcription.gaps, *unheard), key=lambda g: (g.start_s, g.role)))
    return Transcript(tuple(segments), transcription.utterances, tracks, facts, gaps)


def hear_missed_sound(call: Call, segments: Sequence[SpeechSegment], tracks: Mapping[str, LoudnessTrack],
                      transcription: Transcription, resources: Resources) -> tuple[Transcription, list[Gap]]:
    """The sound VAD did not take for speech, loud or a faint voice (``[vad] faint_threshold``): decoded
    (``[asr] decode_vad_missed``, keeping only trusted text), and what still has no text as ``vad_missed``
    gaps (:func:`pipeline.asr.coverage.sound_gaps`)."""
    asr, vad = resources.config.asr, resources.config.vad
    faint = {channel.role: detect_faint_speech(channel, vad) for channel in call.channels}

    def missed(utterances: Sequence[Utterance]) -> list[Gap]:
        return sound_gaps(tracks, segments, utterances, asr, faint, vad.min_speech_duration_ms / 1000)

    unheard = missed(transcription.utterances)
    if unheard and asr.decode_vad_missed:  # a voice Silero did not hear: try it
        transcription = decode_unheard(call, segments, transcription, unheard, resources.transcriber, asr,
                                       resources.hallucinations)
        unheard = missed(transcription.utterances)
    return transcription, unheard


def protect_pii(utterances: Sequence[Utterance], config: Config
                ) -> tuple[tuple[Utterance, ...], tuple[tuple[PiiTime, ...], ...] | None]:
    """Find personal data in each utterance and mask it (``[pii]``), once, before any detector reads the text.

    Returns:
        The utterances (masked when ``pii.mask``) and, when ``pii.detect``, where
        each one's personal data was spoken (for review and ``callqa redact``).
    """
    pii = config.pii
    if not pii.detect:
        return tuple(utterances), None
    spans = tuple(tuple(locate_pii(u, pii.chinese_digits)) for u in utterances)
    masked = tuple(mask_utterance(u, pii) for u in utterances) if pii.mask else tuple(utterances)
    return masked, spans


# -- evidence stages ---------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    """What the detectors, the scorecard and the classifier made of one call's evidence."""

    hits: tuple[Hit, ...]
    timing: TimingResult
    features: dict[str, Any]
    score: ScoreResult


def text_hits(evidence: CallEvidence, resources: Resources, call: Call | None = None) -> list[Hit]:
    """Lexicon rules and the red-line text model on the (already masked) utterances.

    With the call's audio and a Whisper transcriber, near misses are decoded again
    (``[text] second_look``, :mod:`pipeline.text.second_look`) and near readings of rule phrases are
    scored against the audio (``[text] sound_check``, :mod:`pipeline.text.sound_check`); without it
    (rescore) they are not.
    """
    if resources.matcher is None:
        return []
    config = resources.config
    hits = detect_phrases(evidence, resources.matcher, config.text)
    if resources.redline is not None:
        hits += score_utterances(evidence, resources.redline, config.classifier.redline_threshold,
                                 severity=config.classifier.redline_severity,
                                 min_chars=config.classifier.redline_min_chars,
                                 max_gap_s=config.text.turn_max_gap_s)
    if call is not None and isinstance(resources.transcriber, WhisperTranscriber):
        if config.text.second_look:
            hits += second_look(call, evidence, hits, resources.transcriber.model, resources.matcher,
                                resources.redline, config)[0]
        if config.text.second_look_model_hits:
            dropped, _looks = recheck_model_hits(call, evidence, hits, resources.transcriber.model,
                                                 resources.matcher, resources.redline, config)
            hits = [h for h in hits if h not in dropped]
        if config.text.sound_check:
            hits += sound_check(call, evidence, hits, resources.transcriber.model, resources.matcher, config)[0]
    return hits


def timing_of(evidence: CallEvidence, resources: Resources, tracks: Mapping[str, LoudnessTrack] | None,
              crosstalk: Sequence[SpeechSegment] | None = None) -> TimingResult:
    """Speech rate, silence, interruptions, latency, talk, raised voice and hang-up.

    ``crosstalk`` is what :func:`pipeline.asr.coverage.crosstalk_of` gives for ``evidence``
    (worked out here when None).
    """
    lists = resources.rules.lists
    if crosstalk is None:
        crosstalk = crosstalk_of(evidence.segments, resources.config.asr)
    return detect_timing(evidence, resources.config.timing, tracks, lists.get("hold_announcement", ()),
                         lists.get("backchannel", ()), crosstalk)


def timed_evidence(evidence: CallEvidence, resources: Resources,
                   tracks: Mapping[str, LoudnessTrack] | None) -> CallEvidence:
    """The speech :func:`timing_of` measures (no crosstalk, onsets repaired), for benchmarks."""
    return timing_evidence(evidence, resources.config.timing, tracks,
                           crosstalk_of(evidence.segments, resources.config.asr))


def analyse_evidence(evidence: CallEvidence, resources: Resources, call_facts: Mapping[str, Any], *,
                     tracks: Mapping[str, LoudnessTrack] | None = None, timing: TimingResult | None = None,
                     versions: Versions | None = None, call: Call | None = None,
                     audio_hits: Sequence[Hit] = ()) -> Analysis:
    """Text rules, red-line model, timing, features, scorecard and classifier for one call.

    Args:
        evidence: segments and (masked) utterances, from the audio or from the store.
        resources: from :meth:`Resources.load`.
        call_facts: facts of the ``calls`` row the features carry (call_date, agent_id, team, codec, ...).
        tracks: loudness tracks (raised voice at frame resolution); None from the store.
        timing: timing results to reuse instead of running the detectors (``rescore``
            keeps those measured on the audio).
        versions: the versions the feature row records (default ``resources.versions``;
            ``rescore`` keeps the stored call's speech model and configuration).
        call: the decoded call, for the second look at near misses (None from the store).
        audio_hits: hits the second look and the sound check found in the audio before (``rescore``
            keeps them, :func:`pipeline.rescore.audio_hits_kept`); one that a text hit of its rule now
            finds in the same words at the same time is left out (the transcript holds it now).
    """
    asr = resources.config.asr
    crosstalk = crosstalk_of(evidence.segments, asr)  # left out of the timing and of coverage alike
    timing = timing if timing is not None else timing_of(evidence, resources, tracks, crosstalk)
    found = text_hits(evidence, resources, call)
    kept = [a for a in audio_hits
            if not any(same_words(a, h) and h.start_s < a.end_s and a.start_s < h.end_s for h in found)]
    hits = tuple(sorted([*found, *kept, *timing.hits], key=lambda h: (h.start_s, h.rule_id)))
    versions = versions or resources.versions
    # coverage of the speech by text, when the call was transcribed (from the audio or the store alike)
    coverage = (coverage_columns(evidence, crosstalk, asr.coverage_word_margin_s, asr.gap_min_s,
                                 asr.coverage_snap_words)
                if versions.asr_model != NONE else None)
    row = build_features(evidence, hits, timing.features, call_facts, versions,
                         resources.config.features.low_confidence_word_probability, coverage=coverage)
    return score_features(row, hits, timing, resources)


def score_features(row: Mapping[str, Any], hits: Sequence[Hit], timing: TimingResult,
                   resources: Resources) -> Analysis:
    """The scorecard and the classifier on a feature row and its hits (``callqa score`` starts here)."""
    result = score_call(hits, row, resources.scorecard)
    scored = apply_model([with_score(row, result)], resources.classifier)[0]
    return Analysis(tuple(hits), timing, scored, result)


@dataclass(frozen=True)
class CallAnalysis:
    """Everything one call produced: its transcript (masked), where PII was spoken, and its analysis."""

    transcript: Transcript
    pii: tuple[tuple[PiiTime, ...], ...] | None
    evidence: CallEvidence
    analysis: Analysis


@dataclass(frozen=True)
class HeardCall:
    """A call after the audio stages and PII masking, ready for :func:`conclude_call` (no audio kept).

    Engines that transcribe in one place (a GPU actor) and analyse in another
    (CPU workers) pass this between the two halves of :func:`analyse_call`.
    """

    transcript: Transcript
    pii: tuple[tuple[PiiTime, ...], ...] | None
    evidence: CallEvidence
    facts: Mapping[str, Any]


def hear_call(call: Call, resources: Resources, call_facts: Mapping[str, Any],
              on_stage: Callable[[str], None] | None = None) -> HeardCall:
    """The first half of :func:`analyse_call`: VAD, onset repair, ASR, then PII found and masked."""
    report = on_stage or (lambda _stage: None)
    report("transcribe")
    transcript = transcribe_audio(call, resources)
    report("pii")
    utterances, pii = protect_pii(transcript.utterances, resources.config)
    transcript = replace(transcript, utterances=utterances)
    evidence = CallEvidence(call.call_id, call.duration_s, tuple(c.role for c in call.channels),
                            transcript.segments, utterances, call.metadata)
    facts = {**call_facts, "channels": [asdict(c) for c in transcript.channels]}
    return HeardCall(transcript, pii, evidence, facts)


def conclude_call(heard: HeardCall, resources: Resources,
                  on_stage: Callable[[str], None] | None = None, call: Call | None = None) -> CallAnalysis:
    """The second half of :func:`analyse_call`: text rules, red-line model, timing, features, score, classifier.

    ``call``: its audio, when this process still has it (the second look at near misses).
    """
    (on_stage or (lambda _stage: None))("detect")
    analysis = analyse_evidence(heard.evidence, resources, heard.facts, tracks=heard.transcript.tracks, call=call)
    return CallAnalysis(heard.transcript, heard.pii, heard.evidence, analysis)


def analyse_call(call: Call, resources: Resources, call_facts: Mapping[str, Any],
                 on_stage: Callable[[str], None] | None = None) -> CallAnalysis:
    """Every stage after decoding, for one call (see the module docstring for the order).

    Args:
        call: the decoded call.
        resources: from :meth:`Resources.load`.
        call_facts: the ``calls`` facts the feature row carries (call_date, agent_id, team, ...).
        on_stage: told the name of each stage as it starts (``transcribe``,
            ``pii``, ``detect``), so a failure can say where it happened.
    """
    return conclude_call(hear_call(call, resources, call_facts, on_stage), resources, on_stage, call)


__all__ = ["FROM_CONFIG", "Analysis", "CallAnalysis", "HeardCall", "ResourceSpec", "Resources", "Transcript",
           "analyse_call", "conclude_call", "hear_call",
           "analyse_evidence", "protect_pii", "score_features", "text_hits", "timing_of",
           "transcribe_audio"]
