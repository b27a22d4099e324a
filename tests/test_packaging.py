"""config/, lexicons/ and the red-line model ship inside the wheel, load through one function and are applied."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_config_lexicons_and_model_and_they_load(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("callqa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_lexicons = {p.name for p in (REPO / "lexicons").iterdir() if p.suffix in (".toml", ".txt")}
    assert "pipeline/_config/default.toml" in names
    assert shipped_lexicons and {f"pipeline/_lexicons/{n}" for n in shipped_lexicons} <= names
    assert {"pipeline/_config/scorecard.toml", "pipeline/_models/redline_text/redline_text.skops",
            "pipeline/_models/redline_text/redline_card.json"} <= names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import pipeline; from pipeline.config import load_config; from pipeline.paths import resource_dir;"
        "from pipeline.analysis import Resources, text_hits; from pipeline.records import CallEvidence, Utterance;"
        "config = load_config(); resources = Resources.load(config, transcriber=None, text=True);"
        "utterance = Utterance('agent', 0, 2, '你这个傻逼');"
        "evidence = CallEvidence('c', 5.0, ('agent', 'customer'), utterances=(utterance,));"
        "print(pipeline.__file__); print(config.asr.model);"
        "print(json.dumps(sorted(p.name for p in resource_dir('lexicons').iterdir())));"
        "print(resources.versions.redline_model); print(resources.scorecard.version);"
        "print(json.dumps(sorted({h.rule_id for h in text_hits(evidence, resources)})))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(site)], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    module_file, model, listing, redline, scorecard, rules = result.stdout.splitlines()
    assert module_file.startswith(str(site))  # the wheel's copy, not the checkout
    assert model == "embedded"
    assert shipped_lexicons <= set(json.loads(listing))
    # the installed copy applies the shipped red-line model (a non-editable install used to run without it)
    card = json.loads((REPO / "models" / "redline_text" / "redline_card.json").read_text(encoding="utf-8"))
    assert redline == "redline_text@" + card["model_sha256"][:12]
    assert "model.redline_text" in json.loads(rules)  # the model scores 你这个傻逼 0.72 (threshold 0.47)
    assert scorecard == "callcentre-2026.11.1"
