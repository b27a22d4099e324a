"""Sampling plans for human QA, written as review queues (owner of the queue format).

Designs (DOMAIN.md §2):

- ``random``: a simple random sample of the frame (流程质检: random, blind to
  flags and scores);
- ``stratified``: a simple random sample inside each stratum (team / agent /
  score band), with one total size allocated proportionally (largest
  remainder), one size or one proportion for every stratum, or a size per
  stratum;
- ``targeted``: every red-line call and every call whose outcome asks for a
  person (needs_review / needs_listening), plus a proportion of the rest
  (专项质检).

``min_per_agent`` guarantees each agent that many calls (or all their calls):
the sampled strata are then split by agent, each agent's share allocated
proportionally and raised to the minimum (counting the agent's certainty
calls of a targeted design). Allocation never depends on the random draw, so
every call's inclusion probability is exact: ``n_h / N_h`` of its stratum, 1
for certainty calls. ``weight = 1 / inclusion_probability`` (Horvitz–Thompson),
so a rate measured on reviewed calls is weighted back to the population as
Σ weight·y / Σ weight.

The draw is reproducible: calls are ordered by ``call_id``, each gets a
uniform number from ``numpy.random.default_rng(seed)``, and each stratum takes
its ``n_h`` smallest.

Queue file (docs/contracts.md): ``NAME.csv`` with call_id, stratum,
inclusion_probability, weight, reason; ``NAME.design.json`` beside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from pipeline.errors import CallqaError
from pipeline.reports.csv_safe import neutralise
from pipeline.reports.inputs import ReportInputs, sql
from pipeline.reports.periods import Period

Design = Literal["random", "stratified", "targeted"]
StratifyBy = Literal["team", "agent", "score_band"]
DESIGNS: tuple[str, ...] = ("random", "stratified", "targeted")
STRATIFY_BY: tuple[str, ...] = ("team", "agent", "score_band")
QUEUE_COLUMNS = ("call_id", "stratum", "inclusion_probability", "weight", "reason")
#: Where ``callqa sample`` writes queues inside a store (docs/contracts.md).
QUEUE_DIR = Path("_review") / "queues"
CERTAIN = "targeted"
UNKNOWN = "(未填)"


class SamplingError(CallqaError):
    """A sampling plan cannot be drawn (bad parameters, empty frame, unreadable queue)."""


@dataclass(frozen=True)
class SamplingPlan:
    """What to draw; see the module docstring.

    Attributes:
        design: random, stratified or targeted.
        size: total sample size (random; stratified: allocated proportionally).
        fraction: share of the frame (random), of each stratum (stratified) or
            of the non-targeted rest (targeted).
        by: stratification variable (stratified).
        per_stratum: the same size in every stratum (stratified).
        stratum_sizes: a size per stratum; strata not named get 0 (stratified).
        min_per_agent: each agent gets at least this many calls (or all theirs).
        seed: random seed.
    """

    design: Design
    size: int | None = None
    fraction: float | None = None
    by: StratifyBy | None = None
    per_stratum: int | None = None
    stratum_sizes: Mapping[str, int] = field(default_factory=dict)
    min_per_agent: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {self.design!r}")
        given = [name for name, value in (("size", self.size), ("fraction", self.fraction),
                                          ("per_stratum", self.per_stratum),
                                          ("sizes", self.stratum_sizes or None)) if value is not None]
        allowed = {"random": {"size", "fraction"}, "targeted": {"fraction"},
                   "stratified": {"size", "fraction", "per_stratum", "sizes"}}[self.design]
        if len(given) != 1 or given[0] not in allowed:
            raise ValueError(f"{self.design} sampling needs exactly one of {sorted(allowed)}, got {given or 'none'}")
        if self.design == "stratified" and self.by not in STRATIFY_BY:
            raise ValueError(f"stratified sampling needs by = one of {STRATIFY_BY}, got {self.by!r}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        for name, value in (("size", self.size), ("per_stratum", self.per_stratum),
                            ("min_per_agent", self.min_per_agent), *self.stratum_sizes.items()):
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class Sample:
    """A drawn sample: the queue rows, one row per stratum, and the design description."""

    queue: pa.Table
    strata: pa.Table
    design: dict[str, Any]


def sampling_frame(inputs: ReportInputs, period: Period) -> pa.Table:
    """The calls a plan draws from: every scored-or-not call of ``period`` (one analysis per call).

    Returns:
        call_id, team, agent_id, score_band (the grade), targeted_reason
        ('redline', 'needs_review', 'needs_listening' or null); ordered by call_id.
    """
    return sql(f"""
        SELECT call_id, coalesce(nullif(team, ''), '{UNKNOWN}') AS team,
               coalesce(nullif(agent_id, ''), '{UNKNOWN}') AS agent_id,
               coalesce(grade, '(未评分)') AS score_band,
               CASE WHEN redline THEN 'redline'
                    WHEN outcome IN ('needs_review', 'needs_listening') THEN outcome END AS targeted_reason
        FROM features WHERE call_date >= '{period.start_text}' AND call_date < '{period.end_text}'
        ORDER BY call_id""", features=inputs.features)


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def allocate(total: int, populations: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` over strata in proportion to their populations (largest remainder, exact sum).

    Ties in the remainder go to the larger stratum, then the stratum name order.
    ``total`` above the population is capped at the population.
    """
    population = sum(populations.values())
    total = min(total, population)
    if population == 0:
        return dict.fromkeys(populations, 0)
    quotas = {h: total * n / population for h, n in populations.items()}
    sizes = {h: math.floor(q) for h, q in quotas.items()}
    left = total - sum(sizes.values())
    for h in sorted(quotas, key=lambda h: (-(quotas[h] - sizes[h]), -populations[h], h))[:left]:
        sizes[h] += 1
    return sizes


def _stratum_sizes(plan: SamplingPlan, populations: Mapping[str, int]) -> dict[str, int]:
    if plan.design == "random":
        total = plan.size if plan.size is not None else _round_half_up(plan.fraction * sum(populations.values()))
        return allocate(total, populations)
    if plan.design == "targeted":
        return {h: n if h == CERTAIN else _round_half_up(plan.fraction * n) for h, n in populations.items()}
    if plan.size is not None:
        return allocate(plan.size, populations)
    if plan.fraction is not None:
        return {h: _round_half_up(plan.fraction * n) for h, n in populations.items()}
    if plan.per_stratum is not None:
        return {h: min(plan.per_stratum, n) for h, n in populations.items()}
    unknown = sorted(set(plan.stratum_sizes) - set(populations))
    if unknown:
        raise SamplingError("--sizes", f"no calls in strata {unknown}; strata are {sorted(populations)}")
    return {h: min(plan.stratum_sizes.get(h, 0), n) for h, n in populations.items()}


def _with_agent_minimum(plan: SamplingPlan, strata: list[str], agents: list[str],
                        sizes: Mapping[str, int]) -> tuple[list[str], dict[str, int], set[str]]:
    """Split sampled strata by agent and raise each agent to the minimum; returns new keys, sizes, raised."""
    counts: dict[tuple[str, str], int] = {}
    for stratum, agent in zip(strata, agents, strict=True):
        counts[(stratum, agent)] = counts.get((stratum, agent), 0) + 1
    certain = {a: n for (h, a), n in counts.items() if h == CERTAIN}
    new_sizes: dict[str, int] = {}
    raised: set[str] = set()
    for stratum in sorted({h for h, _ in counts}):
        if stratum == CERTAIN:
            new_sizes[CERTAIN] = sizes[CERTAIN]
            continue
        inside = {a: n for (h, a), n in counts.items() if h == stratum}
        for agent, n in allocate(sizes[stratum], inside).items():
            key = f"{stratum} / {agent}"
            floor = min(max(0, plan.min_per_agent - certain.get(agent, 0)), inside[agent])
            new_sizes[key] = max(n, floor)
            if floor > n:
                raised.add(key)
    keys = [h if h == CERTAIN else f"{h} / {a}" for h, a in zip(strata, agents, strict=True)]
    return keys, new_sizes, raised


def draw(frame: pa.Table, plan: SamplingPlan) -> tuple[pa.Table, pa.Table]:
    """Draw ``plan`` from ``frame`` (:func:`sampling_frame`).

    Returns:
        (queue: call_id, stratum, inclusion_probability, weight, reason;
        strata: stratum, population, sample, inclusion_probability).
    """
    rows = frame.to_pydict()
    call_ids: list[str] = rows["call_id"]
    if plan.design == "random":
        strata = ["all"] * len(call_ids)
    elif plan.design == "targeted":
        strata = [CERTAIN if reason else "rest" for reason in rows["targeted_reason"]]
    else:
        column = {"team": "team", "agent": "agent_id", "score_band": "score_band"}[plan.by or "team"]
        strata = list(rows[column])
    populations: dict[str, int] = {}
    for stratum in strata:
        populations[stratum] = populations.get(stratum, 0) + 1
    sizes = _stratum_sizes(plan, populations)
    raised: set[str] = set()
    if plan.min_per_agent:
        strata, sizes, raised = _with_agent_minimum(plan, strata, rows["agent_id"], sizes)
        populations = {}
        for stratum in strata:
            populations[stratum] = populations.get(stratum, 0) + 1
    # Vectorised draw: a uniform key per call (frame sorted by call_id), the n_h smallest per stratum.
    keys = np.random.default_rng(plan.seed).random(len(call_ids))
    names = sorted(populations)
    index = {h: i for i, h in enumerate(names)}
    codes = np.fromiter((index[h] for h in strata), dtype=np.int64, count=len(strata))
    order = np.lexsort((keys, codes))
    starts = np.searchsorted(codes[order], np.arange(len(names)))
    rank = np.empty(len(call_ids), dtype=np.int64)
    rank[order] = np.arange(len(call_ids)) - starts[codes[order]]
    wanted = np.asarray([sizes[n] for n in names], dtype=np.int64)
    chosen = np.flatnonzero(rank < wanted[codes]) if len(call_ids) else np.zeros(0, dtype=np.int64)
    probability = {h: sizes[h] / populations[h] for h in names}
    picked = sorted(chosen.tolist(), key=lambda i: (strata[i], rank[i]))
    queue = pa.table({
        "call_id": pa.array([call_ids[i] for i in picked], pa.string()),
        "stratum": pa.array([strata[i] for i in picked], pa.string()),
        "inclusion_probability": pa.array([probability[strata[i]] for i in picked], pa.float64()),
        "weight": pa.array([1 / probability[strata[i]] for i in picked], pa.float64()),
        "reason": pa.array([_reason(plan, strata[i], rows["targeted_reason"][i], raised) for i in picked],
                           pa.string()),
    })
    strata_table = pa.table({
        "stratum": pa.array(names, pa.string()),
        "population": pa.array([populations[h] for h in names], pa.int64()),
        "sample": pa.array([sizes[h] for h in names], pa.int64()),
        "inclusion_probability": pa.array([probability[h] for h in names], pa.float64()),
    })
    return queue, strata_table


def _reason(plan: SamplingPlan, stratum: str, targeted: str | None, raised: set[str]) -> str:
    if stratum == CERTAIN:
        return targeted or CERTAIN
    base = {"random": "random", "stratified": f"stratified:{plan.by}", "targeted": "rest_random"}[plan.design]
    return f"{base}+min_per_agent" if stratum in raised else base


def build_sample(inputs: ReportInputs, period: Period, plan: SamplingPlan, name: str, store: str = "") -> Sample:
    """Draw ``plan`` from the calls of ``period`` and describe the design.

    Raises:
        SamplingError: the period has no calls.
    """
    frame = sampling_frame(inputs, period)
    if frame.num_rows == 0:
        raise SamplingError(store or "store", f"no calls in {period.kind} {period.label} to sample from")
    queue, strata = draw(frame, plan)
    plan_fields = asdict(plan)
    plan_fields["stratum_sizes"] = dict(plan.stratum_sizes)
    design = {
        "name": name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "store": store,
        "period": {"kind": period.kind, "label": period.label, "start": period.start_text,
                   "end_exclusive": period.end_text},
        **plan_fields, "population": frame.num_rows, "sample_size": queue.num_rows,
        "strata": strata.to_pylist(),
        "estimator": "weight = 1 / inclusion_probability (Horvitz-Thompson); a rate over reviewed calls is "
                     "sum(weight * y) / sum(weight)",
        "frame": "every call of the period with a feature row, one analysis per call, ordered by call_id",
    }
    return Sample(queue=queue, strata=strata, design=design)


def _atomic_write(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, target)


def write_queue(sample: Sample, path: str | Path, overwrite: bool = False) -> Path:
    """Write the queue CSV and ``NAME.design.json`` beside it (each atomically).

    ``call_id`` is written exactly (the review app looks calls up by it); the
    free-text columns are neutralised against spreadsheet formulas.

    Raises:
        SamplingError: the file exists (and not ``overwrite``) or cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SamplingError(str(path), "queue already exists (--force replaces it, or pick another --name)")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(QUEUE_COLUMNS)
    for row in sample.queue.to_pylist():
        writer.writerow([row["call_id"], neutralise(row["stratum"]), f"{row['inclusion_probability']:.10g}",
                         f"{row['weight']:.10g}", neutralise(row["reason"])])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, buffer.getvalue())
        _atomic_write(design_path(path), json.dumps(sample.design, ensure_ascii=False, indent=2) + "\n")
    except OSError as exc:
        raise SamplingError(str(path), f"cannot write the queue: {exc.strerror or exc}") from None
    return path


def design_path(queue_path: str | Path) -> Path:
    """``NAME.design.json`` beside ``NAME.csv``."""
    queue_path = Path(queue_path)
    return queue_path.with_name(queue_path.stem + ".design.json")


def read_queue(path: str | Path) -> tuple[pa.Table, dict[str, Any] | None]:
    """A queue's rows (call_id, and weight when present) and its design (None without a design file).

    Raises:
        SamplingError: the CSV cannot be read or has no call_id column.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SamplingError(str(path), f"cannot read the queue: {exc}") from None
    if rows and "call_id" not in rows[0]:
        raise SamplingError(str(path), "queue has no call_id column")
    weights = [_float(r.get("weight")) for r in rows]
    table = pa.table({"call_id": pa.array([r["call_id"] for r in rows], pa.string()),
                      "weight": pa.array(weights, pa.float64())})
    design = None
    if design_path(path).is_file():
        try:
            design = json.loads(design_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            design = None
    return table, design


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
