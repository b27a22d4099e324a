"""The audio Whisper hears: VAD speech cut out of each channel, levelled, joined in call order.

Each role's VAD speech (overlapping segments merged) is cut out of its own
channel with ``[asr] cut_pad_s`` of audio on each side (never past the middle
of the gap to the next speech: VAD edges clip soft onsets), brought to one
speech level (``[asr] piece_level_dbfs``: Whisper treats speech much quieter
than what it just heard as background and skips it, and telephone channels
differ by 20 dB), and the pieces of all roles are laid end to end in the order
they were spoken with ``[asr] join_pause_s`` of silence between them.

Every word Whisper returns is mapped back to the piece it lies in, which gives
its role and its time on the call clock; a word's time is kept inside the
piece's speech (the padding and the pauses are not speech, and a first word
placed in them would start an utterance before anyone spoke).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from pipeline.records import SAMPLE_RATE_HZ, SpeechSegment, Utterance, Word

Span = tuple[float, float]


class ChannelSpeech(NamedTuple):
    """One channel to transcribe: its role, its samples (float32, 16 kHz) and its VAD speech."""

    role: str
    samples: np.ndarray
    speech: Sequence[SpeechSegment]


@dataclass(frozen=True)
class Piece:
    """One stretch of one role's speech placed in the joined audio.

    ``call_start_s``..``call_end_s`` is the audio cut (speech plus padding);
    ``speech_start_s``..``speech_end_s`` the speech inside it (the VAD's).
    """

    joined_start_s: float
    call_start_s: float
    call_end_s: float
    role: str = ""
    speech_start_s: float = -1.0
    speech_end_s: float = -1.0

    def __post_init__(self) -> None:
        if self.speech_start_s < 0:
            object.__setattr__(self, "speech_start_s", self.call_start_s)
        if self.speech_end_s < 0:
            object.__setattr__(self, "speech_end_s", self.call_end_s)

    @property
    def joined_end_s(self) -> float:
        return self.joined_start_s + (self.call_end_s - self.call_start_s)


@dataclass(frozen=True)
class DecodedWord:
    """A word as Whisper returned it: text, times in the decoded audio, probability."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class DecodedSegment:
    """One Whisper segment, in plain floats (faster-whisper returns numpy scalars)."""

    text: str
    start: float
    end: float
    words: tuple[DecodedWord, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    window: int = -1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, segment: Any, window: int = -1) -> DecodedSegment:
        """From a faster-whisper ``Segment`` (or anything with its fields)."""
        words = tuple(DecodedWord(str(w.word), float(w.start), float(w.end),
                                  float(min(1.0, max(0.0, w.probability)))) for w in segment.words or ())
        return cls(str(segment.text), float(segment.start), float(segment.end), words,
                   float(segment.avg_logprob), float(segment.no_speech_prob), float(segment.compression_ratio),
                   window)

    def shifted(self, offset_s: float) -> DecodedSegment:
        """The segment and its words moved by ``offset_s`` (a window decoded on its own, placed in the joined audio)."""
        words = tuple(replace(w, start=w.start + offset_s, end=w.end + offset_s) for w in self.words)
        return replace(self, start=self.start + offset_s, end=self.end + offset_s, words=words)


def merged_speech(speech: Sequence[SpeechSegment]) -> list[Span]:
    """A role's speech as disjoint spans: overlapping segments become one (they would be decoded twice)."""
    merged: list[list[float]] = []
    for segment in sorted(speech, key=lambda s: s.start_s):
        if merged and segment.start_s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], segment.end_s)
        else:
            merged.append([segment.start_s, segment.end_s])
    return [(a, b) for a, b in merged if b > a]


def cut_spans(duration_s: float, speech: Sequence[Span], pad_s: float) -> list[Span]:
    """Each speech span widened by ``pad_s``, never past the middle of the gap to a neighbour."""
    spans = []
    for index, (start_s, end_s) in enumerate(speech):
        low = max(0.0, start_s - pad_s)
        if index > 0:
            low = max(low, (speech[index - 1][1] + start_s) / 2)
        high = min(duration_s, end_s + pad_s)
        if index + 1 < len(speech):
            high = min(high, (end_s + speech[index + 1][0]) / 2)
        spans.append((min(low, start_s), max(high, min(end_s, duration_s))))
    return spans


def piece_level(asr: Any) -> float | None:
    """``[asr] piece_level_dbfs`` as a number, None when ``"off"``."""
    return None if asr.piece_level_dbfs == "off" else float(asr.piece_level_dbfs)


def level_gain(samples: np.ndarray, level_dbfs: float | None, max_gain_db: float) -> float:
    """Gain that brings ``samples`` to ``level_dbfs`` RMS (at most ``max_gain_db``, never clipping)."""
    if level_dbfs is None or not len(samples):
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    peak = float(np.max(np.abs(samples)))
    if rms <= 0 or peak <= 0:
        return 1.0
    return float(min(10 ** ((level_dbfs - 20 * np.log10(rms)) / 20), 10 ** (max_gain_db / 20), 0.99 / peak))


class Cut(NamedTuple):
    """Audio of one channel to decode: ``low_s..high_s`` (call clock) around the speech ``start_s..end_s``."""

    role: str
    samples: np.ndarray
    low_s: float
    high_s: float
    start_s: float
    end_s: float


def join_cuts(cuts: Sequence[Cut], pause_s: float, level_dbfs: float | None,
              max_gain_db: float) -> tuple[np.ndarray, list[Piece], list[int]]:
    """Lay the cuts end to end in the given order, ``pause_s`` of silence between them.

    Each cut is brought to ``level_dbfs`` by its speech (:func:`level_gain`).
    Returns the joined audio, where each piece sits in it, and the index of the
    cut behind each piece (an empty cut gives no piece).
    """
    pause = np.zeros(int(round(pause_s * SAMPLE_RATE_HZ)), dtype=np.float32)
    parts: list[np.ndarray] = []
    pieces: list[Piece] = []
    owners: list[int] = []
    cursor = 0
    for index, cut in enumerate(cuts):
        first = int(round(cut.low_s * SAMPLE_RATE_HZ))
        last = min(len(cut.samples), int(round(cut.high_s * SAMPLE_RATE_HZ)))
        if last <= first:
            continue
        if parts:
            parts.append(pause)
            cursor += len(pause)
        audio = cut.samples[first:last]
        speech = cut.samples[int(round(cut.start_s * SAMPLE_RATE_HZ)):int(round(cut.end_s * SAMPLE_RATE_HZ))]
        gain = level_gain(speech, level_dbfs, max_gain_db)
        pieces.append(Piece(cursor / SAMPLE_RATE_HZ, first / SAMPLE_RATE_HZ, last / SAMPLE_RATE_HZ, cut.role,
                            cut.start_s, min(cut.end_s, last / SAMPLE_RATE_HZ)))
        owners.append(index)
        parts.append(audio * np.float32(gain) if gain != 1.0 else audio)
        cursor += last - first
    joined = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
    return joined, pieces, owners


def join_channels(channels: Sequence[ChannelSpeech], pad_s: float, pause_s: float,
                  level_dbfs: float | None = None, max_gain_db: float = 0.0) -> tuple[np.ndarray, list[Piece]]:
    """Cut the speech out of each channel (widened by ``pad_s``) and join it all in call order.

    Pieces of all roles are laid end to end in the order they were spoken,
    with a ``pause_s`` pause between them, so Whisper hears the conversation
    without its silences and its 30 s windows are filled by both sides.

    Args:
        channels: the channels and their VAD speech.
        pad_s: ``[asr] cut_pad_s``.
        pause_s: ``[asr] join_pause_s``.
        level_dbfs: speech level every piece is brought to (None: as recorded).
        max_gain_db: the most a piece is amplified.

    Returns:
        The joined audio and where each piece (with its role) sits in it.
    """
    cuts = []
    for role, samples, speech in channels:
        spans = merged_speech(speech)
        for (low, high), (start_s, end_s) in zip(cut_spans(len(samples) / SAMPLE_RATE_HZ, spans, pad_s), spans,
                                                 strict=True):
            cuts.append(Cut(role, samples, low, high, start_s, end_s))
    cuts.sort(key=lambda c: (c.low_s, c.role))
    joined, pieces, _ = join_cuts(cuts, pause_s, level_dbfs, max_gain_db)
    return joined, pieces


def windows(pieces: Sequence[Piece], max_s: float) -> list[dict[str, float]]:
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
        while end - start > max_s:  # one piece longer than a window
            result.append({"start": start, "end": start + max_s})
            start += max_s
    if end > start:
        result.append({"start": start, "end": end})
    return result


def window_of(spans: Sequence[dict[str, float]], start: float, end: float) -> int:
    """Index of the window of ``spans`` holding the middle of ``start``..``end`` (-1: none)."""
    middle = (start + end) / 2
    return next((i for i, w in enumerate(spans) if w["start"] <= middle <= w["end"]), -1)


def piece_index(pieces: Sequence[Piece], joined_s: float, starts: Sequence[float]) -> int:
    """The piece a joined-audio time belongs to (in a pause: the nearer neighbour)."""
    index = max(0, bisect.bisect_right(starts, joined_s) - 1)
    if index + 1 < len(pieces) and joined_s > pieces[index].joined_end_s:
        gap_mid = (pieces[index].joined_end_s + pieces[index + 1].joined_start_s) / 2
        if joined_s > gap_mid:
            index += 1
    return index


def to_call_clock(piece: Piece, joined_s: float) -> float:
    """A joined-audio time on the call clock, kept inside the piece's speech."""
    call_s = piece.call_start_s + (joined_s - piece.joined_start_s)
    return float(min(max(call_s, piece.speech_start_s), piece.speech_end_s))


def map_segment(segment: DecodedSegment, role: str, pieces: Sequence[Piece]) -> list[Utterance]:
    """Split one Whisper segment at piece boundaries and map it to the call clock.

    Each word goes to the piece its middle lies in; consecutive words of one
    piece form one utterance. A segment without word timings maps its start
    and end.
    """
    if not pieces:
        return []
    stats = (segment.avg_logprob, segment.no_speech_prob, segment.compression_ratio)
    starts = [p.joined_start_s for p in pieces]
    if not segment.words:
        first = pieces[piece_index(pieces, segment.start, starts)]
        last = pieces[piece_index(pieces, max(segment.start, segment.end - 1e-3), starts)]
        start_s = to_call_clock(first, segment.start)
        end_s = max(start_s, to_call_clock(last, segment.end))
        text = segment.text.strip()
        return [Utterance(first.role or role, start_s, end_s, text, (), *stats)] if text else []
    groups: list[tuple[int, list[Word]]] = []
    for word in segment.words:
        index = piece_index(pieces, (word.start + word.end) / 2, starts)
        piece = pieces[index]
        start_s = to_call_clock(piece, word.start)
        mapped = Word(word.text, start_s, max(start_s, to_call_clock(piece, word.end)), word.probability)
        if groups and groups[-1][0] == index:
            groups[-1][1].append(mapped)
        else:
            groups.append((index, [mapped]))
    utterances = []
    for index, words in groups:
        text = "".join(w.text for w in words).strip()
        clean = tuple(Word(w.text.strip(), w.start_s, w.end_s, w.probability) for w in words if w.text.strip())
        if text and clean:
            utterances.append(Utterance(pieces[index].role or role, clean[0].start_s,
                                        max(w.end_s for w in clean), text, clean, *stats))
    return utterances


__all__ = ["ChannelSpeech", "Cut", "DecodedSegment", "DecodedWord", "Piece", "cut_spans", "join_channels", "join_cuts",
           "level_gain",
           "map_segment", "merged_speech", "piece_index", "piece_level", "to_call_clock", "window_of", "windows"]
