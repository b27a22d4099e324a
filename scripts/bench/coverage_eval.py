"""Is every second of speech accounted for? Coverage, CER, gaps, interruptions and onsets on built calls.

Builds ``--calls`` stereo calls from the real clips in ``../shared/data/speech``
(:func:`scripts.make_calls.stress_layout`: overlaps of 0.5-4 s, long turns of
several clips back to back or 15-35 s of continuous speech, 8 kHz G.711 μ-law
with band-pass and white noise at ``--snr-db``), writes each as a telephone
WAV, decodes it with :func:`pipeline.audio.decode.load_call` and runs
:func:`pipeline.analysis.analyse_call` twice on the same calls:

- ``first-pass``: ``[asr] redecode = false`` (what the first, shared-window
  pass gives, loops cut);
- ``callqa``: the default configuration (speech left without text decoded again).

With ``--baseline`` it also runs plain faster-whisper (same model, defaults,
``vad_filter=True``, ``word_timestamps=True`` to place its words) on each
channel separately, as a user who needs roles would. It prints, per variant:

- coverage per role of the *reference* speech (the clips' speech spans): the
  share within ``[asr] coverage_word_margin_s`` of a recognised word; and the
  stored feature (share of VAD speech); goal >= 0.98 per role;
- CER per role over the clips with a verified reference (the role's words
  that fall within each clip, after t2s and without punctuation);
- gaps: reference speech without text (pieces >= ``[asr] gap_min_s``) and the
  share of it that a stored gap marks (goal: every one), the reasons, and the
  share of gap time that lies on reference speech;
- interruptions: precision and recall by overlap length (the time both speak);
  goal >= 0.95 for overlaps >= 1 s;
- onsets: word and utterance start minus the clip's speech onset, median;
  goal |median| <= 0.1 s;
- outcome: calls marked needs_listening for low coverage;
- wall time per variant (ratios, same run).

Then the real clips one by one (16 kHz and 8 kHz μ-law, mono): CER and coverage
without and with re-decoding.

    python scripts/bench/coverage_eval.py --calls 30 --baseline
    python scripts/bench/coverage_eval.py --calls 3 --turns 6        # quick
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.analysis import CallAnalysis, Resources, analyse_call, timed_evidence  # noqa: E402
from pipeline.asr.coverage import crosstalk_of, decoded_segments, text_spans  # noqa: E402
from pipeline.asr.transcribe import describe_passes  # noqa: E402
from pipeline.audio.decode import load_call  # noqa: E402
from pipeline.audio.loudness import LoudnessTrack, noise_floor_db  # noqa: E402
from pipeline.chinese import matching_form  # noqa: E402
from pipeline.config import Config, load_config  # noqa: E402
from pipeline.records import AGENT, CUSTOMER, SpeechSegment, Utterance, Word  # noqa: E402
from pipeline.spans import overlap_s, subtract, total_s, union  # noqa: E402
from pipeline.timing.interruptions import find_interruptions  # noqa: E402
from scripts.make_calls import (  # noqa: E402
    TEXT_CLIPS,
    ClipBank,
    build_call,
    reported_interruptions,
    stress_layout,
    write_call,
)

ROLES = (AGENT, CUSTOMER)
#: Overlap lengths (time both speak, s) the interruption table is split by.
BUCKETS = ((0.3, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.5))
#: A detected interruption matches a true one of the same role starting this close.
START_TOLERANCE_S = 0.5
Span = tuple[float, float]


@dataclass
class Score:
    """Everything one variant measured over all calls."""

    wall_s: float = 0.0
    speech_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))
    covered_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))
    feature_coverage: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROLES})
    refs: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in ROLES})
    hyps: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in ROLES})
    missing_s: float = 0.0
    missing_outside_vad_s: float = 0.0
    missing_marked_s: float = 0.0
    missing_pieces: int = 0
    missing_pieces_marked: int = 0
    gap_s: float = 0.0
    gap_on_speech_s: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    interruptions: dict[Span, list[int]] = field(default_factory=lambda: {b: [0, 0, 0, 0] for b in BUCKETS})
    word_onsets: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROLES})
    utterance_onsets: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROLES})
    low_coverage_calls: int = 0
    calls: int = 0
    asr_stats: Counter = field(default_factory=Counter)
    #: what was missed, one line each (--show-misses): unmarked pieces, missed and false interruptions >= 1 s
    misses: list[str] = field(default_factory=list)


def truth_speech(truth: dict[str, Any], role: str) -> list[Span]:
    return union(tuple(s) for c in truth["clips"] if c["role"] == role for s in c["spans"])


def score_transcript(score: Score, truth: dict[str, Any], utterances: Sequence[Utterance], margin_s: float,
                     gap_min_s: float, reach: Sequence[SpeechSegment] = ()) -> None:
    """Coverage of the reference speech (words reaching the edges of ``reach``, as the pipeline
    counts them), CER per clip and onsets of one call's transcript."""
    for role in ROLES:
        speech = truth_speech(truth, role)
        covered = text_spans(utterances, role, margin_s, reach)
        score.speech_s[role] += total_s(speech)
        score.covered_s[role] += overlap_s(speech, covered)
        words = [w for u in utterances if u.role == role for w in (u.words or (Word(u.text, u.start_s, u.end_s,
                                                                                      1.0),))]
        for clip in truth["clips"]:
            if clip["role"] != role or not clip["spans"]:
                continue
            onset, last = clip["spans"][0][0], clip["spans"][-1][1]
            if clip["text"] and clip["clip"] in TEXT_CLIPS:
                said = "".join(w.text for w in words if onset - 0.5 <= (w.start_s + w.end_s) / 2 <= last + 0.5)
                score.refs[role].append(matching_form(clip["text"]))
                score.hyps[role].append(matching_form(said) or "-")
            first = [w for w in words if w.end_s > onset - 0.5 and w.start_s < onset + 1.0]
            if first:
                score.word_onsets[role].append(min(w.start_s for w in first) - onset)
            starts = [u.start_s for u in utterances if u.role == role and abs(u.start_s - onset) <= 1.0]
            if starts:
                score.utterance_onsets[role].append(min(starts, key=lambda s: abs(s - onset)) - onset)


def score_gaps(score: Score, truth: dict[str, Any], analysed: CallAnalysis, margin_s: float,
               gap_min_s: float, reach: Sequence[SpeechSegment] = (), label: str = "") -> None:
    """Reference speech without text vs the gaps the pipeline stored."""
    for role in ROLES:
        speech = truth_speech(truth, role)
        covered = text_spans(analysed.transcript.utterances, role, margin_s, reach)
        missing = [(a, b) for a, b in subtract(speech, covered) if b - a >= gap_min_s]
        marked = union((g.start_s, g.end_s) for g in analysed.transcript.gaps if g.role == role)
        vad = union((x.start_s, x.end_s) for x in analysed.transcript.segments if x.role == role)
        score.missing_s += total_s(missing)
        score.missing_outside_vad_s += total_s(missing) - overlap_s(missing, vad)
        score.missing_marked_s += overlap_s(missing, marked)
        score.missing_pieces += len(missing)
        score.missing_pieces_marked += sum(1 for m in missing if overlap_s([m], marked) >= 0.5 * (m[1] - m[0]))
        track = analysed.transcript.tracks.get(role)
        score.misses += [f"{label} {role} {a:.2f}-{b:.2f} s: speech without text, not marked"
                         f"{' (outside VAD speech)' if overlap_s([(a, b)], vad) < 0.5 * (b - a) else ''}"
                         f"{_loudness_note(track, a, b)}"
                         for a, b in missing if overlap_s([(a, b)], marked) < 0.5 * (b - a)]
        score.gap_s += total_s(marked)
        score.gap_on_speech_s += overlap_s(marked, speech)
    score.reasons.update(g.reason for g in analysed.transcript.gaps)


def _loudness_note(track: LoudnessTrack | None, start_s: float, end_s: float) -> str:
    """How loud the piece is on the line: its loudest 0.3 s over the channel's noise floor (the 10th
    percentile of frames outside VAD speech, as ``[asr] sound_above_floor_db`` counts)."""
    floor = noise_floor_db(track) if track is not None else None
    if track is None or floor is None:
        return ""
    first = int(start_s / track.frame_s)
    last = max(first + 1, int(np.ceil(end_s / track.frame_s)))
    levels = np.convolve(track.dbfs, np.ones(3) / 3, mode="same")[first:last]
    return f"; loudest 0.3 s {float(levels.max()) - floor:+.1f} dB over the line noise" if levels.size else ""


def true_interruptions(truth: dict[str, Any], config: Config) -> list[tuple[str, float, float]]:
    """(by, start_s, overlap_s) of the interruptions the detector should report."""
    return [(i["by"], i["start_s"], i["overlap_s"]) for i in reported_interruptions(truth, config.timing)]


def score_interruptions(score: Score, truth: dict[str, Any], analysed: CallAnalysis, resources: Resources,
                        label: str = "") -> None:
    """Per overlap bucket: [true found, true missed, found right, found wrong]."""
    expected = true_interruptions(truth, resources.config)
    timed = timed_evidence(analysed.evidence, resources, analysed.transcript.tracks)
    found = find_interruptions(timed, resources.config.timing, resources.rules.lists.get("backchannel", ()))
    used: set[int] = set()
    for by, start, overlap in expected:
        j = next((j for j, f in enumerate(found) if j not in used and f.by == by
                  and abs(f.start_s - start) <= START_TOLERANCE_S), None)
        bucket = _bucket(overlap)
        if bucket is not None:
            score.interruptions[bucket][0 if j is not None else 1] += 1
        if j is not None:
            used.add(j)
        elif overlap >= 1.0:
            score.misses.append(f"{label} interruption by {by} at {start:.2f} s ({overlap:.1f} s overlap) missed")
    for j, f in enumerate(found):
        bucket = _bucket(f.both_s)
        if bucket is not None:
            score.interruptions[bucket][2 if j in used else 3] += 1
        if j not in used and f.both_s >= 1.0:
            score.misses.append(f"{label} interruption by {f.by} at {f.start_s:.2f} s ({f.both_s:.1f} s overlap) "
                                f"found, not in the truth")


def _bucket(overlap_s: float) -> Span | None:
    return next((b for b in BUCKETS if b[0] <= overlap_s < b[1]), None)


def per_channel_baseline(model: Any, call: Any) -> list[Utterance]:
    """Plain faster-whisper on each channel separately (defaults, its own VAD), words on the call clock."""
    utterances = []
    for channel in call.channels:
        segments, _info = model.transcribe(channel.samples, vad_filter=True, word_timestamps=True)
        for s in segments:
            words = tuple(Word(w.word.strip(), float(w.start), max(float(w.start), float(w.end)),
                               float(min(1.0, max(0.0, w.probability)))) for w in s.words or () if w.word.strip())
            if words:
                utterances.append(Utterance(channel.role, words[0].start_s, words[-1].end_s, s.text, words))
    return utterances


def run_calls(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    variants = {"first-pass": config.with_overrides({"asr": {"redecode": False, "decode_vad_missed": False}}),
                "callqa": config}
    base = Resources.load(config)
    resources = {name: Resources.load(c, transcriber=base.transcriber) for name, c in variants.items()}
    scores = {name: Score() for name in [*variants, *(["per-channel"] if args.baseline else [])]}
    bank = ClipBank.load()
    rng = np.random.default_rng(args.seed)
    margin, gap_min = config.asr.coverage_word_margin_s, config.asr.gap_min_s
    audio_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.calls):
            layout = stress_layout(bank, rng, turns=args.turns)
            audio, truth = build_call(layout, bank, telephone=True, snr_db=args.snr_db, seed=args.seed * 1000 + index,
                                      crosstalk_db=args.crosstalk_db)
            path = write_call(Path(tmp), f"call_{index:03d}", audio, truth, telephone=True)
            call = load_call(path, config)
            audio_s += call.duration_s
            for name, res in resources.items():
                started = time.perf_counter()
                with _asr_stats() as stats:
                    analysed = analyse_call(call, res, {"call_date": "2026-11-23"})
                score = scores[name]
                score.asr_stats.update(stats)
                score.wall_s += time.perf_counter() - started
                score.calls += 1
                segments = analysed.transcript.segments
                reach = (decoded_segments(segments, crosstalk_of(segments, res.config.asr))
                         if res.config.asr.coverage_snap_words else ())
                score_transcript(score, truth, analysed.transcript.utterances, margin, gap_min, reach)
                score_gaps(score, truth, analysed, margin, gap_min, reach, label=call.call_id)
                score_interruptions(score, truth, analysed, res, label=call.call_id)
                features = analysed.analysis.features
                for role in ROLES:
                    if features.get(f"{role}_coverage") is not None:
                        score.feature_coverage[role].append(features[f"{role}_coverage"])
                if any(r.startswith("low_coverage") for r in features.get("outcome_reasons") or ()):
                    score.low_coverage_calls += 1
            if args.baseline:
                started = time.perf_counter()
                utterances = per_channel_baseline(base.transcriber.model, call)  # type: ignore[union-attr]
                scores["per-channel"].wall_s += time.perf_counter() - started
                scores["per-channel"].calls += 1
                score_transcript(scores["per-channel"], truth, utterances, margin, gap_min)
            print(f"call {index + 1}/{args.calls}: {call.duration_s:.0f} s, "
                  f"{len(truth['interruptions'])} overlaps", file=sys.stderr)
    leak = f", crosstalk at -{args.crosstalk_db:g} dB" if args.crosstalk_db is not None else ""
    print(f"\n{args.calls} built calls, {audio_s / 60:.1f} min, stereo 8 kHz mu-law, "
          f"noise SNR {args.snr_db:g} dB{leak}, "
          f"{args.turns} turns each (overlaps 0.5-4 s, long turns); model {base.transcriber.model_id}")  # type: ignore[union-attr]
    print_scores(scores, config)
    if args.show_misses:
        print("\nmisses [callqa]:" if scores["callqa"].misses else "\nmisses [callqa]: none")
        for line in scores["callqa"].misses:
            print(f"  {line}")


@contextlib.contextmanager
def _asr_stats() -> Iterator[Counter]:
    """What the transcriber spent inside ``analyse_call`` (its stats, summed over the call)."""
    import pipeline.analysis

    stats: Counter = Counter()
    originals = {name: getattr(pipeline.analysis, name) for name in ("transcribe_speech", "decode_unheard")}

    def counting(name: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            result = originals[name](*args, **kwargs)
            before = args[2].stats if name == "decode_unheard" else {}
            stats.update({k: v for k, v in result.stats.items() if k not in before})
            return result
        return run

    for name in originals:
        setattr(pipeline.analysis, name, counting(name))
    try:
        yield stats
    finally:
        for name, original in originals.items():
            setattr(pipeline.analysis, name, original)


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):+.3f}" if values else "   n/a"


def print_scores(scores: dict[str, Score], config: Config) -> None:
    reference = scores["first-pass"].wall_s
    print(f"\n{'variant':<12}{'wall s':>8}{'ratio':>7}  {'coverage agent':>15}{'customer':>9}"
          f"  {'VAD-cov agent':>14}{'customer':>9}  {'CER agent':>10}{'customer':>9}  needs_listening")
    for name, s in scores.items():
        cov = {r: s.covered_s[r] / s.speech_s[r] if s.speech_s[r] else float("nan") for r in ROLES}
        vad = {r: float(np.mean(s.feature_coverage[r])) if s.feature_coverage[r] else float("nan") for r in ROLES}
        cer = {r: jiwer.cer(s.refs[r], s.hyps[r]) if s.refs[r] else float("nan") for r in ROLES}
        print(f"{name:<12}{s.wall_s:>8.1f}{s.wall_s / reference:>6.2f}x  {cov[AGENT]:>15.3f}{cov[CUSTOMER]:>9.3f}"
              f"  {vad[AGENT]:>14.3f}{vad[CUSTOMER]:>9.3f}  {cer[AGENT]:>10.3f}{cer[CUSTOMER]:>9.3f}"
              + (f"  {s.low_coverage_calls}/{s.calls}" if name != "per-channel" else ""))
    print("goal: coverage >= 0.98 of reference speech per role")
    for name, s in scores.items():
        if name == "per-channel":
            continue
        marked = s.missing_marked_s / s.missing_s if s.missing_s else 1.0
        print(f"\ngaps [{name}]: reference speech without text {s.missing_s:.1f} s in {s.missing_pieces} pieces "
              f"({s.missing_outside_vad_s:.1f} s of it outside VAD speech); "
              f"marked by a stored gap {marked:.1%} of the time, {s.missing_pieces_marked}/{s.missing_pieces} pieces "
              f"(goal: all); stored gaps {s.gap_s:.1f} s, {s.gap_on_speech_s / s.gap_s if s.gap_s else 1:.0%} on "
              f"reference speech; reasons {dict(s.reasons)}")
        print(f"ASR time [{name}]: " + ", ".join(describe_passes(s.asr_stats, config.asr.redecode_passes)))
        print(f"interruptions [{name}] by overlap (time both speak):")
        total = [0, 0, 0, 0]
        long = [0, 0, 0, 0]
        for (low, high), (hit, miss, right, wrong) in s.interruptions.items():
            recall = hit / (hit + miss) if hit + miss else float("nan")
            precision = right / (right + wrong) if right + wrong else float("nan")
            print(f"  {low:.1f}-{high:.1f} s: truth {hit + miss:3d} found {right + wrong:3d}  precision "
                  f"{precision:.3f}  recall {recall:.3f}")
            for i, v in enumerate((hit, miss, right, wrong)):
                total[i] += v
                if low >= 1.0:
                    long[i] += v
        for label, (hit, miss, right, wrong) in (("all", total), (">= 1 s", long)):
            print(f"  {label:>7}: precision {right / max(1, right + wrong):.3f} recall {hit / max(1, hit + miss):.3f}"
                  + ("  (goal >= 0.95)" if label != "all" else ""))
        print(f"onsets [{name}] (start - speech onset, median s): words agent {_median(s.word_onsets[AGENT])} "
              f"customer {_median(s.word_onsets[CUSTOMER])}; utterances agent {_median(s.utterance_onsets[AGENT])} "
              f"customer {_median(s.utterance_onsets[CUSTOMER])}; |median| goal <= 0.1")
    s = scores.get("per-channel")
    if s is not None:
        print(f"onsets [per-channel baseline]: words agent {_median(s.word_onsets[AGENT])} customer "
              f"{_median(s.word_onsets[CUSTOMER])}")


def run_clips(args: argparse.Namespace) -> None:
    """The real clips one by one, mono, at 16 kHz and 8 kHz mu-law: CER and coverage without/with re-decoding."""
    import subprocess

    import imageio_ffmpeg

    config = load_config(args.config)
    bank = ClipBank.load()
    variants = {"first-pass": config.with_overrides({"asr": {"redecode": False, "decode_vad_missed": False}}),
                "callqa": config}
    base = Resources.load(config, text=False)
    resources = {name: Resources.load(c, transcriber=base.transcriber, text=False) for name, c in variants.items()}
    names = [n for n in TEXT_CLIPS if n in bank.texts]
    print(f"\nreal clips ({len(names)}, {sum(len(matching_form(bank.texts[n])) for n in names)} reference characters)")
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("16k", "8k-mulaw"):
            line = []
            for name, res in resources.items():
                refs, hyps, coverage = [], [], []
                for clip in names:
                    path = bank.directory / clip
                    if label == "8k-mulaw":
                        target = Path(tmp) / clip
                        if not target.exists():
                            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i",
                                            str(path), "-ar", "8000", "-c:a", "pcm_mulaw", str(target)], check=True)
                        path = target
                    analysed = analyse_call(load_call(path, config), res, {"call_date": "2026-11-23"})
                    refs.append(matching_form(bank.texts[clip]))
                    hyps.append(matching_form("".join(u.text for u in analysed.transcript.utterances)) or "-")
                    coverage.append(analysed.analysis.features.get("mixed_coverage"))
                known = [c for c in coverage if c is not None]
                line.append(f"{name}: CER {jiwer.cer(refs, hyps):.3f} coverage {float(np.mean(known)):.3f}")
            print(f"  {label:9s} " + " | ".join(line))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--crosstalk-db", type=float, default=None,
                        help="each side also leaks into the other channel this many dB down (echo)")
    parser.add_argument("--config", type=Path, default=None,
                        help="a config file over the defaults (e.g. [vad] settings)")
    parser.add_argument("--baseline", action="store_true", help="also plain faster-whisper per channel")
    parser.add_argument("--no-clips", action="store_true", help="skip the real clips one by one")
    parser.add_argument("--show-misses", action="store_true",
                        help="list every unmarked piece of speech without text and every missed or false "
                             "interruption of at least 1 s")
    args = parser.parse_args(argv)
    if args.calls:
        run_calls(args)
    if not args.no_clips:
        run_clips(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
