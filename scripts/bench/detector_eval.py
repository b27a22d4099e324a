"""Precision/recall of the timing detectors on random ground-truth calls (8 kHz μ-law + noise).

Builds ``--calls`` random stereo calls from the real clips
(:mod:`scripts.make_calls`), runs the pipeline's audio stages and timing
detectors (:mod:`pipeline.analysis`) with a perfect transcript (the clips' reference texts), and compares with the
truth:

* silences >= ``timing.silence_min_s``: matched when both boundaries are
  within ``--tolerance-s``;
* interruptions (overlap >= ``interruption_min_overlap_s``, >= N characters,
  not a backchannel): matched on who interrupted and start within tolerance;
* raised voice (a turn >= 6 dB over the speaker's other turns): matched on role
  and any overlap;
* speech rate: mean absolute relative error of each role's pooled rate.

Goal (issue 6): precision and recall >= 0.95 for silence and interruptions,
>= 0.9 for raised voice, rate error <= 5 %.

Each run prints the table for the raw VAD segments (the baseline) and after
onset repair (``[vad]`` and ``[timing] onset_repair``), on the same calls.

    python scripts/bench/detector_eval.py --calls 300
    python scripts/bench/detector_eval.py --calls 20 --clean --segments raw   # quick
    python scripts/bench/detector_eval.py --calls 100 --crosstalk-db 25        # with an echo
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.analysis import Resources, timed_evidence, timing_of, transcribe_audio  # noqa: E402
from pipeline.config import Config, TimingConfig, default_config  # noqa: E402
from pipeline.records import AGENT, CUSTOMER, Call, CallEvidence, Channel  # noqa: E402
from pipeline.timing.detect import TimingResult  # noqa: E402
from pipeline.timing.interruptions import find_interruptions  # noqa: E402
from pipeline.timing.raised_voice import find_raised_voice  # noqa: E402
from pipeline.timing.silence import find_silences  # noqa: E402
from scripts.make_calls import (  # noqa: E402
    BACKCHANNELS,
    ClipBank,
    build_call,
    random_layout,
    reference_utterances,
    reported_interruptions,
)

HOLD_PHRASES = ("请稍等", "我帮您查询一下")


@dataclass
class Analysis:
    """The detectors' view of one built call."""

    evidence: CallEvidence
    result: TimingResult
    silences: list[tuple[float, float]]
    interruptions: list[tuple[str, float, float]]
    raised: list[tuple[str, float, float]]


def analyse(audio: np.ndarray, truth: dict[str, Any], config: Config, *, transcript: bool = True,
            hold_phrases: Sequence[str] = HOLD_PHRASES, backchannels: Sequence[str] = BACKCHANNELS,
            call_id: str = "synthetic", refine: bool = False) -> Analysis:
    """The pipeline's own audio stages and timing detectors on a built call (agent = column 0).

    VAD, onset repair (when ``refine``) and loudness tracks come from
    :func:`pipeline.analysis.transcribe_audio`, the path ``callqa run`` takes; the
    transcript is the clips' reference text, so only the timing detectors are measured.
    """
    channels = tuple(Channel(role, np.ascontiguousarray(audio[:, i])) for i, role in enumerate((AGENT, CUSTOMER)))
    duration_s = len(audio) / 16_000
    metadata = {"hangup_party": truth["hangup_party"]} if truth.get("hangup_party") else {}
    call = Call(call_id, "synthetic.wav", "0", channels, 16_000, 2, "pcm", "wav", duration_s, metadata)
    config = config.model_copy(update={"vad": config.vad.model_copy(update={"onset_repair": refine}),
                                       "timing": config.timing.model_copy(update={"onset_repair": refine})})
    resources = _resources(config, tuple(hold_phrases), tuple(backchannels))
    audio_result = transcribe_audio(call, resources)
    utterances = tuple(reference_utterances(truth)) if transcript else ()
    evidence = CallEvidence(call_id, duration_s, (AGENT, CUSTOMER), audio_result.segments, utterances, metadata)
    result = timing_of(evidence, resources, audio_result.tracks)
    timed = timed_evidence(evidence, resources, audio_result.tracks)  # what detect_timing sees
    silences = [(s.start_s, s.end_s) for s in find_silences(timed, config.timing, hold_phrases)]
    found = find_interruptions(timed, config.timing, backchannels)
    raised, _ = find_raised_voice(timed, config.timing, audio_result.tracks)
    return Analysis(evidence, result, silences, [(i.by, i.start_s, i.end_s) for i in found],
                    [(r.role, r.start_s, r.end_s) for r in raised])


_CACHE: dict[tuple[Any, ...], Resources] = {}


def _resources(config: Config, hold_phrases: tuple[str, ...], backchannels: tuple[str, ...]) -> Resources:
    """Resources without a transcriber whose rule lists hold exactly these hold phrases and backchannels."""
    key = (config.config_hash, hold_phrases, backchannels)
    if key not in _CACHE:
        loaded = Resources.load(config, transcriber=None, text=False)
        rules = dataclasses.replace(loaded.rules, lists={"hold_announcement": hold_phrases,
                                                         "backchannel": backchannels})
        _CACHE[key] = dataclasses.replace(loaded, rules=rules)
    return _CACHE[key]


def true_silences(truth: dict[str, Any], timing: TimingConfig) -> list[tuple[float, float]]:
    """Truth silences the detector should report."""
    return [(s["start_s"], s["end_s"]) for s in truth["silences"] if s["duration_s"] >= timing.silence_min_s]


def true_interruptions(truth: dict[str, Any], timing: TimingConfig,
                       backchannels: Sequence[str] = BACKCHANNELS) -> list[tuple[str, float, float]]:
    """Truth interruptions the detector should report."""
    return [(i["by"], i["start_s"], i["end_s"]) for i in reported_interruptions(truth, timing, backchannels)]


def true_rates(truth: dict[str, Any], timing: TimingConfig) -> dict[str, float]:
    """Each role's pooled rate (chars/min) over clips long enough to judge."""
    rates = {}
    for role in (AGENT, CUSTOMER):
        clips = [c for c in truth["clips"] if c["role"] == role and c["spans"] and c["chars"] > 0
                 and c["spans"][-1][1] - c["spans"][0][0] >= timing.speech_rate_min_utterance_s]
        speech = sum(c["spans"][-1][1] - c["spans"][0][0] for c in clips)
        if speech > 0:
            rates[role] = 60.0 * sum(c["chars"] for c in clips) / speech
    return rates


@dataclass
class Tally:
    """True positives, false positives and false negatives of one event kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors_s: list[float] = field(default_factory=list)

    def add(self, truth: Sequence[tuple], found: Sequence[tuple], match) -> None:  # noqa: ANN001
        used: set[int] = set()
        for t in truth:
            j = next((j for j, f in enumerate(found) if j not in used and match(t, f)), None)
            if j is None:
                self.fn += 1
            else:
                used.add(j)
                self.tp += 1
                self.errors_s.append(abs(t[-2] - found[j][-2]))
        self.fp += len(found) - len(used)

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def evaluate(calls: int, *, seed: int = 0, telephone: bool = True, snr_db: float | None = 20.0,
             tolerance_s: float = 0.3, turns: int = 10, refine: bool = False,
             timing_overrides: dict[str, float] | None = None, crosstalk_db: float | None = None) -> dict[str, Any]:
    """Build and score ``calls`` random calls; returns the tallies and rate errors."""
    config = default_config()
    if timing_overrides:
        config = config.model_copy(update={"timing": config.timing.model_copy(update=timing_overrides)})
    timing = config.timing
    bank = ClipBank.load()
    rng = np.random.default_rng(seed)
    tallies = {"silence": Tally(), "interruption": Tally(), "raised_voice": Tally()}
    rate_errors: list[float] = []
    audio_s = 0.0
    for i in range(calls):
        layout = random_layout(bank, rng, turns=turns)
        audio, truth = build_call(layout, bank, telephone=telephone, snr_db=snr_db, seed=seed * 100_000 + i,
                                  crosstalk_db=crosstalk_db)
        audio_s += layout.duration_s
        got = analyse(audio, truth, config, refine=refine)
        tallies["silence"].add(true_silences(truth, timing), got.silences,
                               lambda t, f: abs(t[0] - f[0]) <= tolerance_s and abs(t[1] - f[1]) <= tolerance_s)
        tallies["interruption"].add(true_interruptions(truth, timing), got.interruptions,
                                    lambda t, f: t[0] == f[0] and abs(t[1] - f[1]) <= tolerance_s)
        raised = [(r["role"], r["start_s"], r["end_s"]) for r in truth["raised_voice"]]
        tallies["raised_voice"].add(raised, got.raised, lambda t, f: t[0] == f[0] and f[1] < t[2] and t[1] < f[2])
        for role, rate in true_rates(truth, timing).items():
            measured = got.result.features.get(f"{role}_rate_chars_per_min_overall")
            if isinstance(measured, float) and np.isfinite(measured):
                rate_errors.append(abs(measured - rate) / rate)
    return {"tallies": tallies, "rate_errors": rate_errors, "audio_s": audio_s}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the precision/recall table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--tolerance-s", type=float, default=0.3)
    parser.add_argument("--segments", choices=("raw", "refined", "both"), default="both",
                        help="VAD segments as they come (baseline), after onset repair, or both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [timing] threshold, e.g. --set raised_voice_db=8")
    parser.add_argument("--clean", action="store_true", help="16 kHz, no telephone coding, no noise")
    parser.add_argument("--crosstalk-db", type=float, default=None, metavar="DB",
                        help="each side also leaks into the other channel this many dB down (echo)")
    args = parser.parse_args(argv)
    modes = {"raw": [False], "refined": [True], "both": [False, True]}[args.segments]
    overrides = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    for refine in modes:
        started = time.perf_counter()
        out = evaluate(args.calls, seed=args.seed, telephone=not args.clean,
                       snr_db=None if args.clean else args.snr_db, tolerance_s=args.tolerance_s,
                       refine=refine, timing_overrides=overrides, crosstalk_db=args.crosstalk_db)
        condition = "clean 16 kHz" if args.clean else f"8 kHz mu-law, band-pass, noise SNR {args.snr_db:g} dB"
        if args.crosstalk_db is not None:
            condition += f", echo {args.crosstalk_db:g} dB down"
        print(f"\n{args.calls} calls, {out['audio_s'] / 60:.1f} min of audio, {condition}, "
              f"boundary tolerance {args.tolerance_s:g} s, "
              f"{'refined' if refine else 'raw (baseline)'} VAD segments, {time.perf_counter() - started:.0f} s")
        _print_table(out)
    return 0


def _print_table(out: dict[str, Any]) -> None:
    print(f"{'event':<14}{'truth':>7}{'found':>7}{'precision':>11}{'recall':>8}{'MAE_s':>8}  goal")
    goals = {"silence": 0.95, "interruption": 0.95, "raised_voice": 0.9}
    for name, t in out["tallies"].items():
        mae = float(np.mean(t.errors_s)) if t.errors_s else float("nan")
        print(f"{name:<14}{t.tp + t.fn:>7}{t.tp + t.fp:>7}{t.precision():>11.3f}{t.recall():>8.3f}{mae:>8.3f}"
              f"  >= {goals[name]}")
    errors = out["rate_errors"]
    print(f"{'speech_rate':<14}{len(errors):>7} role-calls, mean abs error {100 * float(np.mean(errors)):.1f} % "
          f"(max {100 * float(np.max(errors)):.1f} %)  goal <= 5 %" if errors else "speech_rate: no rated speech")


if __name__ == "__main__":
    raise SystemExit(main())
