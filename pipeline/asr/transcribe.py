"""Turn each channel's speech into role-tagged utterances on the call clock.

Each role's speech comes from its own channel (a mono call has one ``mixed``
role). Only the VAD speech segments are decoded: they are cut out of their
channel, laid end to end in the order they were spoken with a short pause
between them, and handed to Whisper, so Whisper never hears the call's
silences nor the other side's crosstalk. Every word is mapped back to the
piece it came from, which gives its role and its time on the call clock.

Whisper sits behind the small :class:`Transcriber` protocol; the real one is
:class:`WhisperTranscriber`. :func:`transcribe_call` adds what every
transcriber needs: conversion to Simplified Chinese and the hallucination
guard (:mod:`pipeline.asr.guard`) that marks utterances ``suspect`` (later detectors never raise a
red-line hit from a suspect utterance unless the config says so).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np

from pipeline.asr.guard import HallucinationLexicon, finalize_utterance, mark_repeats
from pipeline.asr.model import resolve_device, resolve_model
from pipeline.config import AsrConfig
from pipeline.errors import ModelError
from pipeline.records import SAMPLE_RATE_HZ, Call, SpeechSegment, Utterance, Word


class ChannelSpeech(NamedTuple):
    """One channel to transcribe: its role, its samples (float32, 16 kHz) and its VAD speech."""

    role: str
    samples: np.ndarray
    speech: Sequence[SpeechSegment]


class Transcriber(Protocol):
    """Anything that turns the speech of a call's channels into utterances.

    ``transcribe`` gets every channel that has speech to decode; it returns
    utterances with times on the call clock and each one's ``role`` set to the
    channel it came from. Text may be Traditional; :func:`transcribe_call`
    converts it and applies the hallucination guard.
    """

    model_id: str

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]: ...


@dataclass(frozen=True)
class _Piece:
    """One VAD segment (of one role) placed in the joined audio."""

    joined_start_s: float
    call_start_s: float
    call_end_s: float
    role: str = ""

    @property
    def joined_end_s(self) -> float:
        return self.joined_start_s + (self.call_end_s - self.call_start_s)


def _cut_spans(n_samples: int, speech: Sequence[SpeechSegment], pad_s: float) -> list[tuple[int, int]]:
    """Sample spans of the speech segments, each widened by ``pad_s``.

    A span never reaches past the middle of the gap to its neighbour: VAD
    edges clip soft onsets and final syllables Whisper needs.
    """
    ordered = sorted(speech, key=lambda s: s.start_s)
    spans = []
    for index, segment in enumerate(ordered):
        low = max(0.0, segment.start_s - pad_s)
        if index > 0:
            low = max(low, (ordered[index - 1].end_s + segment.start_s) / 2)
        high = segment.end_s + pad_s
        if index + 1 < len(ordered):
            high = min(high, (segment.end_s + ordered[index + 1].start_s) / 2)
        start = int(round(min(low, segment.start_s) * SAMPLE_RATE_HZ))
        end = min(n_samples, int(round(max(high, segment.end_s) * SAMPLE_RATE_HZ)))
        if end > start:
            spans.append((start, end))
    return spans


def join_channels(channels: Sequence[ChannelSpeech], pad_s: float,
                  pause_s: float) -> tuple[np.ndarray, list[_Piece]]:
    """Cut the speech out of each channel (widened by ``pad_s``) and join it all in call order.

    Pieces of all roles are laid end to end in the order they were spoken,
    with a ``pause_s`` pause between them, so Whisper hears the
    conversation without its silences and its 30 s windows are filled by
    both sides (fewer windows to encode than one stream per channel).

    Returns:
        The joined audio and where each piece (with its role) sits in it.
    """
    cuts = sorted(((start, role, end, samples) for role, samples, speech in channels
                   for start, end in _cut_spans(len(samples), speech, pad_s)), key=lambda c: (c[0], c[1]))
    pause = np.zeros(int(pause_s * SAMPLE_RATE_HZ), dtype=np.float32)
    parts: list[np.ndarray] = []
    pieces: list[_Piece] = []
    cursor = 0
    for start, role, end, samples in cuts:
        if parts:
            parts.append(pause)
            cursor += len(pause)
        pieces.append(_Piece(cursor / SAMPLE_RATE_HZ, start / SAMPLE_RATE_HZ, end / SAMPLE_RATE_HZ, role))
        parts.append(samples[start:end])
        cursor += end - start
    joined = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
    return joined, pieces


def windows(pieces: Sequence[_Piece], max_s: float) -> list[dict[str, float]]:
    """Group joined pieces into Whisper windows of at most ``max_s``, cut between pieces."""
    result: list[dict[str, float]] = []
    if not pieces:
        return result
    start, end = pieces[0].joined_start_s, pieces[0].joined_end_s
    for index, piece in enumerate(pieces):
        if index > 0:
            if piece.joined_end_s - start <= max_s:
                end = piece.joined_end_s
            else:
                result.append({"start": start, "end": end})
                start, end = piece.joined_start_s, piece.joined_end_s
        while end - start > max_s:  # one segment longer than a window
            result.append({"start": start, "end": start + max_s})
            start += max_s
    if end > start:
        result.append({"start": start, "end": end})
    return result


def _piece_index(pieces: Sequence[_Piece], joined_s: float, starts: Sequence[float]) -> int:
    index = max(0, bisect.bisect_right(starts, joined_s) - 1)
    # in the pause after a piece: belongs to the nearer of the two neighbours
    if index + 1 < len(pieces) and joined_s > pieces[index].joined_end_s:
        gap_mid = (pieces[index].joined_end_s + pieces[index + 1].joined_start_s) / 2
        if joined_s > gap_mid:
            index += 1
    return index


def _to_call_clock(piece: _Piece, joined_s: float) -> float:
    call_s = piece.call_start_s + (joined_s - piece.joined_start_s)
    return float(min(max(call_s, piece.call_start_s), piece.call_end_s))


def _utterances_from_segment(segment: Any, role: str, pieces: Sequence[_Piece]) -> list[Utterance]:
    """Split one Whisper segment at speech-segment boundaries and map it to the call clock."""
    logprob, no_speech = float(segment.avg_logprob), float(segment.no_speech_prob)
    ratio = float(segment.compression_ratio)
    starts = [p.joined_start_s for p in pieces]
    if not segment.words:
        first = pieces[_piece_index(pieces, float(segment.start), starts)]
        last = pieces[_piece_index(pieces, max(float(segment.start), float(segment.end) - 1e-3), starts)]
        start_s = _to_call_clock(first, float(segment.start))
        end_s = max(start_s, _to_call_clock(last, float(segment.end)))
        return [Utterance(first.role or role, start_s, end_s, segment.text.strip(), (), logprob, no_speech,
                          ratio)]
    groups: list[tuple[int, list[Word]]] = []
    for word in segment.words:
        start, end = float(word.start), float(word.end)
        index = _piece_index(pieces, (start + end) / 2, starts)
        piece = pieces[index]
        call_start = _to_call_clock(piece, start)
        mapped = Word(word.word, call_start, max(call_start, _to_call_clock(piece, end)),
                      float(min(1.0, max(0.0, word.probability))))
        if groups and groups[-1][0] == index:
            groups[-1][1].append(mapped)
        else:
            groups.append((index, [mapped]))
    utterances = []
    for index, words in groups:
        text = "".join(w.text for w in words).strip()
        words_clean = tuple(replace(w, text=w.text.strip()) for w in words if w.text.strip())
        if text and words_clean:
            end_s = max(w.end_s for w in words_clean)
            utterances.append(Utterance(pieces[index].role or role, words_clean[0].start_s, end_s,
                                        text, words_clean, logprob, no_speech, ratio))
    return utterances


class WhisperTranscriber:
    """A :class:`Transcriber` over ``faster_whisper.WhisperModel``; build once per worker.

    Args:
        model: a loaded WhisperModel.
        asr: the ``[asr]`` config section (language, prompt, beam, batching...).
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
            model = WhisperModel(str(resolved.path), device=device, compute_type=compute_type,
                                 cpu_threads=0 if asr.cpu_threads == "auto" else asr.cpu_threads,
                                 local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(str(resolved.path), f"cannot load on {device}/{compute_type}: {exc}") from None
        return cls(model, asr, resolved.model_id)

    def _options(self) -> dict[str, Any]:
        return {
            "language": None if self.asr.language == "auto" else self.asr.language,
            "initial_prompt": self.asr.initial_prompt or None,
            "beam_size": self.asr.beam_size,
            "word_timestamps": self.asr.word_timestamps,
        }

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        """Decode the speech of the channels in one pass; each utterance keeps its channel's role.

        Every piece of speech comes from exactly one channel and each word is
        mapped back to the piece it lies in, so roles stay exact while the
        Whisper windows are shared (see :func:`join_channels`).
        """
        joined, pieces = join_channels(channels, self.asr.cut_pad_s, self.asr.join_pause_s)
        if not pieces:
            return []
        role = channels[0].role if len(channels) == 1 else ""
        if self._batched is None:
            segments, _info = self.model.transcribe(
                joined, vad_filter=False, condition_on_previous_text=False, **self._options())
            # a lazy generator: decoding happens here
            return [u for segment in segments for u in _utterances_from_segment(segment, role, pieces)]
        kept, missed = self._batched_pass(joined, pieces)
        utterances = [u for segment in kept for u in _utterances_from_segment(segment, role, pieces)]
        if missed:
            # Second and last pass over what the first looped on or skipped, in fresh windows.
            again_audio, again_pieces = _rejoin(joined, [pieces[i] for i in missed], self.asr.join_pause_s)
            kept, _missed = self._batched_pass(again_audio, again_pieces)
            utterances += [u for segment in kept for u in _utterances_from_segment(segment, role, again_pieces)]
        return sorted(utterances, key=lambda u: (u.start_s, u.role))

    def _batched_pass(self, joined: np.ndarray, pieces: Sequence[_Piece]) -> tuple[list[Any], list[int]]:
        """One batched pass: (segments to keep, indices of pieces to decode again).

        Batched decoding makes one pass per 30 s window at temperature 0, with
        no fallback and no seeking: a window that comes out repetitive ("今天
        今天 今天 ...", compression ratio above the guard's limit) loses all its
        speech, and a window where Whisper stops early loses the pieces after
        that point. Those pieces (at least ``[asr] redecode_min_s`` long) are returned
        for a second pass in new windows. Timestamp tokens stay on: without
        them Whisper writes one run-on text per window and drops sentences.
        """
        spans = windows(pieces, self.asr.window_s)
        segments, _info = self._batched.transcribe(
            joined, clip_timestamps=spans, batch_size=self.asr.batch_size, without_timestamps=False,
            **self._options())
        segments = list(segments)
        limit = self.asr.guard.compression_ratio_max

        def window_of(start_s: float, end_s: float) -> int:
            middle = (start_s + end_s) / 2
            return next((i for i, w in enumerate(spans) if w["start"] <= middle <= w["end"]), -1)

        looping = {window_of(float(s.start), float(s.end)) for s in segments
                   if float(s.compression_ratio) > limit}
        looping.discard(-1)
        kept = [s for s in segments if window_of(float(s.start), float(s.end)) not in looping]
        covered = set()
        starts = [p.joined_start_s for p in pieces]
        for segment in kept:
            stamps = [(float(w.start) + float(w.end)) / 2 for w in segment.words or []]
            for stamp in stamps or [float(segment.start), float(segment.end)]:
                covered.add(_piece_index(pieces, stamp, starts))
        missed = [index for index, p in enumerate(pieces)
                  if index not in covered and p.call_end_s - p.call_start_s >= self.asr.redecode_min_s]
        return kept, missed


def _rejoin(joined: np.ndarray, pieces: Sequence[_Piece], pause_s: float) -> tuple[np.ndarray, list[_Piece]]:
    """Lay the given pieces of ``joined`` end to end again (for a second decoding pass)."""
    pause = np.zeros(int(pause_s * SAMPLE_RATE_HZ), dtype=np.float32)
    parts: list[np.ndarray] = []
    placed: list[_Piece] = []
    cursor = 0
    for piece in pieces:
        if parts:
            parts.append(pause)
            cursor += len(pause)
        start = int(round(piece.joined_start_s * SAMPLE_RATE_HZ))
        length = int(round((piece.call_end_s - piece.call_start_s) * SAMPLE_RATE_HZ))
        placed.append(replace(piece, joined_start_s=cursor / SAMPLE_RATE_HZ))
        parts.append(joined[start:start + length])
        cursor += length
    return np.concatenate(parts), placed


def transcribe_call(call: Call, segments: Sequence[SpeechSegment], transcriber: Transcriber,
                    asr_config: AsrConfig, lexicon: HallucinationLexicon) -> list[Utterance]:
    """Transcribe every channel of ``call``, decoding only its VAD speech.

    Args:
        call: the decoded call (one channel per role).
        segments: VAD speech segments of all channels (``pipeline.audio.vad.detect_speech``).
        transcriber: built once per worker, e.g. ``WhisperTranscriber.from_config``.
        asr_config: the ``[asr]`` section (simplification, crosstalk and guard settings).
        lexicon: the known-hallucination lexicon (``[asr.guard] hallucination_lexicon``).

    Returns:
        Utterances of all roles in call-clock order, text in Simplified Chinese
        when configured, suspect ones marked with a reason. A channel without
        speech gives none (Whisper is not run on it); speech that is only the
        other channel's crosstalk is not decoded (:func:`drop_crosstalk`).
    """
    to_decode = (drop_crosstalk(segments, asr_config.crosstalk_margin_db, asr_config.crosstalk_covered_share)
                 if asr_config.drop_crosstalk else list(segments))
    work = [ChannelSpeech(channel.role, channel.samples, speech) for channel in call.channels
            if (speech := sorted((s for s in to_decode if s.role == channel.role), key=lambda s: s.start_s))]
    raw = transcriber.transcribe(work) if work else []
    utterances: list[Utterance] = []
    for channel in work:
        finals = []
        for utterance in raw:
            if utterance.role == channel.role:
                final = finalize_utterance(utterance, channel.speech, asr_config, lexicon)
                if final is not None:
                    finals.append(final)
        utterances.extend(mark_repeats(sorted(finals, key=lambda u: (u.start_s, u.end_s)), asr_config.guard))
    return sorted(utterances, key=lambda u: (u.start_s, u.end_s, u.role))


def drop_crosstalk(segments: Sequence[SpeechSegment], margin_db: float, covered_share: float) -> list[SpeechSegment]:
    """Leave out speech that is only the other channel leaking into this one.

    On a stereo call the agent's voice often bleeds faintly into the customer
    channel (and back). VAD calls that speech too; decoding it would cost time
    and put the agent's words in the customer's mouth. A segment is dropped
    when at least ``covered_share`` of it lies inside segments of another role
    that are at least ``margin_db`` louder. Real double-talk has similar levels
    on both channels and is kept.
    """
    kept = []
    for segment in segments:
        louder = [o for o in segments if o.role != segment.role
                  and o.loudness_dbfs - segment.loudness_dbfs >= margin_db]
        covered = sum(max(0.0, min(o.end_s, segment.end_s) - max(o.start_s, segment.start_s)) for o in louder)
        if segment.duration_s <= 0 or covered / segment.duration_s < covered_share:
            kept.append(segment)
    return kept
