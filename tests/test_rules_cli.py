"""``callqa rules check|test|match``, ``callqa rescore`` and ``callqa redact`` (pipeline/cli/rules_cmd.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import ScriptedTranscriber

from pipeline.analysis import ResourceSpec
from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.store import Store
from pipeline.text.rules import load_rules

REPO = Path(__file__).resolve().parents[1]


def test_check_and_test_shipped(cli) -> None:
    rules = load_rules()
    res = cli("rules", "check")
    assert res.exit_code == 0 and res.stdout.strip() == f"ok: {len(rules.rules)} rules, version {rules.version}"
    res = cli("rules", "test")
    n = sum(len(r.examples_match) + len(r.examples_no_match) for r in rules.rules)
    assert res.exit_code == 0 and f"{n}/{n} examples pass" in res.stdout and n >= 80


def test_check_reports_bad_file(cli, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('version = "1"\n[[rules]]\nid = "x"\n', encoding="utf-8")
    res = cli("rules", "check", tmp_path)
    assert res.exit_code == 2 and "bad.toml:2" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("callqa: error: ")


def test_test_reports_failing_example(cli, tmp_path: Path) -> None:
    text = (REPO / "lexicons" / "qa_rules.toml").read_text(encoding="utf-8")
    (tmp_path / "qa.toml").write_text(text.replace('"宝宝喂养的问题我帮您记录"', '"喂您好"'), encoding="utf-8")
    res = cli("rules", "test", tmp_path)
    assert res.exit_code == 1 and "forbidden.wei: false hit on '喂您好'" in res.stdout


def json_lines(output: str) -> list[dict]:
    return [json.loads(x) for x in output.splitlines() if x.strip()]


def test_match_text_file_and_jsonl(cli, tmp_path: Path) -> None:
    res = cli("rules", "match", "--role", "agent", "--json", "你这话什么意思")
    rows = json_lines(res.stdout)
    assert res.exit_code == 0 and "redline.counter_question" in {r["rule_id"] for r in rows}
    assert all(len(r["hit_id"]) == 16 and r["call_id"] == "text" for r in rows)
    lines = tmp_path / "u.txt"
    lines.write_text("你去死\n您好\n", encoding="utf-8")
    rows = json_lines(cli("rules", "match", "--json", "--file", lines).stdout)
    assert {r["call_id"] for r in rows if r["rule_id"] == "redline.abuse"} == {"line1"}
    conv = tmp_path / "c.jsonl"
    conv.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"role": "agent", "start_s": 0, "end_s": 2, "text": "您好"},
        {"role": "customer", "start_s": 2, "end_s": 5, "text": "你们太烂了"},
        {"role": "agent", "start_s": 5, "end_s": 7, "text": "那你去买别的好了"}]), encoding="utf-8")
    rows = json_lines(cli("rules", "match", "--json", "--jsonl", conv).stdout)
    hit = [r for r in rows if r["rule_id"] == "contradicting.go_buy_elsewhere"]
    assert len(hit) == 1 and hit[0]["start_s"] == 5.0 and hit[0]["role"] == "agent"
    assert cli("rules", "match", "--role", "boss", "x").exit_code == 2
    assert cli("rules", "match").exit_code == 2  # no TEXT, --file or --jsonl


def test_match_prints_a_readable_table_by_default(cli) -> None:
    res = cli("rules", "match", "--role", "agent", "你这话什么意思")
    assert res.exit_code == 0
    header = next(line for line in res.stdout.splitlines() if "rule" in line and "severity" in line)
    assert header.split() == ["input", "time", "rule", "severity", "matched", "type", "conf.", "context"]
    row = next(line for line in res.stdout.splitlines() if "redline.counter_question" in line)
    assert row.split()[:5] == ["text", "00:00.0", "redline.counter_question", "fatal", "你这话什么意思"]
    expected = len(json_lines(cli("rules", "match", "--role", "agent", "--json", "你这话什么意思").stdout))
    assert res.stdout.strip().splitlines()[-1] == f"{expected} hit(s) in 1 input(s)"
    assert not any(line.lstrip().startswith("{") for line in res.stdout.splitlines())  # not JSON


# -- rescore and redact on a store whose text was masked ----------------------------------------------

#: The agent repeats the customer's phone number inside a red-line phrase: a hit whose context holds
#: personal data, masked before any rule reads the text.
AGENT_WITH_PII = "你这话什么意思手机号13812345678对吧"
CUSTOMER = "我的手机号是13812345678"


@pytest.fixture
def masked_store(tmp_path: Path, stereo_call) -> tuple[Path, Path]:
    audio = stereo_call("c1.wav")
    config = load_config()
    spec = ResourceSpec(config, transcriber=ScriptedTranscriber({"agent": AGENT_WITH_PII, "customer": CUSTOMER}))
    summary = run_batch(audio, tmp_path / "store", config, RunOptions(isolate=False), resources=spec)
    assert summary.done == 1
    return tmp_path / "store", audio


def test_rescore_with_the_same_rules_gives_the_hits_run_gave(cli, masked_store) -> None:
    """run and rescore match the same (masked) text, so the same rules give the same hits."""
    store_dir, _audio = masked_store
    store = Store(store_dir)
    texts = [u["text"] for u in store.read("utterances").to_pylist()]
    assert texts == ["你这话什么意思手机号" + "*" * 11 + "对吧", "我的手机号是" + "*" * 11]
    before = sorted((h["hit_id"], h["matched_text"], h["context"]) for h in store.read("hits").to_pylist())
    assert any(rule == "redline.counter_question" for rule in store.read("hits")["rule_id"].to_pylist())
    assert all("1381" not in context for _id, _text, context in before)
    text_hits = sum(1 for h in store.read("hits").to_pylist() if not h["detector_version"].startswith("timing-"))
    result = cli("rescore", store_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"rescored 1 calls: {text_hits} text hits under rules version "
                                    f"{load_rules().version}")
    after = sorted((h["hit_id"], h["matched_text"], h["context"]) for h in store.read("hits").to_pylist())
    assert after == before


def test_rescore_with_other_rules_changes_the_hits_and_names_the_version(cli, masked_store, tmp_path) -> None:
    store_dir, _audio = masked_store
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "lexicons", rules, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.md"))
    qa = rules / "qa_rules.toml"
    qa.write_text(qa.read_text(encoding="utf-8").replace('"(你)这话什么意思"', '"你这话到底是什么意思"'),
                  encoding="utf-8")
    result = cli("rescore", store_dir, "--rules", rules)
    assert result.exit_code == 0, result.output
    assert f"under rules version {load_rules(rules).version}" in result.stdout
    store = Store(store_dir)
    assert "redline.counter_question" not in store.read("hits")["rule_id"].to_pylist()
    assert store.read("calls")["rules_version"].to_pylist() == [load_rules(rules).version]
    [row] = store.read("features").to_pylist()
    assert "redline_counter_question" not in row["failed_items"]


def test_rescore_refuses_what_is_not_a_store_and_an_empty_store(cli, tmp_path) -> None:
    missing = cli("rescore", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "no store here" in missing.stderr
    Store(tmp_path / "empty", create=True)
    empty = cli("rescore", tmp_path / "empty")
    assert empty.exit_code == 1 and "no calls in the store" in empty.stderr


def test_redact_silences_the_personal_data_the_store_located(cli, masked_store, tmp_path) -> None:
    store_dir, audio = masked_store
    [customer] = [u for u in Store(store_dir).read("utterances").to_pylist() if u["role"] == "customer"]
    [agent] = [u for u in Store(store_dir).read("utterances").to_pylist() if u["role"] == "agent"]
    out = tmp_path / "redacted.wav"
    result = cli("redact", audio, out, "--store", store_dir, "--call-id", "c1", "--mode", "silence")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 2 spans")  # the agent's and the customer's number
    original, rate = soundfile.read(audio, dtype="float32")
    redacted, redacted_rate = soundfile.read(out, dtype="float32")
    assert (redacted_rate, redacted.shape) == (rate, original.shape)
    # The scripted transcript has one word per utterance, so the number is located to its utterance
    # (padded by 0.1 s); every channel is silenced there, and nothing else is touched.
    silenced = np.zeros(len(original), bool)
    for utterance in (agent, customer):
        silenced[int((utterance["start_s"] - 0.1) * rate):int(np.ceil((utterance["end_s"] + 0.1) * rate))] = True
    assert np.abs(redacted[silenced]).max() == 0.0
    assert np.abs(original[silenced]).max() > 0.1  # there was speech to silence
    assert np.abs(redacted[~silenced] - original[~silenced]).max() < 1e-4  # 16-bit round trip only


def test_redact_bleeps_extra_spans_and_refuses_bad_input(cli, masked_store, tmp_path) -> None:
    store_dir, audio = masked_store
    out = tmp_path / "bleeped.wav"
    result = cli("redact", audio, out, "--span", "1.0:2.0")
    assert result.exit_code == 0 and result.stdout.strip() == f"wrote {out}: 1 span bleeped"
    redacted, rate = soundfile.read(out, dtype="float32")
    assert np.abs(redacted[rate + 10:2 * rate - 10]).max() == pytest.approx(0.2, abs=1e-3)  # a 1 kHz tone
    assert cli("redact", audio, out, "--span", "1-2").exit_code == 2
    assert cli("redact", audio, out, "--mode", "beep").exit_code == 2
    unknown = cli("redact", audio, out, "--store", store_dir, "--call-id", "nope")
    assert unknown.exit_code == 2 and "no call 'nope'" in unknown.stderr
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    assert cli("redact", text, out, "--span", "0:1").exit_code == 2


def test_redact_says_what_it_did_in_words(cli, masked_store, tmp_path) -> None:
    _store_dir, audio = masked_store
    result = cli("redact", audio, tmp_path / "out.wav", "--span", "1:2", "--mode", "silence")
    assert result.stdout.strip().endswith("1 span silenced")
