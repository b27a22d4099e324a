"""Clean up recognised text and distrust what Whisper may have made up.

Conversion to Simplified Chinese (OpenCC ``t2s``), the known-hallucination
lexicon (``lexicons/hallucinations.txt``) and the guard that marks an
utterance ``suspect`` with a reason. Used by :func:`pipeline.asr.transcribe.transcribe_call`
for every transcriber, real or fake. Later detectors never raise a red-line
hit from a suspect utterance unless ``text.suspect_can_raise_fatal`` is set.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pipeline.chinese import matching_form, to_simplified
from pipeline.config import AsrConfig, GuardConfig
from pipeline.errors import LexiconError
from pipeline.paths import read_text_file, resolve
from pipeline.records import SpeechSegment, Utterance


@dataclass(frozen=True)
class HallucinationLexicon:
    """Known Whisper hallucinations: ``contains`` match anywhere, ``exact`` the whole utterance."""

    contains: tuple[str, ...]
    exact: frozenset[str]

    def match(self, text: str) -> str | None:
        """The entry ``text`` matches, or None."""
        normalized = matching_form(text)
        if normalized in self.exact:
            return normalized
        return next((entry for entry in self.contains if entry in normalized), None)


def parse_hallucination_lexicon(lines: Iterable[str], source: str) -> HallucinationLexicon:
    """Parse the lexicon format: one phrase a line, ``#`` comments, ``= phrase`` for whole-utterance."""
    contains, exact = [], set()
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        whole = line.startswith("=")
        phrase = matching_form(line[1:] if whole else line)
        if not phrase:
            raise LexiconError(source, f"line {number}: no characters left after removing punctuation")
        (exact.add(phrase) if whole else contains.append(phrase))
    return HallucinationLexicon(tuple(contains), frozenset(exact))


def load_hallucination_lexicon(name: str) -> HallucinationLexicon:
    """Load a lexicon: ``callqa:lexicons/NAME`` (shipped with callqa) or a file path.

    Raises:
        LexiconError: the file cannot be read or a line is empty after normalisation.
    """
    try:
        text = read_text_file(resolve(name))
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(name, f"cannot read the hallucination lexicon: {exc}") from None
    return parse_hallucination_lexicon(text.splitlines(), name)


#: What a decoder writes for bytes that are not a whole UTF-8 character.
REPLACEMENT_CHARACTER = "\ufffd"


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _vad_overlap_share(utterance: Utterance, speech: Sequence[SpeechSegment]) -> float:
    if utterance.duration_s <= 0:
        inside = any(s.start_s <= utterance.start_s <= s.end_s for s in speech)
        return 1.0 if inside else 0.0
    covered = sum(max(0.0, min(s.end_s, utterance.end_s) - max(s.start_s, utterance.start_s)) for s in speech)
    return min(1.0, covered / utterance.duration_s)


def suspect_reasons(utterance: Utterance, speech: Sequence[SpeechSegment], guard: GuardConfig,
                    lexicon: HallucinationLexicon, initial_prompt: str = "", redecoded: bool = False) -> list[str]:
    """Why the hallucination guard distrusts ``utterance`` (empty list: it does not).

    Reasons: ``outside_vad`` (less than ``guard.min_vad_overlap`` of it inside
    VAD speech), ``no_speech`` (very high no-speech probability, or a high one
    with low log-probability; text decoded again must stay at or below
    ``guard.redecode_no_speech_prob_max`` on its own: every extra decoding is
    another chance for a hallucination to slip through), ``repetitive``
    (compression ratio), ``known_hallucination`` (lexicon entry) and
    ``prompt_echo`` (Whisper repeating its initial prompt).
    """
    reasons = []
    share = _vad_overlap_share(utterance, speech)
    if share < guard.min_vad_overlap:
        reasons.append(f"outside_vad({share:.2f})")
    if utterance.no_speech_prob > guard.no_speech_prob_alone_max or (
            utterance.no_speech_prob > guard.no_speech_prob_max and utterance.avg_logprob < guard.logprob_min) or (
            redecoded and utterance.no_speech_prob > guard.redecode_no_speech_prob_max):
        reasons.append(f"no_speech({utterance.no_speech_prob:.2f},{utterance.avg_logprob:.2f})")
    ratio = max(utterance.compression_ratio, _compression_ratio(utterance.text))
    if ratio > guard.compression_ratio_max:
        reasons.append(f"repetitive({ratio:.2f})")
    entry = lexicon.match(utterance.text)
    if entry is not None:
        reasons.append(f"known_hallucination({entry})")
    prompt = matching_form(initial_prompt)
    text = matching_form(utterance.text)
    if len(text) >= guard.prompt_echo_min_chars and prompt and (text in prompt or prompt in text):
        reasons.append("prompt_echo")
    return reasons


def finalize_utterance(utterance: Utterance, speech: Sequence[SpeechSegment], asr: AsrConfig,
                       lexicon: HallucinationLexicon, redecoded: bool = False) -> Utterance | None:
    """Simplify the text and apply the guard (``redecoded``: text of a second decoding); None when no text is left.

    U+FFFD, what is left of a character whose bytes a decoding cut in two (a
    segment that ended mid-token), is removed: nobody said it.
    """
    text = utterance.text.replace(REPLACEMENT_CHARACTER, "").strip()
    words = tuple(replace(w, text=w.text.replace(REPLACEMENT_CHARACTER, "")) for w in utterance.words)
    words = tuple(w for w in words if w.text.strip())
    if asr.to_simplified:
        text = to_simplified(text)
        words = tuple(replace(w, text=to_simplified(w.text)) for w in words)
    if not matching_form(text):
        return None
    result = replace(utterance, text=text, words=words)
    reasons = suspect_reasons(result, speech, asr.guard, lexicon, asr.initial_prompt, redecoded)
    if reasons:
        prior = [utterance.suspect_reason] if utterance.suspect else []
        result = replace(result, suspect=True, suspect_reason=";".join(prior + reasons))
    return result


def mark_repeats(utterances: Sequence[Utterance], guard: GuardConfig) -> list[Utterance]:
    """Mark runs of identical text on one channel as suspect (Whisper looping on noise).

    A run of ``guard.repeat_run_min`` or more consecutive utterances with the
    same text of at least ``guard.repeat_min_chars`` characters is a decoding
    loop, not a person repeating themselves.
    """
    result = list(utterances)
    keys = [matching_form(u.text) for u in result]
    start = 0
    while start < len(result):
        end = start
        while end + 1 < len(result) and keys[end + 1] == keys[start]:
            end += 1
        run = end - start + 1
        if run >= guard.repeat_run_min and len(keys[start]) >= guard.repeat_min_chars:
            for index in range(start, end + 1):
                u = result[index]
                reason = ";".join(filter(None, [u.suspect_reason, f"repeated({run})"]))
                result[index] = replace(u, suspect=True, suspect_reason=reason)
        start = end + 1
    return result
