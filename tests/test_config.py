from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import default_config, load_config
from pipeline.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_with_documented_values():
    config = load_config()
    assert config.input.channel_roles == ("agent", "customer")
    assert config.asr.model == "embedded"
    assert config.timing.silence_min_s == 5.0
    assert len(config.config_hash) == 16


def test_override_changes_value_and_hash(tmp_path):
    config = load_config(write(tmp_path, "[timing]\nsilence_min_s = 8.0\n"))
    assert config.timing.silence_min_s == 8.0
    assert config.timing.hold_max_s == default_config().timing.hold_max_s  # untouched keys keep defaults
    assert config.config_hash != default_config().config_hash


def test_hash_is_stable_and_ignores_key_order(tmp_path):
    a = load_config(write(tmp_path, "[vad]\nthreshold = 0.4\nspeech_pad_ms = 50\n"))
    b = load_config(write(tmp_path, "[vad]\nspeech_pad_ms = 50\nthreshold = 0.4\n"))
    assert a.config_hash == b.config_hash


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"user.toml: unknown key 'timing.silence_min_sec'"):
        load_config(write(tmp_path, "[timing]\nsilence_min_sec = 3\n"))


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'timings'"):
        load_config(write(tmp_path, "[timings]\nx = 1\n"))


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'asr.beam_size'.*'five'"):
        load_config(write(tmp_path, '[asr]\nbeam_size = "five"\n'))


def test_out_of_range_value(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'vad.threshold'"):
        load_config(write(tmp_path, "[vad]\nthreshold = 1.5\n"))


def test_section_given_as_value(tmp_path):
    with pytest.raises(ConfigError, match="key 'vad' must be a table"):
        load_config(write(tmp_path, "vad = 3\n"))


def test_broken_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[asr\nmodel = 1"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_config_is_immutable():
    config = load_config()
    with pytest.raises(ValidationError):
        config.asr.beam_size = 1  # type: ignore[misc]
