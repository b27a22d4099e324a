"""Decode again, on its own and with other settings, the speech the first pass left without trusted text.

The first pass decodes all speech of a call in shared 30 s windows: fast, but
a window can stop early, loop, or place its words elsewhere, and a stretch of
speech is then left with no text. Such a stretch (at least ``[asr]
redecode_min_s`` long) is decoded again before it is given up:

- with ``[asr] redecode_context_s`` of audio around it, levelled like the
  first pass, never conditioned on previous text, with ``[asr]
  redecode_prompt`` instead of the first pass's prompt;
- by each of ``[asr] redecode_passes`` in turn, until it has text:
  ``fresh_windows`` packs the stretches, in call order, into new shared
  windows (batched, temperature 0): a window that stopped early or looped is
  not repeated, and every stretch now sits near a window's start, where
  Whisper does not skip (about one encoder pass per 30 s of stretches);
  ``alone`` decodes each stretch in its own window of at most ``[asr]
  redecode_window_s`` (batched; a shorter window: nothing else in it to skip
  to or loop on; one encoder pass each); ``alone_with_fallback`` does so one
  stretch at a time with temperature fallback over ``[asr]
  redecode_temperatures`` (a higher temperature when the output is
  repetitive or improbable, as Whisper's own sequential decoding does: the
  costliest, so last).

Only words inside the stretch are kept (the context was decoded already).
What an attempt could not recover is reported as a note with its reason
(``loop``, ``no_text``, ``decode_failure``) and what the guard distrusts as
``hallucination``; :func:`pipeline.asr.coverage.find_gaps` turns them into gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.asr.coverage import DecodeNote, text_spans, uncovered
from pipeline.asr.loops import clean_and_map
from pipeline.asr.model import seed_sampling
from pipeline.asr.pieces import (
    ChannelSpeech,
    Cut,
    DecodedSegment,
    Piece,
    join_cuts,
    merged_speech,
    piece_level,
    window_of,
    windows,
)
from pipeline.config import AsrConfig
from pipeline.records import SAMPLE_RATE_HZ, Utterance, Word


@dataclass(frozen=True, eq=False)
class RedecodeRequest:
    """A stretch of one channel's speech to decode again: ``start_s``..``end_s`` on the call clock."""

    channel: ChannelSpeech
    start_s: float
    end_s: float

    @property
    def role(self) -> str:
        return self.channel.role

    def holds(self, role: str, time_s: float, margin_s: float = 0.0) -> bool:
        """Whether ``time_s`` of ``role`` lies in this stretch (widened by ``margin_s``)."""
        return role == self.role and self.start_s - margin_s <= time_s <= self.end_s + margin_s


def plan_requests(work: Sequence[ChannelSpeech], utterances: Sequence[Utterance],
                  asr: AsrConfig) -> list[RedecodeRequest]:
    """The stretches of speech without trusted text at least ``[asr] redecode_min_s`` long."""
    requests = []
    for channel in work:
        covered = text_spans(utterances, channel.role, asr.coverage_word_margin_s)
        for start_s, end_s in uncovered(merged_speech(channel.speech), covered, asr.redecode_min_s):
            requests.append(RedecodeRequest(channel, start_s, end_s))
    return requests


def _placed(requests: Sequence[RedecodeRequest], asr: AsrConfig) -> tuple[np.ndarray, list[Piece], list[int]]:
    """Each stretch with its context, levelled, joined with pauses; and the request of each piece.

    Words are mapped as heard over the whole cut, context included (a piece's
    speech is its whole cut); only those inside the stretch are kept later.
    """
    cuts = []
    for request in requests:
        duration_s = len(request.channel.samples) / SAMPLE_RATE_HZ
        cuts.append(Cut(request.role, request.channel.samples, max(0.0, request.start_s - asr.redecode_context_s),
                        min(duration_s, request.end_s + asr.redecode_context_s), request.start_s, request.end_s))
    joined, pieces, owners = join_cuts(cuts, asr.join_pause_s, piece_level(asr), asr.piece_max_gain_db)
    pieces = [replace(p, speech_start_s=p.call_start_s, speech_end_s=p.call_end_s) for p in pieces]
    return joined, pieces, owners


def _split(piece: Piece, max_s: float) -> list[dict[str, float]]:
    """A piece's windows of at most ``max_s`` (equal parts)."""
    length = piece.joined_end_s - piece.joined_start_s
    parts = max(1, int(np.ceil(length / max_s - 1e-9)))
    step = length / parts
    return [{"start": piece.joined_start_s + i * step, "end": piece.joined_start_s + (i + 1) * step}
            for i in range(parts)]


def redecode_with_whisper(model: Any, batched: Any, requests: Sequence[RedecodeRequest], asr: AsrConfig,
                          how: str, first_options: dict[str, Any]) -> tuple[list[Utterance], list[DecodeNote]]:
    """Decode the stretches again (see the module docstring for each way).

    Args:
        model: the loaded ``WhisperModel``.
        batched: its ``BatchedInferencePipeline`` (None: ``fresh_windows`` and ``alone``
            decode with the model's own sequential decoding at temperature 0).
        requests: the stretches (:func:`plan_requests`).
        asr: the ``[asr]`` section.
        how: ``fresh_windows``, ``alone`` or ``alone_with_fallback`` (one of ``[asr] redecode_passes``).
        first_options: the first pass's options (language, beam size, word timestamps, no-repeat size).

    Returns:
        The new utterances (role and call-clock times; not yet guarded), and a
        note for every stretch this pass did not fill with words.
    """
    joined, pieces, owners = _placed(requests, asr)
    if not pieces:
        return [], []
    options = {**first_options, "initial_prompt": asr.redecode_prompt or None}
    if how == "fresh_windows":
        spans = windows(pieces, asr.window_s)
    else:
        spans = [w for piece in pieces for w in _split(piece, asr.redecode_window_s)]
    decoded: list[DecodedSegment] = []
    if how != "alone_with_fallback" and batched is not None:
        raw, _info = batched.transcribe(joined, clip_timestamps=spans, batch_size=asr.batch_size,
                                        without_timestamps=False, **options)
        decoded = [DecodedSegment.of(s, window_of(spans, float(s.start), float(s.end))) for s in raw]
    else:
        fallback = how == "alone_with_fallback"
        for index, span in enumerate(spans):
            first, last = int(round(span["start"] * SAMPLE_RATE_HZ)), int(round(span["end"] * SAMPLE_RATE_HZ))
            seed_sampling()  # a worker thread that has not sampled yet starts from the fixed seed
            raw, _info = model.transcribe(
                joined[first:last], vad_filter=False, condition_on_previous_text=False,
                temperature=list(asr.redecode_temperatures) if fallback else 0.0,
                compression_ratio_threshold=asr.guard.compression_ratio_max,
                log_prob_threshold=asr.guard.logprob_min, no_speech_threshold=asr.guard.no_speech_prob_max,
                **options)
            decoded += [DecodedSegment.of(s, index).shifted(span["start"]) for s in raw]
    if how == "alone_with_fallback":
        how = f"alone, temperatures {', '.join(f'{t:g}' for t in asr.redecode_temperatures)}"
    else:
        how = "in fresh windows" if how == "fresh_windows" else "alone"
    utterances, loops = clean_and_map(decoded, pieces, "", asr)
    detail = f"decoded again {how}"
    notes = []
    for index, request in enumerate(requests):
        if any(_inside(u, request, asr.coverage_word_margin_s) for u in utterances):
            continue
        looped = [n for n in loops if request.holds(n.role, (n.start_s + n.end_s) / 2, asr.coverage_word_margin_s)]
        piece = pieces[owners.index(index)] if index in owners else None
        said = piece is not None and any(
            s.text.strip() and s.start < piece.joined_end_s and s.end > piece.joined_start_s for s in decoded)
        if looped:
            reason, why = "loop", looped[0].detail
        elif said:
            reason, why = "decode_failure", "text, but not for this speech"
        else:
            reason, why = "no_text", "no text"
        notes.append(DecodeNote(request.role, request.start_s, request.end_s, reason, f"{detail}: {why}"))
    return utterances, notes


def _inside(utterance: Utterance, request: RedecodeRequest, margin_s: float) -> bool:
    times = [(w.start_s + w.end_s) / 2 for w in utterance.words] or [(utterance.start_s + utterance.end_s) / 2]
    return any(request.holds(utterance.role, t, margin_s) for t in times)


def _trimmed(utterance: Utterance, request: RedecodeRequest, margin_s: float) -> Utterance | None:
    """The part of a re-decoded utterance inside its stretch (its context was decoded already)."""
    if not utterance.words:
        return utterance if _inside(utterance, request, margin_s) else None
    words = tuple(w for w in utterance.words if request.holds(utterance.role, (w.start_s + w.end_s) / 2, margin_s))
    if not words:
        return None
    # kept inside the stretch, as the first pass keeps words inside the speech: a first word Whisper
    # starts in the context before it would start the utterance before anyone spoke
    words = tuple(replace(w, start_s=min(max(w.start_s, request.start_s), request.end_s),
                          end_s=min(max(w.end_s, request.start_s), request.end_s)) for w in words)
    return replace(utterance, start_s=words[0].start_s, end_s=max(w.end_s for w in words),
                   text="".join(w.text for w in words), words=words)


def _spliced(host: Utterance, guest: Utterance) -> Utterance:
    """``host`` with ``guest``'s words inserted in time order (the guest lies inside the host)."""
    words: tuple[Word, ...] = tuple(sorted((*host.words, *guest.words), key=lambda w: (w.start_s, w.end_s)))
    return replace(host, words=words, text="".join(w.text for w in words), start_s=min(host.start_s, guest.start_s),
                   end_s=max(host.end_s, guest.end_s))


def merge_redecoded(utterances: Sequence[Utterance], fresh: Sequence[Utterance], requests: Sequence[RedecodeRequest],
                    margin_s: float) -> tuple[list[Utterance], list[DecodeNote]]:
    """Add the trusted re-decoded text of each stretch to the transcript.

    A re-decoded utterance lying inside an utterance of the same role is
    spliced into it (one sentence stays one utterance); otherwise it is
    added. Distrusted text from the first pass over a stretch that now has
    trusted text is removed; distrusted re-decoded text is not added and
    becomes a ``hallucination`` note.

    Returns:
        The merged utterances in time order, and the notes for rejected text.
    """
    result = list(utterances)
    notes = []
    for request in requests:
        accepted = []
        for utterance in fresh:
            part = _trimmed(utterance, request, margin_s)
            if part is None:
                continue
            if part.suspect:
                notes.append(DecodeNote(request.role, request.start_s, request.end_s, "hallucination",
                                        f"decoded again, distrusted: {part.suspect_reason}"))
            else:
                accepted.append(part)
        if not accepted:
            continue
        result = [u for u in result if not (u.suspect and _inside(u, request, 0.0))]
        for part in accepted:
            host = next((i for i, u in enumerate(result) if u.role == part.role and not u.suspect and u.words
                         and part.words and u.start_s < part.start_s and part.end_s < u.end_s), None)
            if host is None:
                result.append(part)
            else:
                result[host] = _spliced(result[host], part)
    return sorted(result, key=lambda u: (u.start_s, u.end_s, u.role)), notes


__all__ = ["RedecodeRequest", "merge_redecoded", "plan_requests", "redecode_with_whisper"]
