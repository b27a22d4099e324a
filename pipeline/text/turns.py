"""Turns: one speaker's consecutive utterances, matched and scored as one text.

Whisper and the VAD cut an agent's sentence wherever it pauses: "你这话" | "什么意思" are two
utterances, and a rule written for the sentence would see neither. The text detectors
therefore work on *turns*: the utterances of one role that follow each other with no other
role's utterance between them and a pause of at most ``max_gap_s``. A turn's text is its
utterances' matching forms joined, with a break (a token boundary, like punctuation) where
two utterances meet, and repeated characters folded (:func:`~pipeline.text.segment.collapse_repeats`).
Every character keeps its time, probability and the utterance it came from, so a hit still
reports where it was said and whether that utterance is suspect.

:func:`build_turns` is pure; the :class:`~pipeline.text.segment.Normaliser` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.chinese import matching_form
from pipeline.records import Utterance
from pipeline.text.segment import Normaliser, NormText, collapse_repeats


@dataclass(frozen=True)
class Turn:
    """One speaker's consecutive utterances.

    Attributes:
        role: the speaker.
        utterances: indices into the sorted utterances the turn was built from.
        norm: the joined matching form with per-character times and breaks.
        char_utterance: per character of ``norm.text``, the index (into the sorted
            utterances) of the utterance it came from.
    """

    role: str
    utterances: tuple[int, ...]
    norm: NormText
    char_utterance: tuple[int, ...]

    @property
    def start_s(self) -> float:
        return self.norm.char_start_s[0] if self.norm.text else 0.0

    @property
    def end_s(self) -> float:
        return self.norm.char_end_s[-1] if self.norm.text else 0.0


def sort_utterances(utterances: Sequence[Utterance]) -> tuple[Utterance, ...]:
    """Utterances in the order the text detectors read them (start time, then role)."""
    return tuple(sorted(utterances, key=lambda u: (u.start_s, u.role)))


def join_norms(parts: Sequence[NormText]) -> tuple[NormText, tuple[int, ...]]:
    """Concatenate normalised texts with a break where they meet; per character, which part."""
    text, starts, ends, probs, breaks, owner = "", [], [], [], set(), []
    for index, part in enumerate(parts):
        if text and part.text:
            breaks.add(len(text))
        breaks.update(len(text) + b for b in part.breaks)
        text += part.text
        starts += part.char_start_s
        ends += part.char_end_s
        probs += part.char_prob
        owner += [index] * len(part.text)
    return NormText(text, tuple(starts), tuple(ends), tuple(probs), frozenset(breaks)), tuple(owner)


def group_turns(utterances: Sequence[Utterance], max_gap_s: float) -> list[list[int]]:
    """Indices of sorted utterances grouped into turns (see the module docstring)."""
    groups: list[list[int]] = []
    for index, utterance in enumerate(utterances):
        if groups:
            last = utterances[groups[-1][-1]]
            if utterance.role == last.role and utterance.start_s - last.end_s <= max_gap_s:
                groups[-1].append(index)
                continue
        groups.append([index])
    return groups


def build_turns(utterances: Sequence[Utterance], normaliser: Normaliser, max_gap_s: float,
                is_word: Callable[[str], bool] | None = None) -> list[Turn]:
    """Group sorted utterances into turns (see the module docstring).

    Args:
        utterances: sorted as by :func:`sort_utterances`.
        normaliser: gives each utterance's matching form and character times.
        max_gap_s: longest pause inside one turn (0: every utterance is its own turn).
        is_word: whether a doubled character is a word (kept by the repeat folding);
            None = no folding.
    """
    turns = []
    for group in group_turns(utterances, max_gap_s):
        joined, owner = join_norms([normaliser.utterance(utterances[i]) for i in group])
        char_utterance = tuple(group[o] for o in owner)
        if is_word is not None:
            joined, kept = collapse_repeats(joined, is_word)
            char_utterance = tuple(char_utterance[k] for k in kept)
        turns.append(Turn(utterances[group[0]].role, tuple(group), joined, char_utterance))
    return turns


def model_form(text: str) -> str:
    """The form the red-line model reads (and is trained on): the matching form.

    ASR punctuation is dropped: Whisper writes commas where it likes, and the model must not
    score "你好,这里是客服中心," differently from "你好这里是客服中心". (Whisper base at 8 kHz
    also writes 你 for 您; the training data carries such copies rather than folding 您 away,
    which would lose what tells a polite question from a rude one.)
    """
    return matching_form(text)


def model_text(texts: Sequence[str]) -> str:
    """A turn's text for the red-line model: its utterances joined in :func:`model_form`."""
    return "".join(model_form(t) for t in texts)


__all__ = ["Turn", "build_turns", "group_turns", "join_norms", "model_form", "model_text", "sort_utterances"]
