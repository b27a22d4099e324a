"""How much of each role's speech has text, and where it has none (and why).

*Coverage* of a role is the share of its VAD speech that trusted words cover:
each recognised word covers its own time, at most as long as it can be said
(:func:`pipeline.asr.snap.longest_s`: Whisper sometimes stretches the one
word it heard over seconds it did not), widened by ``[asr]
coverage_word_margin_s`` on each side (VAD padding, the pause between two
characters), the first and last word of each VAD segment reaching out to its
edges (:mod:`pipeline.asr.snap`); an utterance without word timings covers its
whole span;
utterances the hallucination guard distrusts cover nothing. What is left of
the speech, in pieces at least ``[asr] gap_min_s`` long, are the *gaps*:
"speech here, no text". Every gap carries a reason:

- ``crosstalk``: the other side's voice leaking into this channel, left out
  on purpose (:func:`pipeline.asr.transcribe.drop_crosstalk`); not counted
  against coverage, since it is not this role's speech;
- ``loop``: Whisper repeated itself over this speech; the loop was cut to its
  first occurrence and re-decoding did not recover the rest;
- ``hallucination``: the only text there is distrusted by the guard;
- ``decode_failure``: Whisper returned text, but not for this speech (it
  stopped early, or its timestamps fell elsewhere), even when decoded again;
- ``no_text``: Whisper, asked about this speech on its own, returned nothing
  (laughter, a cough, a word too short or too noisy);
- ``vad_missed``: not VAD speech at all, but sound well above the channel's
  line noise, or a faint voice Silero hears only when it listens harder, that
  nothing transcribed covers (:func:`sound_gaps`): Silero does not hear every
  voice (a far-field speaker on a noisy line, a quiet "好，谢谢"), so this
  is where to listen for speech the transcript cannot show. Such sound is
  decoded once (``[asr] decode_vad_missed``, :func:`pipeline.asr.transcribe.decode_unheard`);
  what is left without trusted text is the gap. It does not count against
  coverage, which is a share of VAD speech.

Pure functions over records: :func:`coverage_columns` gives the feature
columns from a call's evidence (the same on ``run`` and ``rescore``);
:func:`find_gaps` gives the stored gaps, with the reasons the transcriber
reported (:class:`DecodeNote`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.asr.snap import longest_s, snap_to_speech
from pipeline.audio.loudness import LoudnessTrack, sound_threshold_db
from pipeline.records import AGENT, CUSTOMER, MIXED, CallEvidence, SpeechSegment, Utterance
from pipeline.spans import Span, overlap_s, subtract, union

#: Why speech has no text (see the module docstring), most specific first.
GAP_REASONS = ("crosstalk", "loop", "hallucination", "decode_failure", "no_text", "vad_missed")
#: How a gap is shown in a transcript (``callqa show``, ``callqa transcribe``).
SPEECH_WITHOUT_TEXT, SOUND_WITHOUT_SPEECH = "speech here, no text", "sound here, VAD heard no speech"


def gap_label(reason: str) -> str:
    """What a gap of ``reason`` is, in a few words: speech without text, or (``vad_missed``) sound
    the VAD did not take for speech."""
    return SOUND_WITHOUT_SPEECH if reason == "vad_missed" else SPEECH_WITHOUT_TEXT


#: Feature columns of :func:`coverage_columns`.
COVERAGE_COLUMNS = ("agent_coverage", "customer_coverage", "mixed_coverage", "untranscribed_s", "gap_count")


@dataclass(frozen=True)
class Gap:
    """A stretch of one role's speech with no trusted text, on the call clock."""

    role: str
    start_s: float
    end_s: float
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)) or not 0 <= self.start_s <= self.end_s:
            raise ValueError(f"Gap: need 0 <= start_s <= end_s, got {self.start_s}..{self.end_s}")
        if self.reason not in GAP_REASONS:
            raise ValueError(f"Gap: reason {self.reason!r} not in {GAP_REASONS}")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class DecodeNote:
    """What a transcriber knows about speech it could not turn into text (``reason`` as :class:`Gap`)."""

    role: str
    start_s: float
    end_s: float
    reason: str
    detail: str = ""


def text_spans(utterances: Iterable[Utterance], role: str, margin_s: float,
               reach: Sequence[SpeechSegment] = ()) -> list[Span]:
    """Where ``role`` has trusted text: its words, each at most :func:`longest_s` from its start (or
    word-less utterances), widened by ``margin_s``.

    ``reach``: the VAD segments the words were decoded from; the edge words of each reach out to its
    edges first (:func:`pipeline.asr.snap.snap_to_speech`, ``[asr] coverage_snap_words``).
    """
    if reach:  # this role's words and segments only: callers ask role by role
        utterances = snap_to_speech([u for u in utterances if u.role == role], [s for s in reach if s.role == role])
    spans: list[Span] = []
    for u in utterances:
        if u.role != role or u.suspect:
            continue
        if u.words:
            spans.extend((max(0.0, w.start_s - margin_s), min(w.end_s, w.start_s + longest_s(w.text)) + margin_s)
                         for w in u.words)
        else:
            spans.append((max(0.0, u.start_s - margin_s), u.end_s + margin_s))
    return union(spans)


def uncovered(speech: Sequence[Span], covered: Sequence[Span], min_s: float) -> list[Span]:
    """Pieces of ``speech`` (disjoint, sorted) outside ``covered`` that are at least ``min_s`` long."""
    return [(a, b) for a, b in subtract(speech, covered) if b - a >= min_s]


def decoded_segments(segments: Sequence[SpeechSegment], crosstalk: Sequence[SpeechSegment]) -> list[SpeechSegment]:
    """The segments handed to the transcriber (all but the crosstalk left out)."""
    left_out = set(crosstalk)
    return [s for s in segments if s not in left_out]


def decoded_speech(segments: Sequence[SpeechSegment], crosstalk: Sequence[SpeechSegment], role: str) -> list[Span]:
    """``role``'s speech that was handed to the transcriber (its VAD speech without the crosstalk left out)."""
    own = union((s.start_s, s.end_s) for s in segments if s.role == role)
    return subtract(own, union((s.start_s, s.end_s) for s in crosstalk if s.role == role))


def find_gaps(roles: Sequence[str], segments: Sequence[SpeechSegment], crosstalk: Sequence[SpeechSegment],
              utterances: Sequence[Utterance], notes: Sequence[DecodeNote], margin_s: float,
              min_s: float, snap: bool = True) -> list[Gap]:
    """Every stretch of speech without trusted text, with its reason, in time order.

    Args:
        roles: the call's roles.
        segments: every VAD speech segment of the call.
        crosstalk: the segments left out as crosstalk (their speech becomes ``crosstalk`` gaps).
        utterances: the final utterances (suspect ones marked).
        notes: what the transcriber reported about speech it could not decode.
        margin_s: ``[asr] coverage_word_margin_s``.
        min_s: ``[asr] gap_min_s``.
        snap: ``[asr] coverage_snap_words`` (the edge words reach the edges of their segments).
    """
    gaps: list[Gap] = []
    reach = decoded_segments(segments, crosstalk) if snap else ()
    for role in roles:
        leaked = union((s.start_s, s.end_s) for s in crosstalk if s.role == role)
        gaps += [Gap(role, a, b, "crosstalk", "the other side's voice leaking into this channel (not decoded)")
                 for a, b in leaked if b - a >= min_s]
        covered = text_spans(utterances, role, margin_s, reach)
        distrusted = [u for u in utterances if u.role == role and u.suspect]
        for start_s, end_s in uncovered(decoded_speech(segments, crosstalk, role), covered, min_s):
            reason, detail = _reason(role, start_s, end_s, notes, distrusted)
            gaps.append(Gap(role, start_s, end_s, reason, detail))
    return sorted(gaps, key=lambda g: (g.start_s, g.role))


def sound_gaps(tracks: Mapping[str, LoudnessTrack], segments: Sequence[SpeechSegment],
               utterances: Sequence[Utterance], asr: Any,
               faint: Mapping[str, Sequence[Span]] | None = None, faint_min_s: float = 0.2) -> list[Gap]:
    """Sound outside VAD speech and text where a voice may be that Silero did not hear (``vad_missed``).

    Two kinds of such sound, outside the role's VAD segments and its text
    (:func:`text_spans`), and not an echo (the other channel ``[asr]
    crosstalk_margin_db`` louder):

    * *loud*: frames whose level, averaged over three frames, is at least
      ``[asr] sound_above_floor_db`` over the channel's noise floor (the 10th
      percentile of its frames outside VAD speech) and at most ``[asr]
      sound_below_speech_db`` under its median speech frame (a breath or the
      room after a word is quieter than that), in stretches at least ``[asr]
      gap_min_s`` long;
    * *faint*: the spans where Silero, listening harder (``faint``, from
      :func:`pipeline.audio.vad.detect_faint_speech`), hears a voice and that
      touch no VAD segment of the role (a span that only widens a segment is
      the same speech, already decoded), in pieces at least ``faint_min_s``
      long. A span is an echo when the other channel is that much louder over
      at least half of it (a frame or two of it is the other side talking over
      a quiet voice, which is what to listen for). A click or a breath is loud for a frame; this is a voice by
      Silero's ear, too quiet or too short for the VAD.

    Args:
        tracks: per-role loudness with the VAD speech frames marked
            (:func:`pipeline.audio.loudness.loudness_tracks`).
        segments: every VAD segment of the call.
        utterances: the final utterances.
        asr: the ``[asr]`` section (``sound_above_floor_db = "off"`` turns the loud kind off).
        faint: per role, Silero's spans at the lower threshold (none: no faint kind).
        faint_min_s: the shortest faint piece kept (``[vad] min_speech_duration_ms``).
    """
    gaps: list[Gap] = []
    reach = segments if asr.coverage_snap_words else ()
    decoded = "no trusted text" if asr.decode_vad_missed else "not decoded"
    for role, track in tracks.items():
        vad = [(x.start_s, x.end_s) for x in segments if x.role == role]
        heard = union([*vad, *text_spans(utterances, role, asr.coverage_word_margin_s, reach)])
        echo = _stretches(_echo_frames(track, tracks, asr.crosstalk_margin_db), track.frame_s)
        loud: list[Span] = []
        threshold = (sound_threshold_db(track, asr.sound_above_floor_db, asr.sound_below_speech_db)
                     if asr.sound_above_floor_db != "off" else None)
        if threshold is not None:
            frames = np.convolve(track.dbfs, np.ones(3) / 3, mode="same") >= threshold
            loud = uncovered(subtract(_stretches(frames, track.frame_s), echo), heard, asr.gap_min_s)
            gaps += [Gap(role, a, b, "vad_missed", f"{asr.sound_above_floor_db:g} dB or more over the line noise; "
                         f"{decoded}: listen for a voice here") for a, b in loud]
        alone = [(a, b) for a, b in union((faint or {}).get(role, ()))
                 if not any(a < y and x < b for x, y in vad) and overlap_s([(a, b)], echo) < 0.5 * (b - a)]
        gaps += [Gap(role, a, b, "vad_missed", f"a faint voice to Silero, not VAD speech; {decoded}: "
                     "listen for a voice here")
                 for a, b in uncovered(alone, union([*heard, *loud]), faint_min_s)]
    return sorted(gaps, key=lambda g: (g.start_s, g.role))


def _echo_frames(track: LoudnessTrack, tracks: Mapping[str, LoudnessTrack], margin_db: float) -> np.ndarray:
    """The frames of ``track`` where another channel is at least ``margin_db`` louder (its voice leaking in)."""
    echo = np.zeros(len(track.dbfs), bool)
    for other in tracks.values():
        if other.role != track.role:
            n = min(len(echo), len(other.dbfs))
            echo[:n] |= other.dbfs[:n] >= track.dbfs[:n] + margin_db
    return echo


def _stretches(frames: np.ndarray, frame_s: float) -> list[Span]:
    """The runs of true frames, in seconds."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], frames.astype(np.int8), [0]])))
    return [(float(a * frame_s), float(b * frame_s)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _reason(role: str, start_s: float, end_s: float, notes: Sequence[DecodeNote],
            distrusted: Sequence[Utterance]) -> tuple[str, str]:
    """The reason of one gap: the transcriber's note overlapping it most, else distrusted text, else no text."""
    def overlap(a: float, b: float) -> float:
        return max(0.0, min(b, end_s) - max(a, start_s))

    scored = [(overlap(n.start_s, n.end_s), n) for n in notes if n.role == role]
    best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    suspect = max(((overlap(u.start_s, u.end_s), u) for u in distrusted), key=lambda pair: pair[0],
                  default=(0.0, None))
    if suspect[1] is not None and suspect[0] > best[0]:
        return "hallucination", f"distrusted text: {suspect[1].suspect_reason}"
    if best[1] is not None and best[0] > 0:
        return best[1].reason, best[1].detail
    return "no_text", "no text was recognised for this speech"


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


def crosstalk_of(segments: Sequence[SpeechSegment], asr: Any) -> tuple[SpeechSegment, ...]:
    """The segments ``[asr]`` leaves out as crosstalk (none when ``drop_crosstalk`` is off)."""
    if not asr.drop_crosstalk:
        return ()
    kept = set(map(id, drop_crosstalk(segments, asr.crosstalk_margin_db, asr.crosstalk_covered_share)))
    return tuple(s for s in segments if id(s) not in kept)


def role_coverage(speech: Sequence[Span], gaps: Sequence[Span]) -> float | None:
    """Share of ``speech`` outside ``gaps`` (None when there is no speech)."""
    total = sum(b - a for a, b in speech)
    if total <= 0:
        return None
    return max(0.0, 1.0 - sum(b - a for a, b in gaps) / total)


def coverage_columns(evidence: CallEvidence, crosstalk: Sequence[SpeechSegment], margin_s: float,
                     min_s: float, snap: bool = True) -> dict[str, float | int | None]:
    """The coverage feature columns of one call, from its evidence alone (``run`` and ``rescore`` agree).

    ``<role>_coverage`` is the share of the role's decoded speech covered by
    trusted words (None when the role has no speech or the call has no such
    role); ``untranscribed_s`` and ``gap_count`` sum the gaps of every role
    (crosstalk left out).

    Args:
        evidence: the call's segments and utterances.
        crosstalk: the segments left out as crosstalk (:func:`pipeline.asr.transcribe.drop_crosstalk`).
        margin_s: ``[asr] coverage_word_margin_s``.
        min_s: ``[asr] gap_min_s``.
        snap: ``[asr] coverage_snap_words``.
    """
    reach = decoded_segments(evidence.segments, crosstalk) if snap else ()
    row: dict[str, float | int | None] = {f"{role}_coverage": None for role in (AGENT, CUSTOMER, MIXED)}
    untranscribed_s, count = 0.0, 0
    for role in evidence.roles:
        speech = decoded_speech(evidence.segments, crosstalk, role)
        gaps = uncovered(speech, text_spans(evidence.utterances, role, margin_s, reach), min_s)
        row[f"{role}_coverage"] = role_coverage(speech, gaps)
        untranscribed_s += sum(b - a for a, b in gaps)
        count += len(gaps)
    row["untranscribed_s"] = untranscribed_s
    row["gap_count"] = count
    return row


__all__ = ["COVERAGE_COLUMNS", "GAP_REASONS", "DecodeNote", "Gap", "coverage_columns", "crosstalk_of",
           "decoded_segments", "decoded_speech", "drop_crosstalk", "find_gaps", "gap_label", "role_coverage",
           "sound_gaps", "text_spans", "uncovered"]
