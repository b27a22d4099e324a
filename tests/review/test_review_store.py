"""The review app over a real store (run_batch with scripted text), and the CLI loop: users, export, train."""

from __future__ import annotations

import io
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.review import verdicts

from .conftest import PASSWORDS, login
from .real_store import GROUPS, PHONE, Group, build_store

pytestmark = pytest.mark.slow  # builds a store through the pipeline (VAD, rules, scoring): ~10 s


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("review-real"))


@pytest.fixture()
def real_store(built: Path, tmp_path: Path) -> Path:
    """A copy of the built store (the calls' audio paths stay valid: they point beside the original)."""
    import shutil

    from pipeline.review.users import add_user

    root = tmp_path / "store"
    shutil.copytree(built, root)
    for name in ("lena", "rita"):
        add_user(root, name, PASSWORDS[name], "lead" if name == "lena" else "reviewer")
    return root


def _client(store: Path, **settings):
    from fastapi.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.state import ReviewSettings
    from pipeline.scoring.scorecard import load_scorecard

    return TestClient(create_app(ReviewSettings(store_root=store, scorecard=load_scorecard(), **settings)),
                      follow_redirects=False)


def test_queue_call_page_and_audio_over_a_real_store(real_store):
    client = _client(real_store)
    login(client, "lena")
    queue = client.get("/").text
    first = [line.split('href="/calls/')[1].split('"')[0] for line in queue.splitlines() if 'class="call-link"' in line]
    assert len(first) == sum(g.calls for g in GROUPS)
    assert all(c.startswith("rude-") for c in first[:5])  # red lines first
    assert "<b>5</b> red line" in queue

    page = client.get("/calls/rude-00").text
    assert "redline.insult.agent" in page and "<mark data-hit=" in page
    assert 'class="badge outcome-fail"' in page

    pii = client.get("/calls/pii-00").text
    assert PHONE not in pii and "我的手机号是***********" in pii
    xss = client.get("/calls/xss-00").text
    assert "<script>alert(1)" not in xss and "&lt;script&gt;alert(1)&lt;/script&gt;" in xss

    data = client.get("/audio/pii-00").content
    with wave.open(io.BytesIO(data)) as handle:
        rate, channels = handle.getframerate(), handle.getnchannels()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").reshape(-1, channels)
    span = samples[int(7.0 * rate):int(9.0 * rate), 1].astype(np.float32)
    assert abs(np.argmax(np.abs(np.fft.rfft(span))) * rate / len(span) - 1000) < 5  # the number is bleeped


def test_hit_verdict_records_the_hits_detector_version(real_store):
    client = _client(real_store)
    token = login(client, "rita")
    from pipeline.store import Store

    hit = next(h for h in Store(real_store).read("hits").to_pylist()
               if h["call_id"] == "rude-00" and h["rule_id"] == "redline.insult.agent")
    response = client.post(f"/calls/rude-00/hits/{hit['hit_id']}/verdict",
                           data={"verdict": "confirmed", "csrf_token": token}, headers={"Accept": "application/json"})
    assert response.status_code == 200
    row = verdicts.current_hit_verdicts(real_store).to_pylist()[0]
    assert (row["rule_id"], row["rules_version"]) == ("redline.insult.agent", hit["detector_version"])


def test_hit_verdicts_become_red_line_training_texts(real_store, cli, tmp_path):
    """scripts/train_redline_model.py --reviewed: a confirmed hit teaches its class, a rejected one clean,
    texts the verdicts disagree on are left out, and only classes the model has count."""
    from pipeline.store import Store
    from pipeline.text.turns import model_form
    from scripts.train_redline_model import reviewed_lines

    hits = {(h["call_id"], h["rule_id"]): h for h in Store(real_store).read("hits").to_pylist()}
    client = _client(real_store)
    token = login(client, "rita")

    def judge(call_id: str, rule_id: str, verdict: str) -> None:
        hit = hits[(call_id, rule_id)]
        assert client.post(f"/calls/{call_id}/hits/{hit['hit_id']}/verdict", data={"verdict": verdict,
                           "csrf_token": token}).status_code == 303

    from scripts.train_redline_model import CLASS_OF_CATEGORY

    assert set(CLASS_OF_CATEGORY) == set(verdicts.MISSED_CATEGORIES)  # what can be marked, the model can learn
    frame, card = reviewed_lines([real_store])
    assert len(frame) == 0 and card["hit_verdicts"] == 0
    judge("rude-00", "redline.insult.agent", "confirmed")
    judge("rude-00", "forbidden.dont_know", "rejected")  # a forbidden phrase: no class of the model
    judge("rude-02", "redline.insult.agent", "unsure")
    frame, card = reviewed_lines([real_store])
    text = hits[("rude-00", "redline.insult.agent")]["context"]
    assert frame[["label", "text"]].values.tolist() == [["abuse", text]]
    assert card["hit_verdicts"] == 3 and card["texts"] == 1 and card["labels"] == {"abuse": 1}
    judge("rude-01", "redline.insult.agent", "rejected")  # the same words, judged the other way
    frame, card = reviewed_lines([real_store])
    assert len(frame) == 0 and card["texts"] == 0
    # what no detector raised: a reviewer marks the agent's line of a polite call as cold
    agent_line = next(u for u in Store(real_store).read("utterances").to_pylist()
                      if u["call_id"] == "polite-00" and u["role"] == "agent")
    assert client.post("/calls/polite-00/missed", data={"utterance_index": str(agent_line["utterance_index"]),
                       "category": "redline_coldness", "csrf_token": token}).status_code == 303
    frame, card = reviewed_lines([real_store])
    assert frame[["label", "text"]].values.tolist() == [["coldness", model_form(agent_line["text"])]]
    assert card["missed_findings"] == 1 and card["labels"] == {"coldness": 1}
    exported = cli("verdicts", "export", real_store, "--out", tmp_path / "missed.csv", "--missed")
    assert exported.exit_code == 0 and "wrote 1 missed findings" in exported.stdout
    import pyarrow.csv as pacsv

    [row] = pacsv.read_csv(tmp_path / "missed.csv").to_pylist()
    assert (row["call_id"], row["category"], row["text"], row["reviewer"]) == (
        "polite-00", "redline_coldness", agent_line["text"], "rita")
    assert cli("verdicts", "export", real_store, "--out", tmp_path / "x.csv", "--missed", "--hits").exit_code == 2


def test_new_results_appear_without_a_restart(real_store, tmp_path):
    client = _client(real_store, refresh_every_s=0.0)
    login(client, "lena")
    assert "late-00" not in client.get("/").text
    build_store(tmp_path / "extra", (Group("late", "你有病吧", "我要投诉", 1, "售后三组"),), store=real_store)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "late-00" not in client.get("/").text:
        time.sleep(0.2)
    assert "late-00" in client.get("/").text


def test_cli_users_export_and_train_on_the_verdicts(real_store, cli, tmp_path):
    result = cli("users", "list", real_store)
    assert result.exit_code == 0 and "lena" in result.stdout and "lead" in result.stdout
    from typer.testing import CliRunner

    from pipeline.cli.app import app

    def add(name: str, password: str) -> int:
        return CliRunner().invoke(app, ["users", "add", str(real_store), name, "--password-stdin"],
                                  input=password + "\n").exit_code

    assert add("newbie", "a-new-password") == 0
    assert add("newbie", "a-new-password") == 2  # already exists
    assert add("shorty", "short") == 2
    assert cli("users", "disable", real_store, "newbie").exit_code == 0
    assert "disabled" in cli("users", "list", real_store).stdout
    assert cli("users", "disable", real_store, "nobody").exit_code == 1

    client = _client(real_store)
    token = login(client, "rita")
    for group, verdict in (("rude", "fail"), ("polite", "pass")):
        for i in range(5):
            assert client.post(f"/calls/{group}-{i:02d}/verdict", data={"verdict": verdict, "grade": "B",
                                                                      "csrf_token": token}).status_code == 303
    lead = _client(real_store)
    lead_token = login(lead, "lena")
    lead.post("/calls/polite-00/verdict", data={"verdict": "fail", "csrf_token": lead_token})  # the lead overrules

    labels = tmp_path / "labels.parquet"
    exported = cli("verdicts", "export", real_store, "--out", labels)
    assert exported.exit_code == 0 and "wrote 10 call labels" in exported.stdout
    import pyarrow.parquet as pq

    table = pq.read_table(labels).to_pylist()
    by_call = {r["call_id"]: r for r in table}
    assert by_call["polite-00"]["label"] == "fail" and by_call["polite-00"]["reviewer"] == "lena"
    assert by_call["rude-03"]["label"] == "fail" and by_call["polite-03"]["label"] == "pass"
    assert cli("verdicts", "export", real_store, "--out", tmp_path / "hits.csv", "--hits").exit_code == 0

    trained = cli("train", real_store, "--out", tmp_path / "model-from-verdicts")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "model-from-verdicts" / "model_card.md").exists()
    also = cli("train", real_store, "--labels", labels, "--out", tmp_path / "model-from-export")
    assert also.exit_code == 0, also.output
