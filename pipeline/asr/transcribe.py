"""Turn each channel's speech into role-tagged utterances on the call clock, and account for the rest.

Each role's speech comes from its own channel (a mono call has one ``mixed``
role). Only the VAD speech is decoded: it is cut out of its channel, levelled
and joined in call order (:mod:`pipeline.asr.pieces`), so Whisper never hears
the call's silences nor the other side's crosstalk, and both sides share its
30 s windows. Every word is mapped back to the piece it came from, which gives
its role and its time on the call clock.

Whisper sits behind the small :class:`Transcriber` protocol; the real one is
:class:`WhisperTranscriber`. :func:`transcribe_speech` adds what every
transcriber needs: conversion to Simplified Chinese, the hallucination guard
(:mod:`pipeline.asr.guard`), re-decoding of the speech that got no trusted
text (:mod:`pipeline.asr.redecode`, for transcribers that can) and the gaps
that remain, each with its reason (:mod:`pipeline.asr.coverage`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from pipeline.asr.coverage import DecodeNote, Gap, crosstalk_of, drop_crosstalk, find_gaps
from pipeline.asr.guard import HallucinationLexicon, finalize_utterance, mark_repeats
from pipeline.asr.loops import clean_and_map
from pipeline.asr.model import resolve_device, resolve_model, seed_sampling
from pipeline.asr.pieces import ChannelSpeech, DecodedSegment, join_channels, piece_level, window_of, windows
from pipeline.asr.redecode import RedecodeRequest, merge_redecoded, plan_requests, redecode_with_whisper
from pipeline.config import AsrConfig
from pipeline.errors import ModelError
from pipeline.records import Call, SpeechSegment, Utterance


class Transcriber(Protocol):
    """Anything that turns the speech of a call's channels into utterances.

    ``transcribe`` gets every channel that has speech to decode; it returns
    utterances with times on the call clock and each one's ``role`` set to the
    channel it came from. Text may be Traditional; :func:`transcribe_speech`
    converts it and applies the hallucination guard.
    """

    model_id: str

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]: ...


@dataclass(frozen=True)
class Decoding:
    """What one decoding pass gave: utterances, notes on speech it could not decode, and its costs."""

    utterances: tuple[Utterance, ...]
    notes: tuple[DecodeNote, ...] = ()
    stats: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class RedecodingTranscriber(Protocol):
    """A :class:`Transcriber` that reports what it could not decode and can decode stretches again."""

    model_id: str

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]: ...

    def decode(self, channels: Sequence[ChannelSpeech]) -> Decoding: ...

    def redecode(self, requests: Sequence[RedecodeRequest], attempt: int) -> Decoding: ...


class WhisperTranscriber:
    """A :class:`RedecodingTranscriber` over ``faster_whisper.WhisperModel``; build once per worker.

    Args:
        model: a loaded WhisperModel.
        asr: the ``[asr]`` config section (language, prompt, beam, batching, re-decoding...).
        model_id: stable id of the model, stored with every result.
    """

    def __init__(self, model: Any, asr: AsrConfig, model_id: str) -> None:
        self.model = model
        self.asr = asr
        self.model_id = model_id
        self._batched: Any = None
        if asr.batched:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(model)

    @classmethod
    def from_config(cls, asr: AsrConfig) -> WhisperTranscriber:
        """Resolve ``asr.model``, load it on ``asr.device`` and wrap it.

        Raises:
            ModelError: the model is missing, corrupt or cannot be loaded.
        """
        from faster_whisper import WhisperModel

        resolved = resolve_model(asr.model)
        device, compute_type = resolve_device(asr)
        try:
            seed_sampling()  # the model's worker threads take this seed when they first sample
            model = WhisperModel(str(resolved.path), device=device, compute_type=compute_type,
                                 cpu_threads=0 if asr.cpu_threads == "auto" else asr.cpu_threads,
                                 local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(str(resolved.path), f"cannot load on {device}/{compute_type}: {exc}") from None
        return cls(model, asr, resolved.model_id)

    def options(self) -> dict[str, Any]:
        """The decoding options of the first pass."""
        return {
            "language": None if self.asr.language == "auto" else self.asr.language,
            "initial_prompt": self.asr.initial_prompt or None,
            "beam_size": self.asr.beam_size,
            "word_timestamps": self.asr.word_timestamps,
            "no_repeat_ngram_size": self.asr.no_repeat_ngram_size,
        }

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        """The utterances of :meth:`decode`."""
        return list(self.decode(channels).utterances)

    def decode(self, channels: Sequence[ChannelSpeech]) -> Decoding:
        """Decode the speech of the channels in one pass; each utterance keeps its channel's role.

        Every piece of speech comes from exactly one channel and each word is
        mapped back to the piece it lies in, so roles stay exact while the
        Whisper windows are shared (see :func:`join_channels`). Loops are cut to
        their first occurrence (:func:`pipeline.asr.loops.cut_loops`) and
        reported as notes, as are windows whose text stays repetitive.
        """
        started = time.perf_counter()
        asr = self.asr
        joined, pieces = join_channels(channels, asr.cut_pad_s, asr.join_pause_s, piece_level(asr),
                                       asr.piece_max_gain_db)
        if not pieces:
            return Decoding(())
        spans = windows(pieces, asr.window_s)
        if self._batched is None:  # sequential decoding may fall back to sampling (pipeline.asr.model)
            seed_sampling()
            raw, _info = self.model.transcribe(joined, vad_filter=False, condition_on_previous_text=False,
                                               **self.options())
        else:
            raw, _info = self._batched.transcribe(joined, clip_timestamps=spans, batch_size=asr.batch_size,
                                                  without_timestamps=False, **self.options())
        decoded = [DecodedSegment.of(s, window_of(spans, float(s.start), float(s.end))) for s in raw]
        role = channels[0].role if len(channels) == 1 else ""
        utterances, notes = clean_and_map(decoded, pieces, role, asr)
        return Decoding(tuple(sorted(utterances, key=lambda u: (u.start_s, u.role))), tuple(notes),
                        {"first_pass_s": time.perf_counter() - started, "windows": float(len(spans)),
                         "decoded_audio_s": len(joined) / 16_000})

    def redecode(self, requests: Sequence[RedecodeRequest], attempt: int) -> Decoding:
        """Decode the stretches again with ``[asr] redecode_passes[attempt]`` (see :mod:`pipeline.asr.redecode`)."""
        started = time.perf_counter()
        utterances, notes = redecode_with_whisper(self.model, self._batched, requests, self.asr,
                                                  self.asr.redecode_passes[attempt], self.options())
        return Decoding(tuple(utterances), tuple(notes), {f"redecode_{attempt}_s": time.perf_counter() - started,
                                                          f"redecode_{attempt}_stretches": float(len(requests))})


@dataclass(frozen=True)
class Transcription:
    """The transcript of a call's speech and what it could not account for.

    Attributes:
        utterances: every role's utterances in call-clock order (suspect ones marked).
        gaps: speech without trusted text, with reasons (:class:`pipeline.asr.coverage.Gap`).
        crosstalk: the VAD segments left out as the other side's voice.
        stats: what the transcriber spent (seconds per pass, windows, stretches re-decoded).
    """

    utterances: tuple[Utterance, ...]
    gaps: tuple[Gap, ...] = ()
    crosstalk: tuple[SpeechSegment, ...] = ()
    stats: Mapping[str, float] = field(default_factory=dict)


def transcribe_speech(call: Call, segments: Sequence[SpeechSegment], transcriber: Transcriber,
                      asr_config: AsrConfig, lexicon: HallucinationLexicon) -> Transcription:
    """Transcribe every channel of ``call``, decoding only its VAD speech, and find what has no text.

    Args:
        call: the decoded call (one channel per role).
        segments: VAD speech segments of all channels (``pipeline.audio.vad.detect_speech``).
        transcriber: built once per worker, e.g. ``WhisperTranscriber.from_config``.
        asr_config: the ``[asr]`` section (simplification, crosstalk, guard, re-decoding, coverage).
        lexicon: the known-hallucination lexicon (``[asr.guard] hallucination_lexicon``).

    Returns:
        Utterances of all roles in call-clock order, text in Simplified Chinese
        when configured, suspect ones marked with a reason; and the gaps. A
        channel without speech gives none (Whisper is not run on it); speech
        that is only the other channel's crosstalk is not decoded
        (:func:`drop_crosstalk`) and becomes a ``crosstalk`` gap. Speech left
        without trusted text is decoded again on its own (transcribers that
        can, by each of ``[asr] redecode_passes``) before it becomes a gap.
    """
    crosstalk = crosstalk_of(segments, asr_config)
    left_out = set(map(id, crosstalk))
    to_decode = [s for s in segments if id(s) not in left_out]
    work = [ChannelSpeech(channel.role, channel.samples, speech) for channel in call.channels
            if (speech := sorted((s for s in to_decode if s.role == channel.role), key=lambda s: s.start_s))]
    if not work:
        gaps = find_gaps(tuple(c.role for c in call.channels), segments, crosstalk, (), (),
                         asr_config.coverage_word_margin_s, asr_config.gap_min_s)
        return Transcription((), tuple(gaps), crosstalk)
    rich = isinstance(transcriber, RedecodingTranscriber)
    first = transcriber.decode(work) if rich else Decoding(tuple(transcriber.transcribe(work)))
    notes = list(first.notes)
    stats = dict(first.stats)
    utterances = _guarded(first.utterances, work, asr_config, lexicon)
    if rich and asr_config.redecode:
        passes = range(len(asr_config.redecode_passes))
        utterances, notes = _redecoded(transcriber, work, work, passes, utterances, notes, stats, asr_config, lexicon)
    utterances = _with_repeats(utterances, asr_config)
    gaps = find_gaps(tuple(c.role for c in call.channels), segments, crosstalk, utterances, notes,
                     asr_config.coverage_word_margin_s, asr_config.gap_min_s, asr_config.coverage_snap_words)
    return Transcription(tuple(utterances), tuple(gaps), crosstalk, stats)


def _redecoded(transcriber: RedecodingTranscriber, plan: Sequence[ChannelSpeech], work: Sequence[ChannelSpeech],
               passes: Sequence[int], utterances: list[Utterance], notes: list[DecodeNote], stats: dict[str, float],
               asr_config: AsrConfig, lexicon: HallucinationLexicon, key: str = "redecode"
               ) -> tuple[list[Utterance], list[DecodeNote]]:
    """Decode the stretches of ``plan``'s speech without trusted text again, by each of ``passes`` (indices of
    ``[asr] redecode_passes``) until they have text; ``work`` holds the speech the guard checks text against.

    Adds ``{key}_{attempt}_asked_s`` and ``_recovered_s`` (seconds of speech asked about, given text) to ``stats``.
    """
    requests = plan_requests(plan, _with_repeats(utterances, asr_config), asr_config)
    for attempt in passes:
        if not requests:
            break
        again = transcriber.redecode(requests, attempt)
        stats.update({k.replace("redecode", key, 1): v for k, v in again.stats.items()})
        fresh = _guarded(again.utterances, work, asr_config, lexicon, redecoded=True)
        utterances, rejected = merge_redecoded(utterances, fresh, requests, asr_config.coverage_word_margin_s)
        notes = [*_outside(notes, requests), *again.notes, *rejected]
        left = plan_requests(plan, _with_repeats(utterances, asr_config), asr_config)  # the next pass's stretches
        asked_s = sum(r.end_s - r.start_s for r in requests)
        stats[f"{key}_{attempt}_asked_s"] = asked_s
        stats[f"{key}_{attempt}_recovered_s"] = asked_s - sum(r.end_s - r.start_s for r in left)
        requests = left
    return utterances, notes


def decode_unheard(call: Call, segments: Sequence[SpeechSegment], transcription: Transcription,
                   unheard: Sequence[Gap], transcriber: Transcriber, asr_config: AsrConfig,
                   lexicon: HallucinationLexicon) -> Transcription:
    """Decode sound that VAD did not hear as speech (``vad_missed`` stretches), keeping only trusted text.

    Silero does not hear every voice: a far-field speaker on a noisy line can
    be as loud as the speaker's other speech and still not be VAD speech. Each
    stretch in ``unheard`` (the ``vad_missed`` gaps of :func:`pipeline.asr.coverage.sound_gaps`)
    is decoded like speech the first pass left without text, by the
    temperature-0 passes of ``[asr] redecode_passes`` only (sampling on sound
    that may be music or a television invites made-up text), and its text goes
    through the same guard with the stricter no-speech limit of re-decoded
    text. The VAD segments, and so every timing detector, are unchanged; what
    gets no trusted text stays a ``vad_missed`` gap.

    Returns:
        ``transcription`` with the recovered utterances added, its speech gaps found again on them
        (and ``unheard_*`` stats); itself when the transcriber cannot re-decode or nothing is unheard.
    """
    if not unheard or not isinstance(transcriber, RedecodingTranscriber):
        return transcription
    plan, work = [], []
    for channel in call.channels:
        stretches = [SpeechSegment(g.role, g.start_s, g.end_s, 0.0) for g in unheard if g.role == channel.role]
        if stretches:
            speech = [s for s in segments if s.role == channel.role]
            plan.append(ChannelSpeech(channel.role, channel.samples, stretches))
            work.append(ChannelSpeech(channel.role, channel.samples, sorted([*speech, *stretches],
                                                                             key=lambda s: s.start_s)))
    passes = [i for i, how in enumerate(asr_config.redecode_passes) if how != "alone_with_fallback"]
    stats = dict(transcription.stats)  # what could not be decoded stays a vad_missed gap: its notes are not needed
    utterances, _ = _redecoded(transcriber, plan, work, passes, list(transcription.utterances), [], stats,
                               asr_config, lexicon, key="unheard")
    utterances = _with_repeats(utterances, asr_config)
    # The new text changes what the speech gaps are: a word heard just past a VAD segment's end is the
    # segment's last word, and the word before it no longer reaches out to the edge. Found again on
    # the final text (a stored gap 0.38 s short of the speech it stood for), with the reasons known.
    known = [DecodeNote(g.role, g.start_s, g.end_s, g.reason, g.detail) for g in transcription.gaps
             if g.reason not in ("crosstalk", "hallucination")]
    gaps = find_gaps(tuple(c.role for c in call.channels), segments, transcription.crosstalk, utterances, known,
                     asr_config.coverage_word_margin_s, asr_config.gap_min_s, asr_config.coverage_snap_words)
    return replace(transcription, utterances=tuple(utterances), gaps=tuple(gaps), stats=stats)


def _outside(notes: Sequence[DecodeNote], requests: Sequence[RedecodeRequest]) -> list[DecodeNote]:
    """The notes about speech that was not just decoded again (those are replaced by the new attempt's)."""
    def redone(n: DecodeNote) -> bool:
        return any(r.role == n.role and r.start_s <= (n.start_s + n.end_s) / 2 <= r.end_s for r in requests)

    return [n for n in notes if not redone(n)]


def _guarded(raw: Sequence[Utterance], work: Sequence[ChannelSpeech], asr_config: AsrConfig,
             lexicon: HallucinationLexicon, redecoded: bool = False) -> list[Utterance]:
    """Simplify each utterance and apply the guard against its own channel's speech."""
    speech = {channel.role: channel.speech for channel in work}
    finals = [finalize_utterance(u, speech[u.role], asr_config, lexicon, redecoded) for u in raw if u.role in speech]
    return sorted((u for u in finals if u is not None), key=lambda u: (u.start_s, u.end_s, u.role))


def _with_repeats(utterances: Sequence[Utterance], asr_config: AsrConfig) -> list[Utterance]:
    """Mark runs of identical utterances on each channel as suspect (:func:`mark_repeats`)."""
    result: list[Utterance] = []
    for role in dict.fromkeys(u.role for u in utterances):
        result += mark_repeats([u for u in utterances if u.role == role], asr_config.guard)
    return sorted(result, key=lambda u: (u.start_s, u.end_s, u.role))


def transcribe_call(call: Call, segments: Sequence[SpeechSegment], transcriber: Transcriber,
                    asr_config: AsrConfig, lexicon: HallucinationLexicon) -> list[Utterance]:
    """The utterances of :func:`transcribe_speech`."""
    return list(transcribe_speech(call, segments, transcriber, asr_config, lexicon).utterances)


def describe_passes(stats: Mapping[str, float], redecode_passes: Sequence[str]) -> list[str]:
    """Where the decoding time went, from a transcription's ``stats``: the first pass, then each
    re-decoding pass, of speech without text and of sound VAD missed (:func:`decode_unheard`), with the
    seconds it was asked about and gave text to."""
    parts = [f"first pass {stats.get('first_pass_s', 0.0):.1f} s ({stats.get('windows', 0):.0f} windows, "
             f"{stats.get('decoded_audio_s', 0.0):.0f} s of audio)"]
    for key, what, of in (("redecode", "re-decode", "speech"), ("unheard", "decode sound VAD missed", "sound")):
        for attempt, how in enumerate(redecode_passes):
            if f"{key}_{attempt}_s" in stats:
                parts.append(f"{what} {how} {stats[f'{key}_{attempt}_s']:.1f} s "
                             f"({stats[f'{key}_{attempt}_stretches']:.0f} stretches, "
                             f"{stats.get(f'{key}_{attempt}_recovered_s', 0.0):.1f} of "
                             f"{stats.get(f'{key}_{attempt}_asked_s', 0.0):.1f} s of {of} given text)")
    return parts


__all__ = ["ChannelSpeech", "Decoding", "RedecodingTranscriber", "Transcriber", "Transcription",
           "WhisperTranscriber", "clean_and_map", "decode_unheard", "describe_passes", "drop_crosstalk",
           "join_channels", "transcribe_call", "transcribe_speech", "windows"]
