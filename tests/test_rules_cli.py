"""``callqa rules check|test|match`` and ``rescore`` (pipeline/cli_rules.py, pipeline/rescore.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pipeline.cli.rules_cmd import rules_app
from pipeline.config import load_config
from pipeline.text.rules import load_rules
from pipeline.records import AGENT, Utterance
from pipeline.rescore import rescore

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_check_and_test_shipped() -> None:
    res = runner.invoke(rules_app, ["check"])
    assert res.exit_code == 0 and f"ok: {len(load_rules(None).rules)} rules" in res.output
    res = runner.invoke(rules_app, ["test"])
    n = sum(len(r.examples_match) + len(r.examples_no_match) for r in load_rules(None).rules)
    assert res.exit_code == 0 and f"{n}/{n} examples pass" in res.output and n >= 80


def test_check_reports_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('version = "1"\n[[rules]]\nid = "x"\n', encoding="utf-8")
    res = runner.invoke(rules_app, ["check", str(tmp_path)])
    assert res.exit_code == 2 and "bad.toml:2" in res.output


def test_test_reports_failing_example(tmp_path: Path) -> None:
    text = (REPO / "lexicons" / "qa_rules.toml").read_text(encoding="utf-8")
    (tmp_path / "qa.toml").write_text(text.replace('"宝宝喂养的问题我帮您记录"', '"喂您好"'), encoding="utf-8")
    res = runner.invoke(rules_app, ["test", str(tmp_path)])
    assert res.exit_code == 1 and "forbidden.wei: false hit on '喂您好'" in res.output


def test_match_text_file_and_jsonl(tmp_path: Path) -> None:
    res = runner.invoke(rules_app, ["match", "--role", "agent", "你这话什么意思"])
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert res.exit_code == 0 and "redline.counter_question" in {r["rule_id"] for r in rows}
    lines = tmp_path / "u.txt"
    lines.write_text("你去死\n您好\n", encoding="utf-8")
    rows = [json.loads(x) for x in runner.invoke(rules_app, ["match", "--file", str(lines)]).output.splitlines()]
    assert {r["call_id"] for r in rows if r["rule_id"] == "redline.abuse"} == {"line1"}
    conv = tmp_path / "c.jsonl"
    conv.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"role": "agent", "start_s": 0, "end_s": 2, "text": "您好"},
        {"role": "customer", "start_s": 2, "end_s": 5, "text": "你们太烂了"},
        {"role": "agent", "start_s": 5, "end_s": 7, "text": "那你去买别的好了"}]), encoding="utf-8")
    rows = [json.loads(x) for x in runner.invoke(rules_app, ["match", "--jsonl", str(conv)]).output.splitlines()]
    hit = [r for r in rows if r["rule_id"] == "contradicting.go_buy_elsewhere"]
    assert len(hit) == 1 and hit[0]["start_s"] == 5.0 and hit[0]["role"] == "agent"
    assert runner.invoke(rules_app, ["match", "--role", "boss", "x"]).exit_code == 2


def test_rescore_on_real_store_keeps_old_versions(tmp_path: Path) -> None:
    from pipeline.store import Store, common_columns, utterances_rows

    store = Store(tmp_path / "s")
    rows: dict[str, list[dict[str, Any]]] = {"calls": [], "utterances": []}
    for cid, date, text in (("a", "2026-11-22", "你这话什么意思"), ("b", "2026-11-23", "您好请问有什么可以帮您")):
        common = common_columns(cid, "c1", "m1", "r0")
        rows["calls"].append({**common, "call_date": date, "path": f"{cid}.wav", "audio_sha256": "ab" * 32,
                              "status": "ok", "duration_s": 10.0, "roles": ["agent", "customer"]})
        rows["utterances"] += utterances_rows([Utterance(AGENT, 1.0, 3.0, text)], {**common, "call_date": date})
    store.commit(rows)
    cfg = load_config()
    v1 = load_rules(None)
    assert rescore(store, v1, cfg).calls == 2
    new = tmp_path / "rules"
    shutil.copytree(REPO / "lexicons", new, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.md"))
    (new / "insults.toml").unlink()
    v2 = load_rules(new)
    rescore(store, v2, cfg)
    hits = [h for h in store.read("hits").to_pylist()  # the lexicon's hits (not timing, not the text model)
            if not h["rules_version"].startswith(("timing-", "redline_text@"))]
    assert {h["rules_version"] for h in hits} == {v1.version, v2.version}
    red = [h for h in hits if h["rule_id"] == "redline.counter_question"]
    assert {(h["call_id"], h["call_date"], h["rules_version"]) for h in red} == {
        ("a", "2026-11-22", v1.version), ("a", "2026-11-22", v2.version)}
