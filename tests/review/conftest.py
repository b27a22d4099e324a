"""A small synthetic store for the review app: known calls, hits, transcripts, audio and accounts."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pipeline.review.snapshot import build_snapshot
from pipeline.review.users import add_user, set_disabled

RATE = 8000
PASSWORDS = {"lena": "lead-password", "rita": "rita-password", "remi": "remi-password", "dora": "dora-password"}
XSS = "<script>alert('x')</script>您好"
PHONE = "13812345678"


def write_wav(path: Path, seconds: float, channels: int = 2) -> None:
    """A quiet two-tone stereo WAV (440 Hz left, 660 Hz right)."""
    t = np.arange(int(seconds * RATE)) / RATE
    tones = [0.1 * np.sin(2 * np.pi * f * t) for f in (440, 660)][:channels]
    pcm = (np.stack(tones, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def _hit(call_id: str, rule_id: str, category: str, severity: str, start_s: float, end_s: float, role: str = "agent",
         matched_text: str = "", match_type: str = "exact", detail: str = "") -> dict[str, Any]:
    return {"call_id": call_id, "hit_id": f"h-{call_id}-{rule_id}".replace(".", "-"), "rule_id": rule_id,
            "rules_version": "rv1", "category": category, "severity": severity, "error_class": "none", "role": role,
            "start_s": start_s, "end_s": end_s, "match_type": match_type, "confidence": 1.0,
            "matched_text": matched_text, "context": matched_text, "detail": detail, "suspect": False}


def _utt(call_id: str, index: int, role: str, start_s: float, end_s: float, text: str,
         pii: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"call_id": call_id, "utterance_index": index, "role": role, "start_s": start_s, "end_s": end_s,
            "text": text, "suspect": False, "suspect_reason": "", "pii_spans": pii or []}


def synthetic_tables(audio_dir: Path) -> dict[str, pa.Table]:
    """Seven calls, one per queue tier and display case (red line, fatal, failed, classifier, pass, XSS, PII)."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    specs = [  # call_id, team, agent, date, score, grade, passed, redline, fatal, probability
        ("c-red", "售后一组", "A1", "2026-11-20", 0.0, "D", False, True, True, None),
        ("c-fatal", "售后二组", "A2", "2026-11-21", 0.0, "D", False, False, True, None),
        ("c-low", "售后一组", "A1", "2026-11-21", 55.0, "D", False, False, False, None),
        ("c-prob", "售后二组", "A3", "2026-11-22", 92.0, "A", True, False, False, 0.91),
        ("c-pass", "售后一组", "A3", "2026-11-22", 97.0, "A", True, False, False, 0.10),
        ("c-xss", "售后一组", "A2", "2026-11-22", 99.0, "A", True, False, False, None),
        ("c-pii", "售后二组", "A1", "2026-11-23", 96.0, "A", True, False, False, None),
    ]
    calls, features = [], []
    for call_id, team, agent, date, score, grade, passed, redline, fatal, prob in specs:
        path = audio_dir / f"{call_id}.wav"
        write_wav(path, 30.0)
        calls.append({"call_id": call_id, "status": "ok", "path": str(path), "duration_s": 30.0,
                      "roles": ["agent", "customer"], "agent_id": agent, "team": team,
                      "started_at": f"{date}T09:00:00+08:00", "direction": "inbound", "codec": "pcm_s16le",
                      "source_sample_rate_hz": RATE, "call_date": date})
        failed = {"c-red": ["redline_abuse", "opening_closing"], "c-fatal": ["hangup"], "c-low": ["opening_closing"]}
        features.append({"call_id": call_id, "score": score, "grade": grade, "passed": passed, "redline": redline,
                         "fatal_failed": fatal, "classifier_probability": prob, "failed_items": failed.get(call_id, []),
                         "failed_hit_ids": [], "scorecard_version": "other-card", "call_date": date})
    calls.append({"call_id": "c-broken", "status": "failed", "path": "/nowhere.wav", "duration_s": None,
                  "roles": [], "call_date": "2026-11-22"})
    hits = [
        _hit("c-red", "abuse.insult", "redline_abuse", "fatal", 3.0, 4.0, matched_text="你有病吧"),
        _hit("c-red", "opening.greeting", "opening", "non_fatal", 0.0, 15.0, match_type="absence",
             detail="none of 4 phrases in window first"),
        _hit("c-fatal", "timing.agent_hung_up_first", "hangup", "fatal", 28.9, 30.0, match_type="timing"),
        _hit("c-low", "opening.greeting", "opening", "non_fatal", 0.0, 15.0, match_type="absence"),
        _hit("c-xss", "closing.script", "closing", "non_fatal", 20.0, 30.0, match_type="absence",
             detail="<b>bold</b> detail"),
        # the sound check: not in the transcript, the audio fits the phrase about as well (severity info)
        _hit("c-pass", "contradicting.go_buy_elsewhere", "contradicting", "info", 11.0, 12.4,
             matched_text="嫌贵你别买", match_type="forced",
             detail='{"sound_check": {"written": "玄棍你别买", "phrase": "嫌贵你别买", "log_ratio": -0.12, '
                    '"phrase_prob": 0.31}}'),
    ]
    for row in features:
        row["failed_hit_ids"] = [h["hit_id"] for h in hits if h["call_id"] == row["call_id"]]
    utterances = [
        _utt("c-red", 0, "agent", 1.0, 5.0, "喂你有病吧怎么又打来"),
        _utt("c-red", 1, "customer", 6.0, 9.0, "我要投诉你们"),
        _utt("c-xss", 0, "customer", 1.0, 4.0, XSS),
        _utt("c-pii", 0, "customer", 2.0, 6.0, f"我的手机是{PHONE}",
             [{"kind": "mobile", "start_s": 3.0, "end_s": 5.0}]),
        _utt("c-pii", 1, "agent", 7.0, 9.0, "好的我记下了"),
        _utt("c-pass", 0, "agent", 11.0, 12.6, "玄棍你别买啊"),
    ]
    segments = [
        {"call_id": "c-red", "role": "agent", "start_s": 1.0, "end_s": 5.0},
        {"call_id": "c-red", "role": "customer", "start_s": 4.5, "end_s": 9.0},
        {"call_id": "c-red", "role": "agent", "start_s": 20.0, "end_s": 24.0},  # speech with no transcript
        {"call_id": "c-pii", "role": "customer", "start_s": 2.0, "end_s": 6.0},
        {"call_id": "c-pii", "role": "agent", "start_s": 7.0, "end_s": 9.0},
    ]
    gaps = [  # a voice the VAD did not hear: sound with no transcript
        {"call_id": "c-red", "role": "customer", "start_s": 12.0, "end_s": 13.5, "reason": "vad_missed"},
    ]
    return {name: pa.Table.from_pylist(rows) for name, rows in
            (("calls", calls), ("features", features), ("hits", hits), ("utterances", utterances),
             ("segments", segments), ("gaps", gaps))}


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pa.Table]]:
    """Built once (argon2 hashing and WAV writing take a while): a store with accounts, and the tables."""
    base = tmp_path_factory.mktemp("review-template")
    root = base / "store"
    root.mkdir()
    for name, password in PASSWORDS.items():
        add_user(root, name, password, "lead" if name == "lena" else "reviewer")
    set_disabled(root, "dora")
    return root, synthetic_tables(base / "audio")


@pytest.fixture()
def store(tmp_path: Path, template: tuple[Path, dict[str, pa.Table]]) -> Path:
    """A fresh copy of the store: lena (lead), rita and remi (reviewers), dora (disabled), no verdicts."""
    root = tmp_path / "store"
    shutil.copytree(template[0], root)
    return root


@pytest.fixture()
def tables(template: tuple[Path, dict[str, pa.Table]]) -> dict[str, pa.Table]:
    return dict(template[1])


def make_client(store: Path, tables: dict[str, pa.Table], **settings: Any) -> Any:
    """A TestClient for an app over ``tables`` (the snapshot loader is the pure builder)."""
    from fastapi.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.state import ReviewSettings
    from pipeline.scoring.scorecard import load_scorecard

    app = create_app(ReviewSettings(store_root=store, scorecard=load_scorecard(), refresh_every_s=3600,
                                    **settings),
                     loader=lambda: build_snapshot(**tables))
    return TestClient(app, follow_redirects=False)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: Any, name: str) -> str:
    """Log ``name`` in; returns the CSRF token of the new session."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"name": name, "password": PASSWORDS[name], "csrf_token": token,
                                           "next": "/"})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)
