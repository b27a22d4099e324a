"""How well does a stretch of audio fit a given text? Whisper's forced (teacher-forced) score.

Whisper's beam search writes one reading of the audio. Asked instead to *score* a text it
did not choose (CTranslate2's ``Whisper.align``, the same call faster-whisper uses for word
timestamps), the decoder gives the probability of every token of that text given the audio.
The sum of their logarithms, compared with the same sum for what the beam wrote, says how
much worse (or better) the audio fits the other text: a **log ratio** near 0 means Whisper
could hardly tell the two apart ("嫌贵你别买" against the written "玄棍你别买"); a red-line
phrase forced onto ordinary speech scores 10 to 40 lower.

Used by :mod:`pipeline.text.sound_check`. One stretch costs one encoder pass over the stretch
(plus :data:`PAD_S`) and one decoder pass per text, batched: about 0.1 s for a few seconds of
speech on 2 CPU cores with Whisper base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Whisper's window: a stretch longer than this cannot be scored in one pass.
WINDOW_S = 30.0
#: Padding (seconds, as Whisper pads: zero features) after the stretch before it is encoded. Whisper
#: pads every window to 30 s; CTranslate2 also encodes a shorter input, which costs a fraction (0.12 s
#: instead of 0.91 s a stretch for Whisper base on 2 cores). On the spoken benchmark's dev split the
#: sound check found the same lines either way (recall 0.951 with 1 s, 0.945 with the full window).
PAD_S = 1.0
#: Texts scored in one batch (the encoder output is repeated once per text).
_BATCH = 16
#: Floor of a token probability before its logarithm (a probability of 0 would be -inf).
_MIN_PROB = 1e-9


@dataclass(frozen=True)
class Scored:
    """One text scored against the audio: its tokens and each token's log probability."""

    tokens: tuple[int, ...]
    log_probs: tuple[float, ...]

    @property
    def total(self) -> float:
        """The text's log probability given the audio."""
        return float(sum(self.log_probs))

    def changed_mean(self, other: Scored) -> float:
        """Mean log probability of this text's tokens that ``other`` does not share (their common
        first and last tokens left out); of all its tokens when none differ."""
        start = 0
        while start < min(len(self.tokens), len(other.tokens)) and self.tokens[start] == other.tokens[start]:
            start += 1
        end = 0
        while (end < min(len(self.tokens), len(other.tokens)) - start
               and self.tokens[-1 - end] == other.tokens[-1 - end]):
            end += 1
        changed = self.log_probs[start:len(self.log_probs) - end] or self.log_probs
        return float(np.mean(changed))


class ForcedScorer:
    """Scores texts against a stretch of audio with a faster-whisper ``WhisperModel``."""

    def __init__(self, whisper: Any, language: str = "zh", pad_s: float | None = PAD_S) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.whisper = whisper
        self.pad_s = pad_s
        self.tokenizer = Tokenizer(whisper.hf_tokenizer, True, task="transcribe", language=language)

    def score(self, audio: np.ndarray, texts: Sequence[str]) -> list[Scored]:
        """Each text's tokens and their log probabilities given ``audio`` (16 kHz mono, at most 30 s).

        Raises:
            ValueError: the audio is longer than one Whisper window, or a text is empty.
        """
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_ctranslate2_storage

        if len(audio) > WINDOW_S * 16000:
            raise ValueError(f"forced scoring takes at most {WINDOW_S:g} s of audio, got {len(audio) / 16000:.1f} s")
        tokens = [self.tokenizer.encode(t) for t in texts]
        if any(not t for t in tokens):
            raise ValueError("forced scoring needs non-empty texts")
        features = self.whisper.feature_extractor(np.ascontiguousarray(audio, dtype=np.float32))
        frames = int(features.shape[-1])
        # a stretch padded to Whisper's 30 s window (pad_s None), or by pad_s only (see PAD_S); to_cpu:
        # the encoder output is repeated per text on the host (a GPU model's would stay on the GPU)
        length = 3000 if self.pad_s is None else min(3000, frames + round(self.pad_s * 100))
        encoded = np.array(self.whisper.model.encode(get_ctranslate2_storage(pad_or_trim(features, length)[None]),
                                                     to_cpu=True))
        out: list[Scored] = []
        for first in range(0, len(tokens), _BATCH):
            batch = tokens[first:first + _BATCH]
            repeated = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.repeat(encoded, len(batch), 0)))
            results = self.whisper.model.align(repeated, self.tokenizer.sot_sequence, batch, [frames] * len(batch))
            for text_tokens, result in zip(batch, results, strict=True):
                probs = np.maximum(np.asarray(result.text_token_probs, np.float64), _MIN_PROB)
                out.append(Scored(tuple(text_tokens), tuple(float(x) for x in np.log(probs))))
        return out


__all__ = ["PAD_S", "WINDOW_S", "ForcedScorer", "Scored"]
