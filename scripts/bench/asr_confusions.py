"""Which syllables Whisper mishears on 8 kHz telephone Mandarin: the evidence for pipeline/text/fuzzy.py.

Two sources, both through the pipeline's own transcription (:func:`pipeline.analysis.transcribe_audio`,
embedded Whisper base; output cached like the spoken benchmark's, so the figures below are for
the transcription code of the day they were run):

1. the real clips with reference transcripts in ``../shared/data/speech`` (AISHELL, WenetSpeech,
   FunASR), each at three speeds (0.95, 1.0, 1.05) through a telephone line (300-3400 Hz,
   8 kHz μ-law, noise at 20 dB SNR);
2. the agent lines of the spoken benchmark's ``dev`` split (offline TTS; never the held-out split).

Reference and recognised text are aligned character by character (Levenshtein); every substituted
pair is compared in toneless pinyin and counted as an initial confusion, a final confusion or both;
dropped characters at the start of a line are counted apart. Printed: the most frequent
confusions, and how many substituted syllables each confusion class of
:mod:`pipeline.text.fuzzy` bridges.

    python scripts/bench/asr_confusions.py
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.analysis import Resources  # noqa: E402
from pipeline.asr.transcribe import WhisperTranscriber  # noqa: E402
from pipeline.chinese import matching_form  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.paths import cache_root  # noqa: E402
from pipeline.records import AGENT, SAMPLE_RATE_HZ, Call, Channel  # noqa: E402
from pipeline.text.fuzzy import sound_class, split_syllable, syllables  # noqa: E402
from scripts.bench.spoken_calls import build_calls, find_tts_python, group_lines, load_lines, synthesize  # noqa: E402
from scripts.bench.spoken_eval import TranscriptCache, heard_text  # noqa: E402
from scripts.make_calls import TEXT_CLIPS, ClipBank, telephone_channel  # noqa: E402

#: The confusions textbooks name for Southern-accented Mandarin, counted both ways whether or not
#: they are frequent, so a decision to merge or not to merge one in fuzzy.py rests on a figure.
TEXTBOOK_PAIRS = (("initial", "n", "l"), ("initial", "zh", "z"), ("initial", "ch", "c"), ("initial", "sh", "s"),
                  ("initial", "f", "h"), ("final", "in", "ing"), ("final", "en", "eng"), ("final", "an", "ang"),
                  ("final", "ong", "eng"))


def align(ref: str, hyp: str) -> list[tuple[str, str]]:
    """Character alignment: (ref, hyp) pairs, "" for an insertion or deletion."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs = []
    i, j = n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((ref[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def count(pairs_by_line: Sequence[list[tuple[str, str]]]) -> dict[str, Counter[str]]:
    """Confusion counters over aligned lines (see the module docstring)."""
    cache: dict[str, str] = {}
    out: dict[str, Counter[str]] = {k: Counter() for k in ("initial", "final", "kind", "class", "syllable")}
    for pairs in pairs_by_line:
        for index, (r, h) in enumerate(pairs):
            if r and not h:
                out["kind"]["dropped first" if index == 0 else "dropped"] += 1
                continue
            if not r or r == h:
                out["kind"]["inserted" if not r else "same character"] += 1
                continue
            (rs,), (hs,) = syllables(r, cache), syllables(h, cache)
            if rs == hs:
                out["kind"]["homophone (toneless)"] += 1
                continue
            out["syllable"][f"{rs}->{hs}"] += 1
            (ri, rf), (hi, hf) = split_syllable(rs), split_syllable(hs)
            if ri != hi:
                out["initial"][f"{ri or '∅'}->{hi or '∅'}"] += 1
            if rf != hf:
                out["final"][f"{rf}->{hf}"] += 1
            out["kind"]["initial only" if rf == hf else "final only" if ri == hi else "initial and final"] += 1
            out["class"]["same class" if sound_class(rs) == sound_class(hs) else "other class"] += 1
    return out


def _clip_lines(bank: ClipBank, resources: Resources, transcribe: TranscriptCache) -> list[tuple[str, str]]:
    lines = []
    rng = np.random.default_rng(0)
    for name in TEXT_CLIPS:
        if name not in bank.audio or not bank.texts.get(name):
            continue
        for speed in (0.95, 1.0, 1.05):
            audio = resample_poly(bank.audio[name], 1000, int(round(1000 * speed))).astype(np.float32)
            audio = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(8000, np.float32)])
            line = telephone_channel(audio, snr_db=20.0, rng=rng)
            call = Call(f"{name}-{speed}", "", "", (Channel(AGENT, line),), SAMPLE_RATE_HZ, 1, "pcm_mulaw", "wav",
                        len(line) / SAMPLE_RATE_HZ)
            heard = "".join(u.text for u in transcribe(call, resources).utterances)
            lines.append((bank.texts[name], heard))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=15, help="the spoken benchmark's seed")
    args = parser.parse_args(argv)
    config = load_config()
    resources = Resources.load(config, text=False)
    assert isinstance(resources.transcriber, WhisperTranscriber)
    transcribe = TranscriptCache(cache_root() / "spoken" / "asr")
    bank = ClipBank.load()
    sources = {"real clips": _clip_lines(bank, resources, transcribe)}
    tts = find_tts_python()
    if tts is None:
        print("no TTS environment: the spoken dev lines are left out")
    else:
        from pipeline.text.rules import load_rules

        lines = [x for x in load_lines(load_rules()) if x.split == "dev"]
        calls = build_calls(group_lines(lines, args.seed), synthesize([x.text for x in lines], tts), bank,
                            args.seed, "dev")
        spoken = []
        for c in calls:
            call = Call(c.call_id, "", "", (Channel(AGENT, c.audio[:, 0]), Channel("customer", c.audio[:, 1])),
                        SAMPLE_RATE_HZ, 2, "pcm_mulaw", "wav", len(c.audio) / SAMPLE_RATE_HZ)
            heard = heard_text(c, transcribe(call, resources).utterances)
            spoken += [(s.line.text, h) for s, h in zip(c.lines, heard, strict=True)]
        sources["spoken dev lines"] = spoken
    for name, lines in sources.items():
        pairs = [align(matching_form(ref), matching_form(hyp)) for ref, hyp in lines]
        counts = count(pairs)
        chars = sum(len(matching_form(ref)) for ref, _ in lines)
        print(f"\n== {name}: {len(lines)} lines, {chars} reference characters ==")
        for key in ("kind", "class", "initial", "final", "syllable"):
            print(f"{key:>8}: " + ", ".join(f"{k} {v}" for k, v in counts[key].most_common(14)))
        print("textbook: " + ", ".join(f"{a}<->{b} {counts[key][f'{a}->{b}'] + counts[key][f'{b}->{a}']}"
                                       for key, a, b in TEXTBOOK_PAIRS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
