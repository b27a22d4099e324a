"""The targeted second look: re-decode a stretch where a red line was *nearly* heard.

Whisper base at 8 kHz garbles one syllable of a phrase often enough ("神经病" heard as
"前经病") that a near match is worth a look, and too often to take it as a hit. Two kinds
of candidate (:func:`candidates`):

* a **near match** of a fuzzy rule's phrase (one syllable off or the first dropped,
  :func:`pipeline.text.matcher.find_near`) that no hit covers;
* an agent **turn the red-line model scores just under its threshold**
  (``[classifier] redline_review_margin``).

Each candidate's audio (its channel, ``[text] second_look_pad_s`` either side) is decoded
again by the same Whisper model with a larger beam (``second_look_beam_size``); a near
match gets its phrase and what was first heard as hotwords, so the decoder weighs both,
and is decoded once more without them. With hotwords Whisper sometimes skips the start of
the stretch (6 of 49 near looks on the spoken dev calls), and sometimes writes the phrase
itself: on spoken CrossWOZ service turns, "推荐您去无评分的…" (first heard "您去无") came back
"您去死", a fatal false flag. So a near match only the hotword decoding confirms is kept
only if the audio, scored without hotwords (:func:`fits_as_well`), fits that text about as
well as the plain decoding, and then as the sound check's hits are (:mod:`pipeline.text.sound_check`):
severity ``info``, ``match_type`` ``forced``, a red line making the call "needs review". A hit
keeps its rule's severity only when Whisper wrote the phrase unprompted.
The candidate becomes a hit only when the second decoding confirms it: for a near match,
its rule fires on the new text (exactly, or as a sound-alike); for a turn, a red-line rule
fires on the new text or the model scores it at or above its threshold. Confirmed hits
keep the candidate's time, say so in ``detail`` and carry the re-decoded text (PII-masked
like every transcript).

It needs the call's audio, so it runs in ``callqa run`` (:func:`pipeline.analysis.text_hits`
with the call) and never in ``rescore``. At most ``second_look_max_per_call`` stretches a
call are decoded, near matches first, then turns by probability.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.asr.forced import ForcedScorer
from pipeline.chinese import matching_form, to_simplified
from pipeline.config import Config
from pipeline.records import AGENT, MIXED, REDLINE_CATEGORIES, Call, CallEvidence, Hit, Utterance
from pipeline.text.matcher import LexiconMatcher, detect_phrases, find_near
from pipeline.text.pii import mask_utterance
from pipeline.text.redline_model import RULE_ID, RedlineTextModel, model_threshold, score_turns, turn_hit
from pipeline.text.sound_check import channel_stretch, fit, scorer_for, supports

#: Longest stretch decoded again (a turn longer than this is cut to its first seconds).
MAX_STRETCH_S = 20.0


@dataclass(frozen=True)
class Candidate:
    """A stretch to decode again: who, when, which rules or the model, and what was heard."""

    role: str
    start_s: float
    end_s: float
    source: str  # "near" or "model"
    rule_ids: tuple[str, ...] = ()
    phrase: str = ""
    heard: str = ""
    probability: float = 0.0


@dataclass(frozen=True)
class Look:
    """One second look: the candidate, the new text and whether it confirmed."""

    candidate: Candidate
    text: str
    confirmed: bool


def candidates(evidence: CallEvidence, hits: Sequence[Hit], matcher: LexiconMatcher, model: RedlineTextModel | None,
               config: Config) -> list[Candidate]:
    """Near matches no hit covers, then near-threshold agent turns no hit covers (pure)."""
    found = []
    for near in find_near(evidence, matcher, config.text, hits):
        # decode the utterances the near match lies in: Whisper needs the words around it
        around = [u for u in evidence.utterances if u.role == near.role and u.start_s < near.end_s
                  and near.start_s < u.end_s] or [Utterance(near.role, near.start_s, near.end_s, near.heard)]
        found.append(Candidate(near.role, min(u.start_s for u in around), max(u.end_s for u in around), "near",
                               near.rule_ids, near.phrase, near.heard))
    if model is not None:
        cls = config.classifier
        cut = model_threshold(model, cls.redline_threshold)
        for score in sorted(score_turns(evidence, model, (AGENT, MIXED), cls.redline_min_chars,
                                        config.text.turn_max_gap_s), key=lambda s: -s.probability):
            if not cut - cls.redline_review_margin <= score.probability < cut or score.suspect:
                continue
            if any(h.start_s < score.end_s and score.start_s < h.end_s and h.category != "apology"
                   and h.severity != "info" and h.match_type not in ("absence", "count") for h in hits):
                continue  # already a finding there
            found.append(Candidate(score.role, score.start_s, score.end_s, "model", heard=score.text,
                                   probability=score.probability))
    return found


def _audio(call: Call, candidate: Candidate, pad_s: float) -> np.ndarray:
    end_s = min(candidate.end_s, candidate.start_s + MAX_STRETCH_S)
    return channel_stretch(call, candidate.role, candidate.start_s, end_s, pad_s)


def decode(whisper: Any, audio: np.ndarray, config: Config, hotwords: str | None) -> str:
    """One decoding of a short stretch (larger beam, optional hotwords), Simplified."""
    segments, _info = whisper.transcribe(
        audio, language=None if config.asr.language == "auto" else config.asr.language,
        beam_size=config.text.second_look_beam_size, temperature=0.0, vad_filter=False,
        condition_on_previous_text=False, without_timestamps=True, hotwords=hotwords or None)
    return to_simplified("".join(s.text for s in segments).strip())


def _again(candidate: Candidate, text: str, evidence: CallEvidence, config: Config) -> CallEvidence:
    """The candidate's stretch as one utterance of the re-decoded ``text`` (PII-masked)."""
    role = candidate.role if candidate.role != "unknown" else MIXED
    utterance = Utterance(role, candidate.start_s, max(candidate.start_s, candidate.end_s), text)
    if config.pii.mask:
        utterance = mask_utterance(utterance, config.pii)
    return CallEvidence(evidence.call_id, evidence.duration_s, evidence.roles, utterances=(utterance,))


def _confirm(candidate: Candidate, text: str, evidence: CallEvidence, matcher: LexiconMatcher,
             model: RedlineTextModel | None, config: Config, heard: Sequence[Hit] = ()) -> list[Hit]:
    role = candidate.role if candidate.role != "unknown" else MIXED
    again = _again(candidate, text, evidence, config)
    note = {"second_look": candidate.source, "first_heard": candidate.heard,
            "heard_again": again.utterances[0].text}
    # what the stretch's new text holds that the first pass had not already found there
    there = [h for h in heard if h.start_s < candidate.end_s and candidate.start_s < h.end_s]
    new = [h for h in detect_phrases(again, matcher, config.text) if not any(same_words(h, t) for t in there)]
    if candidate.source == "near":
        hits = [h for h in new if h.rule_id in candidate.rule_ids and h.match_type in ("exact", "fuzzy", "regex")]
        return [_with_note(h, candidate, note) for h in hits[:1]]
    # a red-line phrase in the new text confirms a turn the model doubted, as it would have in the first pass
    lexical = [h for h in new if _lexical_redline(h)]
    if lexical:
        return [_with_note(lexical[0], candidate, {**note, "first_probability": round(candidate.probability, 4)})]
    if model is None:
        return []
    cls = config.classifier
    cut = model_threshold(model, cls.redline_threshold)
    scores = [s for s in score_turns(again, model, (role,), cls.redline_min_chars, config.text.turn_max_gap_s)
              if s.probability >= cut]
    return [turn_hit(evidence.call_id, s, model, cut, cls.redline_severity,
                     {**note, "first_probability": round(candidate.probability, 4)}) for s in scores[:1]]


def same_words(a: Hit, b: Hit) -> bool:
    """Whether two hits are one rule on the same words (in matching form): one finding, not two.

    "就是你找快地球,跟我们没关系" decoded again as "这是你找快地球,跟我们没关系" fires the shirking rule on
    跟我们没关系, a hit of the first pass already: it does not confirm the near match 你找快地球 (the call
    would lose the points twice for one phrase). A rescore that carries a second-look hit over drops it
    the same way when the transcript's own hit is the same words (:func:`pipeline.analysis.analyse_evidence`)."""
    return a.rule_id == b.rule_id and matching_form(a.matched_text) == matching_form(b.matched_text)


def _lexical_redline(hit: Hit) -> bool:
    """A red line a rule found in the text (its phrase, a sound-alike of it or its regex)."""
    return hit.category in REDLINE_CATEGORIES and hit.match_type in ("exact", "fuzzy", "regex")


def _with_note(hit: Hit, candidate: Candidate, note: dict[str, Any]) -> Hit:
    detail = json.dumps(note, ensure_ascii=False)
    return replace(hit, start_s=round(candidate.start_s, 3), end_s=round(max(candidate.start_s, candidate.end_s), 3),
                   detail=f"{hit.detail}; {detail}" if hit.detail else detail)


def second_look(call: Call, evidence: CallEvidence, hits: Sequence[Hit], whisper: Any, matcher: LexiconMatcher,
                model: RedlineTextModel | None, config: Config,
                scorer: ForcedScorer | None = None) -> tuple[list[Hit], list[Look]]:
    """Decode every candidate again and keep what the second decoding confirms.

    Args:
        call: the decoded call (its channels' audio).
        evidence: the call's (masked) utterances.
        hits: the hits found so far (a candidate a hit already covers is not looked at).
        whisper: a faster-whisper ``WhisperModel`` (``WhisperTranscriber.model``).
        matcher: the compiled rules.
        model: the red-line text model, or None.
        config: the run's configuration (``[text]``, ``[classifier]``, ``[asr] language``, ``[pii]``).
        scorer: scores a hotword decoding against the audio (tests); built from ``whisper`` when needed.

    Returns:
        The confirmed hits and every look (for benchmarks and logs).
    """
    found = candidates(evidence, hits, matcher, model, config)[: config.text.second_look_max_per_call]
    confirmed: list[Hit] = []
    looks: list[Look] = []
    for candidate in found:
        if any(h.start_s < candidate.end_s and candidate.start_s < h.end_s for h in confirmed):
            continue
        audio = _audio(call, candidate, config.text.second_look_pad_s)
        hotwords = f"{candidate.phrase} {candidate.heard}" if candidate.source == "near" else None
        text = decode(whisper, audio, config, hotwords)
        new = _confirm(candidate, text, evidence, matcher, model, config, hits)
        if hotwords:
            # Without the hotwords: they sometimes make Whisper skip the start of the stretch, and they
            # sometimes make it write the phrase itself ("推荐您去无评分的" came back "您去死").
            plain = decode(whisper, audio, config, None)
            plain_new = _confirm(candidate, plain, evidence, matcher, model, config, hits)
            if plain_new:
                new, text = plain_new, plain
            elif new:
                scorer = scorer or scorer_for(whisper, config)
                # written only when prompted: evidence like the sound check's, so treated like it
                new = ([replace(h, severity="info", match_type="forced") for h in new]
                       if fits_as_well(scorer, audio, text, plain, config) else [])
        looks.append(Look(candidate, text, bool(new)))
        confirmed += new
    return confirmed, looks


def recheck_model_hits(call: Call, evidence: CallEvidence, hits: Sequence[Hit], whisper: Any,
                       matcher: LexiconMatcher, model: RedlineTextModel | None,
                       config: Config) -> tuple[list[Hit], list[Look]]:
    """The red-line model's hits that stand alone, read twice: those the two readings do not support.

    The model reads what the first pass wrote, and the first pass garbles: on spoken service turns
    "不客气，还有什么想问的吗" was written "不客气吗?…", which the model took for a counter-question
    (P 0.64). A model hit no lexicon red line covers is decoded again as a near-threshold turn is
    (larger beam, no hotwords). The second decoding is not a better transcript, only another
    reading of the same audio (on the spoken dev calls it garbles insults the first pass had
    nearly right about as often as the reverse), so neither reading decides alone: the hit stays
    when a red-line rule fires on the new text or the model's probabilities of the two readings
    average at least its threshold. At most ``second_look_max_per_call`` hits are looked at, most
    probable first; the others stay.

    Off by default (``[text] second_look_model_hits``): on the spoken benchmark it removed the one
    model hit left on 589 spoken service turns and one false flag on held-out lines, but also two
    held-out insults ("闭上你的嘴" heard "逼上你的嘴…", whose second reading scored 0.37), and one
    red-line call then passed. A dropped hit turns "needs review" into a pass; see
    ``docs/redlines.md``.

    Returns:
        The hits to drop, and every look.
    """
    if model is None:
        return [], []
    cls = config.classifier
    cut = model_threshold(model, cls.redline_threshold)
    lexical = [h for h in hits if _lexical_redline(h) and h.severity != "info"]
    alone = sorted((h for h in hits if h.rule_id == RULE_ID and h.match_type == "model"
                    and '"second_look"' not in h.detail  # decoded again already
                    and not any(x.start_s < h.end_s and h.start_s < x.end_s for x in lexical)),
                   key=lambda h: -h.confidence)[: config.text.second_look_max_per_call]
    dropped: list[Hit] = []
    looks: list[Look] = []
    for hit in alone:
        candidate = Candidate(hit.role, hit.start_s, hit.end_s, "model", heard=hit.matched_text,
                              probability=hit.confidence)
        text = decode(whisper, _audio(call, candidate, config.text.second_look_pad_s), config, None)
        again = _again(candidate, text, evidence, config)
        fired = any(_lexical_redline(h) for h in detect_phrases(again, matcher, config.text))
        second = max((s.probability for s in score_turns(again, model, (again.utterances[0].role,),
                                                         cls.redline_min_chars, config.text.turn_max_gap_s)),
                     default=0.0)
        kept = fired or (hit.confidence + second) / 2 >= cut
        looks.append(Look(candidate, text, kept))
        if not kept:
            dropped.append(hit)
    return dropped, looks


def fits_as_well(scorer: ForcedScorer, audio: np.ndarray, text: str, plain: str, config: Config) -> bool:
    """Whether ``audio``, scored without hotwords, fits ``text`` about as well as Whisper's plain reading.

    The sound check's test (:mod:`pipeline.text.sound_check`): ``text`` scores at most
    ``[text] sound_check_max_drop`` below ``plain``, and its own tokens have a geometric mean
    probability of at least ``sound_check_min_phrase_prob``. An empty plain reading (Whisper hears
    no words without the hotwords) supports nothing.
    """
    if not plain.strip() or not text.strip():
        return False
    return supports(*fit(*scorer.score(audio, [plain, text])), config.text)


__all__ = ["MAX_STRETCH_S", "Candidate", "Look", "candidates", "decode", "fits_as_well", "recheck_model_hits",
           "same_words", "second_look"]
