"""Load, validate, freeze and hash callqa's configuration.

Defaults live in ``config/default.toml`` (shipped as package data). A user
file overrides keys; unknown keys and wrong types are refused with the key's
dotted name. The result is an immutable :class:`Config` whose
:attr:`Config.config_hash` is stored on every output row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.resources import read_resource_text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class InputConfig(_Section):
    extensions: tuple[str, ...]
    max_duration_s: float = Field(gt=0)
    channel_roles: tuple[Literal["agent", "customer"], ...] = Field(min_length=1)


class VadConfig(_Section):
    threshold: float = Field(gt=0, lt=1)
    min_speech_duration_ms: int = Field(ge=0)
    min_silence_duration_ms: int = Field(ge=0)
    speech_pad_ms: int = Field(ge=0)
    max_speech_duration_s: float = Field(gt=0)
    silence_floor_dbfs: float
    clip_level: float = Field(gt=0, le=1)


class GuardConfig(_Section):
    min_vad_overlap: float = Field(ge=0, le=1)
    no_speech_prob_max: float = Field(ge=0, le=1)
    no_speech_prob_alone_max: float = Field(ge=0, le=1)
    logprob_min: float
    compression_ratio_max: float = Field(gt=0)
    hallucination_lexicon: str


class AsrConfig(_Section):
    enabled: bool
    model: str = Field(min_length=1)
    device: Literal["auto", "cpu", "cuda"]
    compute_type: str
    cpu_threads: int = Field(ge=0)
    beam_size: int = Field(ge=1)
    language: str
    initial_prompt: str
    word_timestamps: bool
    to_simplified: bool
    batched: bool
    batch_size: int = Field(ge=1)
    crosstalk_margin_db: float
    guard: GuardConfig


class TextConfig(_Section):
    rules_dir: str
    fuzzy: bool
    fuzzy_confidence: float = Field(ge=0, le=1)
    suspect_can_raise_fatal: bool


class PiiConfig(_Section):
    detect: bool
    mask: bool
    mask_char: str = Field(min_length=1, max_length=1)
    chinese_digits: bool


class TimingConfig(_Section):
    speech_rate_max_chars_per_min: float = Field(gt=0)
    speech_rate_min_chars_per_min: float = Field(ge=0)
    speech_rate_min_utterance_s: float = Field(ge=0)
    speech_rate_min_sustained_s: float = Field(ge=0)
    silence_min_s: float = Field(gt=0)
    hold_max_s: float = Field(gt=0)
    hold_announce_window_s: float = Field(ge=0)
    answer_delay_max_s: float = Field(ge=0)
    interruption_min_overlap_s: float = Field(ge=0)
    interruption_min_chars: int = Field(ge=0)
    response_latency_max_s: float = Field(gt=0)
    raised_voice_db: float = Field(gt=0)
    raised_voice_min_s: float = Field(ge=0)
    hangup_trailing_silence_s: float = Field(ge=0)


class ScoringConfig(_Section):
    scorecard: str
    pass_score: float = Field(ge=0, le=100)


class ClassifierConfig(_Section):
    models_dir: str
    redline_model: str
    redline_threshold: float = Field(ge=0, le=1)
    redline_severity: Literal["info", "non_fatal", "fatal"]


class RunConfig(_Section):
    workers: int = Field(ge=1)
    commit_every_calls: int = Field(ge=1)
    commit_every_s: float = Field(gt=0)


class Config(_Section):
    """The whole validated, immutable configuration."""

    input: InputConfig
    vad: VadConfig
    asr: AsrConfig
    text: TextConfig
    pii: PiiConfig
    timing: TimingConfig
    scoring: ScoringConfig
    classifier: ClassifierConfig
    run: RunConfig

    @property
    def config_hash(self) -> str:
        """A stable 16-hex-digit hash of every setting (key order does not matter)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any], source: str = "overrides") -> Config:
        """Return a new config with ``overrides`` (nested dict) applied and validated."""
        return _validate(_deep_merge(self.model_dump(mode="python"), overrides, source, ""), source)


def _deep_merge(base: dict[str, Any], override: dict[str, Any], source: str, prefix: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(source, f"unknown key '{dotted}'")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(source, f"key '{dotted}' must be a table, got {type(value).__name__}")
            merged[key] = _deep_merge(base[key], value, source, dotted + ".")
        else:
            merged[key] = value
    return merged


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(source, f"key '{key}': {first['msg']} (got {first.get('input')!r})") from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None


def default_config() -> Config:
    """The configuration shipped with callqa."""
    return _validate(_parse_toml(read_resource_text("config", "default.toml"), "default.toml"), "default.toml")


def load_config(path: str | Path | None = None) -> Config:
    """Load the defaults, then apply the user file at ``path`` if given.

    Raises:
        ConfigError: the file is missing, not TOML, has an unknown key or a
            value of the wrong type. The message names the file and the key.
    """
    config = default_config()
    if path is None:
        return config
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read: {exc}") from None
    return config.with_overrides(_parse_toml(text, source), source)
