"""config/ and lexicons/ ship inside the wheel and load through one function."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_config_and_lexicons_and_they_load(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("callqa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_lexicons = {p.name for p in (REPO / "lexicons").iterdir() if p.suffix in (".toml", ".txt")}
    assert "pipeline/_config/default.toml" in names
    assert shipped_lexicons and {f"pipeline/_lexicons/{n}" for n in shipped_lexicons} <= names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import pipeline; from pipeline.config import load_config; from pipeline.resources import resource_dir;"
        "print(pipeline.__file__); print(load_config().asr.model);"
        "print(json.dumps(sorted(p.name for p in resource_dir('lexicons').iterdir())))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(site)], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    module_file, model, listing = result.stdout.splitlines()
    assert module_file.startswith(str(site))  # the wheel's copy, not the checkout
    assert model == "embedded"
    assert shipped_lexicons <= set(json.loads(listing))
