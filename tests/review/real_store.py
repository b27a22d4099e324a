"""A real store for the review app's integration tests: real clips, VAD, rules, scorecard; scripted text.

``callqa run``'s own batch (``run_batch``) processes stereo calls built from
the shipped clips; a scripted transcriber (tests/conftest.py) gives each group
of calls its words, so the rules, PII masking, scorecard and outcome are the
pipeline's own. Groups: rude agents (red line), polite agents (pass), a
customer saying a phone number (PII), and a transcript containing ``<script>``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PHONE = "13812345678"


@dataclass(frozen=True)
class Group:
    name: str
    agent: str
    customer: str
    calls: int
    team: str


GROUPS = (
    Group("rude", "你有病吧我不知道你自己去查", "我的快递到现在还没收到", 5, "售后一组"),
    Group("polite", "您好很高兴为您服务请您稍等感谢您的来电再见", "好的谢谢", 5, "售后二组"),
    Group("pii", "您好请问您的手机号是多少感谢您的来电再见", f"我的手机号是{PHONE}", 1, "售后一组"),
    Group("xss", "您好很高兴为您服务感谢您的来电再见", "<script>alert(1)</script>", 1, "售后二组"),
)


def _stereo(index: int) -> np.ndarray:
    from conftest import place  # tests/conftest.py: real clips placed on a silent track

    agent = place([("asr_example.wav", 0.4), ("asr_example.wav", 12.0)], 20.0)
    customer = place([("BAC009S0764W0121.wav", 6.0 + 0.1 * (index % 5))], 20.0)
    return np.stack([agent, customer], axis=1)


def build_store(base: Path, groups: tuple[Group, ...] = GROUPS, day: int | None = None,
                store: Path | None = None) -> Path:
    """Run every group's calls (audio under ``base/calls``) into ``store`` (default ``base/store``).

    Calls are ``GROUP-NN``, starting on 2026-11-20..22, or all on 2026-11-``day``.

    Returns:
        The store path.
    """
    from conftest import ScriptedTranscriber, write_wav

    from pipeline.analysis import ResourceSpec
    from pipeline.batch import RunOptions, run_batch
    from pipeline.config import load_config

    config = load_config()
    store = store or base / "store"
    for group_index, group in enumerate(groups):
        folder = base / "calls" / group.name
        manifest = folder / "manifest.csv"
        folder.mkdir(parents=True, exist_ok=True)
        with open(manifest, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["call_id", "path", "agent_id", "team", "started_at", "direction", "hangup_party"])
            for i in range(group.calls):
                path = write_wav(folder / f"{group.name}-{i:02d}.wav", _stereo(i))
                writer.writerow([f"{group.name}-{i:02d}", path.name, f"A{100 + group_index}{i % 2}", group.team,
                                 f"2026-11-{day or 20 + i % 3:02d}T1{i % 10}:00:00+08:00", "inbound", "customer"])
        spec = ResourceSpec(config, transcriber=ScriptedTranscriber({"agent": group.agent,
                                                                     "customer": group.customer}))
        run_batch(manifest, store, config, RunOptions(workers=1, isolate=False), resources=spec)
    return store
