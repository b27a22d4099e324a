"""End-to-end throughput: calls per hour (and per core) with 1 and 2 local workers and on Ray.

Builds ``--calls`` stereo 8 kHz μ-law calls (``--turns`` turns each) from
the real clips (``scripts/make_calls.py``), then runs the whole pipeline (real
Whisper unless ``--vad-only``) over them with each engine setting into a fresh
store, and prints for each: wall time, calls per hour, calls per hour per
core used, real-time factor and peak RSS of the process tree. It also runs
the single-worker setting on 1/4, 1/2 and all of the calls, so the cost
against the number of calls can be checked to be a straight line.

The baseline is the single local worker measured in the same run; the
figures are ratios to it. Plots go to ``--plots`` (throughput vs workers,
seconds vs calls).

    python scripts/bench/scaling.py --calls 16                        # ~15 min on 2 cores, real Whisper
    python scripts/bench/scaling.py --calls 16 --vad-only             # the engines without ASR, ~2 min
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.batch import Engine, RunOptions, run_batch  # noqa: E402
from pipeline.config import Config, load_config  # noqa: E402
from pipeline.engines.local import LocalEngine  # noqa: E402
from scripts.make_calls import ClipBank, build_call, random_layout, write_call  # noqa: E402


def build_calls(directory: Path, n: int, turns: int, seed: int = 11) -> float:
    """Write ``n`` built calls (8 kHz μ-law stereo WAVs, line noise); return their total duration (s)."""
    bank = ClipBank.load()
    rng = np.random.default_rng(seed)
    total = 0.0
    for index in range(n):
        layout = random_layout(bank, rng, turns=turns)
        audio, truth = build_call(layout, bank, telephone=True, snr_db=30.0, seed=index)
        write_call(directory, f"call-{index:03d}", audio, truth, telephone=True)
        total += layout.duration_s
    for sidecar in directory.glob("*.json"):  # the truth records are not calls
        sidecar.unlink()
    return total


class PeakRss:
    """Sample the RSS of this process and all its children (workers) until stopped."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            self.peak_mb = max(self.peak_mb, rss / 1e6)
            time.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(label: str, calls: Path, store: Path, config: Config, engine: Engine, cores: int,
            audio_s: float) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    with PeakRss() as rss:
        summary = run_batch(calls, store, config, RunOptions(), engine=engine)
    wall = time.perf_counter() - started
    n = summary.done + summary.failed
    result = {"label": label, "calls": n, "failed": summary.failed, "wall_s": wall, "cores": cores,
              "calls_per_hour": 3600 * n / wall, "calls_per_hour_per_core": 3600 * n / wall / cores,
              "real_time_factor": wall / audio_s, "peak_rss_mb": rss.peak_mb}
    print(f"  {label:18s} {n:3d} calls in {wall:6.1f} s: {result['calls_per_hour']:7.0f} calls/h, "
          f"{result['calls_per_hour_per_core']:7.0f} calls/h/core, RTF {result['real_time_factor']:.3f}, "
          f"peak RSS {rss.peak_mb:6.0f} MB", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--turns", type=int, default=8, help="Turns per call (8 is about a minute).")
    parser.add_argument("--vad-only", action="store_true", help="Measure the engines without transcription.")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("/tmp/callqa-scaling"))
    parser.add_argument("--plots", type=Path, default=Path("bench"))
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--config", type=Path, default=None, help="A config file (e.g. a GPU [asr] model).")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.vad_only:
        config = config.with_overrides({"asr": {"enabled": False}})
    calls = args.out / "calls"
    shutil.rmtree(args.out, ignore_errors=True)
    audio_s = build_calls(calls, args.calls, args.turns)
    cores = os.cpu_count() or 1
    print(f"{args.calls} calls, {audio_s / 60:.1f} min of audio, {cores} cores, "
          f"{'VAD only' if args.vad_only else 'Whisper ' + config.asr.model}", flush=True)
    settings: list[tuple[str, Callable[[], Engine], int]] = [
        ("local, 1 worker", lambda: LocalEngine(1), 1), ("local, 2 workers", lambda: LocalEngine(2), 2)]
    if not args.no_ray:
        from pipeline.engines.ray_engine import RayEngine

        settings += [("ray, 1 worker", lambda: RayEngine(transcribers=1, analysers=1, local_cpus=cores), 1),
                     ("ray, 2 workers", lambda: RayEngine(transcribers=2, analysers=1, local_cpus=cores + 1), 2)]
    results = [measure(label, calls, args.out / "store", config, make(), used, audio_s)
               for label, make, used in settings]
    # cost against the number of calls: one worker on a quarter, a half and all of them
    line = []
    for share in (0.25, 0.5, 1.0):
        subset = args.out / f"subset-{share}"
        subset.mkdir(parents=True, exist_ok=True)
        chosen = sorted(calls.glob("*.wav"))[: max(1, int(args.calls * share))]
        for path in chosen:
            shutil.copy(path, subset / path.name)
        line.append(measure(f"local, 1 worker, {len(chosen)} calls", subset, args.out / "store", config,
                            LocalEngine(1), 1, audio_s * len(chosen) / args.calls))
    base = results[0]
    print("\n## scaling results\n")
    print("| setting | calls/h | calls/h/core | vs 1 local worker | RTF | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['calls_per_hour']:.0f} | {r['calls_per_hour_per_core']:.0f} | "
              f"{r['calls_per_hour'] / base['calls_per_hour']:.2f}x | {r['real_time_factor']:.3f} | "
              f"{r['peak_rss_mb']:.0f} |")
    slope = np.polyfit([r["calls"] for r in line], [r["wall_s"] for r in line], 1)
    fitted = np.polyval(slope, [r["calls"] for r in line])
    worst = max(abs(f - r["wall_s"]) / r["wall_s"] for f, r in zip(fitted, line, strict=True))
    print(f"\ncost vs calls (1 worker): {slope[0]:.2f} s per call + {slope[1]:.1f} s start-up; "
          f"largest deviation from the straight line {worst:.1%}")
    plot(results, line, args.plots)
    if args.json:
        args.json.write_text(json.dumps({"settings": results, "line": line, "seconds_per_call": slope[0],
                                         "startup_s": slope[1]}, indent=1))
    return 0


def plot(results: list[dict[str, Any]], line: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for engine in ("local", "ray"):
        points = [r for r in results if r["label"].startswith(engine)]
        if points:
            axes[0].plot([r["cores"] for r in points], [r["calls_per_hour"] for r in points], marker="o", label=engine)
    axes[0].set(xlabel="workers", ylabel="calls per hour", title="Throughput vs workers")
    axes[0].legend()
    axes[1].plot([r["calls"] for r in line], [r["wall_s"] for r in line], marker="o")
    axes[1].set(xlabel="calls", ylabel="seconds", title="Cost vs number of calls (1 worker)")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    plt.close(fig)
    print(f"plot: {out / 'scaling.png'}")


if __name__ == "__main__":
    sys.exit(main())
