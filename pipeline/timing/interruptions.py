"""Interruptions (打断): one side starts speaking while the other is speaking.

Everything here is measured on the speech (the VAD segments, each starting where its
loudness rises: :func:`pipeline.timing.detect.timing_evidence`), not on the text:

- a *turn* is a role's speech with pauses shorter than
  ``interruption_turn_gap_s`` joined (a breath inside a sentence is not the end
  of a turn, and the other side starting in it still cuts in);
- role X interrupts role Y when an X turn starts inside a Y turn, Y having
  spoken for at least ``interruption_simultaneous_start_s`` (two people
  starting together interrupt nobody), and both really speak for at least
  ``interruption_min_overlap_s`` from then until either turn ends.

Earlier versions compared X's start only with the stretch of Y's speech it
fell in: an X turn starting in a short pause of Y's sentence, or overlapping Y
for 3 s after Y's pause, was missed; and when the transcript had no words for
X there (a gap), the character check failed and the interruption was dropped.

The words help where they are known: the interrupter's trusted words in the
overlapping stretch must not be backchannels ("嗯", "对", "好的"…, from the
lexicon, one or several: "对对对", "嗯好的"): listening noises are not
interruptions, however long the VAD made them. Otherwise they must say at
least ``interruption_min_chars`` characters, or the interrupter must speak at
least ``interruption_unchecked_min_speech_s`` there, as where the words are
not known at all (then the hit carries confidence
``interruption_unchecked_confidence`` and says so): knowing a few of the words
must not make the detector stricter than knowing none. Whisper writes the
customer's "换一首歌", said over the agent for 1.3 s, as "一首歌", three
characters. Not known means no transcript, or trusted words for less than
half of the interrupter's speech there, each character taken to last at most
``pipeline.asr.snap.CHAR_MAX_S``: 3.5 s of speech transcribed as the one
character "伯" is a gap in the transcript, not a short remark.

The agent cutting the customer off breaks the baseline rule 不得打断客户发言
(DOMAIN.md §4c, 服务耐心): ``non_fatal``, error class ``customer``. The
customer cutting the agent off is no agent fault but a frustration signal:
``info``, error class ``none``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pipeline.asr.snap import longest_s
from pipeline.chinese import count_chars, matching_form
from pipeline.config import TimingConfig
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Hit, Utterance
from pipeline.spans import Span, intersection_s, overlap_s, union
from pipeline.timing.columns import Feature
from pipeline.timing.intervals import activity

AGENT_RULE = "timing.interruption_agent"
CUSTOMER_RULE = "timing.interruption_customer"
#: Words this close to the overlapping stretch still count as said in it (word times are ~0.1 s off).
WORD_MARGIN_S = 0.25

FEATURES: tuple[Feature, ...] = (
    Feature("interruptions_agent_count", "int", "Times the agent started speaking over the customer (QA fault)."),
    Feature("interruptions_customer_count", "int", "Times the customer started speaking over the agent."),
    Feature("interruptions_overlap_s", "float", "Time both spoke at once in those interruptions (s)."),
)


@dataclass(frozen=True)
class Interruption:
    """``by`` started speaking at ``start_s`` over ``of``; both turns went on until ``end_s``.

    ``both_s`` is the time both really spoke in between; ``checked`` is False
    when the interrupter's words there were unknown.
    """

    by: str
    of: str
    start_s: float
    end_s: float
    text: str
    checked: bool
    both_s: float = 0.0

    @property
    def overlap_s(self) -> float:
        return self.end_s - self.start_s


def turns(speech: Sequence[Span], max_pause_s: float) -> list[Span]:
    """Disjoint sorted speech spans with pauses shorter than ``max_pause_s`` joined."""
    joined: list[list[float]] = []
    for start, end in speech:
        if joined and start - joined[-1][1] < max_pause_s:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [(a, b) for a, b in joined]


def _words_in(utterances: Sequence[Utterance], role: str, start_s: float, end_s: float
              ) -> tuple[str | None, list[Span]]:
    """The trusted words ``role`` said in ``start_s``..``end_s`` (None: nothing trusted there) and their times."""
    parts: list[str] = []
    times: list[Span] = []
    for u in utterances:
        if u.role != role or u.suspect or u.end_s < start_s - WORD_MARGIN_S or u.start_s > end_s + WORD_MARGIN_S:
            continue
        if not u.words:
            parts.append(u.text)
            times.append((u.start_s, u.end_s))
            continue
        words = [w for w in u.words if start_s - WORD_MARGIN_S <= (w.start_s + w.end_s) / 2 <= end_s + WORD_MARGIN_S]
        parts += [w.text for w in words]
        times += [(w.start_s - WORD_MARGIN_S,
                   min(w.end_s, w.start_s + longest_s(w.text)) + WORD_MARGIN_S) for w in words]
    return ("".join(parts) if parts else None), union(times)


def only_backchannels(text: str, quiet: Collection[str]) -> bool:
    """Whether ``text`` (any form) is nothing but listening noises of ``quiet`` (matching forms) one
    after another: "对对对", "嗯好的", "好的好的". Empty text is not."""
    form = matching_form(text)
    if not form or not quiet:
        return False
    longest = max(len(q) for q in quiet)
    ends = [True] + [False] * len(form)  # ends[i]: form[:i] splits into backchannels
    for i in range(1, len(form) + 1):
        ends[i] = any(ends[i - k] and form[i - k:i] in quiet for k in range(1, min(longest, i) + 1))
    return ends[-1]


def find_interruptions(evidence: CallEvidence, config: TimingConfig,
                       backchannels: Sequence[str]) -> list[Interruption]:
    """Every interruption of the call in time order (none on mono calls)."""
    if evidence.is_mono:
        return []
    quiet = {matching_form(b) for b in backchannels} - {""}
    found = []
    for by, of in ((AGENT, CUSTOMER), (CUSTOMER, AGENT)):
        mine, theirs = activity(evidence.segments, by), activity(evidence.segments, of)
        their_turns = turns(theirs, config.interruption_turn_gap_s)
        for start_s, end_s in turns(mine, config.interruption_turn_gap_s):
            turn = next(((a, b) for a, b in their_turns
                         if a <= start_s - config.interruption_simultaneous_start_s and start_s < b), None)
            if turn is None:
                continue
            stop_s = min(end_s, turn[1])
            spoken = [(max(a, start_s), min(b, stop_s)) for a, b in mine if b > start_s and a < stop_s]
            both_s = sum(intersection_s(theirs, a, b) for a, b in spoken)
            if both_s < config.interruption_min_overlap_s:
                continue
            text, said = _words_in(evidence.utterances, by, start_s, stop_s)
            if text is not None and only_backchannels(text, quiet):
                continue  # listening noises ("对对对", "嗯好的"), however long the VAD made them
            spoken_s = sum(b - a for a, b in spoken)
            checked = text is not None and overlap_s(said, spoken) >= 0.5 * spoken_s
            wordy = checked and count_chars(text or "") >= config.interruption_min_chars
            if not wordy and spoken_s < config.interruption_unchecked_min_speech_s:
                continue  # as short as a backchannel, and no words say otherwise
            found.append(Interruption(by, of, start_s, stop_s, text or "", checked, both_s))
    return sorted(found, key=lambda i: i.start_s)


def interruption_features(found: Sequence[Interruption], evidence: CallEvidence) -> dict[str, float | int | None]:
    """``interruptions_agent_count`` (agent over customer), ``interruptions_customer_count``
    and ``interruptions_overlap_s`` (time both spoke); ``None`` on mono calls."""
    if evidence.is_mono:
        return {"interruptions_agent_count": None, "interruptions_customer_count": None,
                "interruptions_overlap_s": None}
    return {
        "interruptions_agent_count": sum(1 for i in found if i.by == AGENT),
        "interruptions_customer_count": sum(1 for i in found if i.by == CUSTOMER),
        "interruptions_overlap_s": float(sum(i.both_s for i in found)),
    }


def detect_interruptions(evidence: CallEvidence, config: TimingConfig, found: Sequence[Interruption],
                         detector_version: str) -> list[Hit]:
    """One hit per interruption (see the module doc for severities)."""
    hits = []
    for i in found:
        agent = i.by == AGENT
        hits.append(Hit(
            call_id=evidence.call_id, rule_id=AGENT_RULE if agent else CUSTOMER_RULE,
            detector_version=detector_version, category="interruption",
            severity="non_fatal" if agent else "info", error_class="customer" if agent else "none",
            role=i.by, start_s=i.start_s, end_s=i.end_s, match_type="timing",
            confidence=1.0 if i.checked else config.interruption_unchecked_confidence, matched_text=i.text[:200],
            detail=f"{i.by} started over {i.of}, {i.both_s:.1f} s spoken at once"
                   + ("" if i.checked else " (few or no transcribed words there: characters and backchannels"
                                           " not checked)"),
        ))
    return hits
