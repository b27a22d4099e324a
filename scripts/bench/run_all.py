"""Run every benchmark and publish the figures: ``bench/results.json`` and ``bench/results.md``.

Each benchmark in ``scripts/bench/`` runs as its own process (so one that fails
or is skipped never stops the others) and prints its figures against a
baseline measured in the same run. This runner records, per benchmark: the
command, exit code, wall time, the figures it wrote with ``--json`` where it
supports that, and the last lines of what it printed (its summary table).
The machine description (CPU, cores, memory, GPU, package versions, git
commit) goes with the results, because figures mean nothing without it.

Profiles:

- ``full`` (default): the sizes the README quotes (about 1.5-2 hours on 2 CPU cores);
- ``quick``: small sizes, to check the suite runs (about 15 minutes);
- ``gpu``: the speech benchmarks with ``[asr] model = "large-v3"`` (or
  ``--gpu-model turbo``), float16, batched, on a CUDA GPU; refused with one
  clear line when no GPU is visible or the model is not in the local
  Hugging Face cache.

    python scripts/bench/run_all.py [--profile quick|full|gpu] [--only store_scale,scaling] [--out bench/]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench"


def suite(profile: str, work: Path, config: Path | None) -> list[tuple[str, list[str], bool]]:
    """(name, arguments, writes --json) of each benchmark for ``profile``."""
    quick = profile == "quick"
    with_config = ["--config", str(config)] if config else []
    return [
        ("decode_speed", ["--minutes", "10" if quick else "60"], False),
        ("asr_accuracy", [*with_config], False),
        ("transcribe_speed", ["--duration-s", "120" if quick else "300", "--memory-calls", "20" if quick else "200"],
         False),
        ("coverage_eval", ["--calls", "4" if quick else "30"], False),
        ("text_throughput", ["--calls", "100" if quick else "1000"], False),
        ("lexicon_eval", [], False),
        ("detector_eval", ["--calls", "20" if quick else "300"], False),
        ("spoken_eval", [*(["--calls", "6"] if quick else []), *with_config], True),
        ("store_scale", ["--calls", "5000" if quick else "100000", "--chunk", "1000" if quick else "2000",
                         "--out", str(work / "store_scale")], True),
        ("review_queue", ["--calls", "10000" if quick else "100000"], False),
        ("review_load", ["--seconds", "10" if quick else "60"], False),
        ("report_scale", ["--calls", "10000" if quick else "100000"], False),
        ("memory_long_calls", ["--minutes", "1", "10"] if quick else [], False),
        ("scaling", ["--calls", "4" if quick else "16", "--plots", str(work / "plots"), *with_config], True),
    ]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import psutil

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, check=False)
        gpu = result.stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    versions = {}
    for name in ("callqa", "faster-whisper", "ctranslate2", "deltalake", "pyarrow", "duckdb", "ray", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": gpu or "none", "platform": platform.platform(), "python": platform.python_version(),
            "commit": commit, "packages": versions, "measured_at": datetime.now(timezone.utc).isoformat()}


def gpu_config(model: str, work: Path) -> Path:
    """The config file of the GPU profile; exits with one line when it cannot run here."""
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        sys.exit("run_all: error: --profile gpu needs a CUDA GPU (ctranslate2 sees none)")
    from pipeline.asr.model import resolve_model
    from pipeline.errors import ModelError

    try:
        resolve_model(model)
    except ModelError as exc:
        sys.exit(f"run_all: error: {exc}")
    path = work / "gpu.toml"
    path.write_text(f'[asr]\nmodel = "{model}"\ndevice = "cuda"\ncompute_type = "float16"\nbatched = true\n'
                    'batch_size = 16\n', encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("quick", "full", "gpu"), default="full")
    parser.add_argument("--only", default="", help="Comma-separated benchmark names (default: all).")
    parser.add_argument("--gpu-model", default="large-v3", help="Whisper model of the gpu profile (large-v3, turbo).")
    parser.add_argument("--out", type=Path, default=REPO / "bench")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="callqa-bench-"))
    config = gpu_config(args.gpu_model, work) if args.profile == "gpu" else None
    wanted = set(filter(None, args.only.split(",")))
    results: dict[str, Any] = {"profile": args.profile, "machine": machine(), "benchmarks": {}}
    for name, arguments, writes_json in suite(args.profile, work, config):
        if wanted and name not in wanted:
            continue
        script = BENCH / f"{name}.py"
        if not script.exists():
            results["benchmarks"][name] = {"status": "missing"}
            continue
        if config is not None and "--config" not in arguments:
            results["benchmarks"][name] = {"status": "not in the gpu profile"}
            continue
        figures = work / f"{name}.json"
        command = [sys.executable, str(script), *arguments, *(["--json", str(figures)] if writes_json else [])]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        entry: dict[str, Any] = {
            "command": " ".join(command[1:]), "exit_code": run.returncode,
            "wall_s": round(time.perf_counter() - started),
            "status": "ok" if run.returncode == 0 else "failed",
            "summary": run.stdout.strip().splitlines()[-25:], "stderr_tail": run.stderr.strip().splitlines()[-5:]}
        if writes_json and figures.exists():
            entry["figures"] = json.loads(figures.read_text())
        results["benchmarks"][name] = entry
        print("\n".join(entry["summary"][-6:]), flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))  # as it goes
    (args.out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(f"\nresults: {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0 if all(b.get("status") in ("ok", "missing", "not in the gpu profile")
                    for b in results["benchmarks"].values()) else 1


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"# Benchmarks ({results['profile']} profile)", "",
             f"Measured {m['measured_at']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, GPU: {m['gpu']}; "
             f"Python {m['python']}, commit {m['commit']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
             "", "| benchmark | status | wall | command |", "|---|---|---|---|"]
    for name, entry in results["benchmarks"].items():
        lines.append(f"| {name} | {entry['status']} | {entry.get('wall_s', '')} s | `{entry.get('command', '')}` |")
    for name, entry in results["benchmarks"].items():
        if entry.get("summary"):
            lines += ["", f"## {name}", "", "```", *entry["summary"], "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
