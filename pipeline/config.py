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
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.paths import is_shipped, read_resource_text, read_text_file

# Strict scalar types: TOML's `beam_size = true` or `silence_floor_dbfs = nan`
# are refused instead of silently becoming 1 or NaN.
Num = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Section):
    extensions: tuple[Str, ...] = Field(min_length=1)
    max_duration_s: Annotated[Num, Field(gt=0)]
    channel_roles: tuple[Literal["agent", "customer"], ...] = Field(min_length=1)
    min_sample_rate_hz: Annotated[Int, Field(gt=0)]
    truncation_tolerance_s: Annotated[Num, Field(ge=0)]
    truncation_tolerance_share: Annotated[Num, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _check(self) -> InputConfig:
        if len(set(self.channel_roles)) != len(self.channel_roles):
            raise ValueError(f"channel_roles must name each role once, got {list(self.channel_roles)}")
        if any(not e.strip(". ") for e in self.extensions):
            raise ValueError("extensions must not be empty strings")
        return self


class VadConfig(_Section):
    threshold: Annotated[Num, Field(gt=0, lt=1)]
    faint_threshold: Literal["off"] | Annotated[Num, Field(gt=0, lt=1)]
    min_speech_duration_ms: Annotated[Int, Field(ge=0)]
    min_silence_duration_ms: Annotated[Int, Field(ge=0)]
    speech_pad_ms: Annotated[Int, Field(ge=0)]
    max_speech_duration_s: Annotated[Num, Field(gt=0)]
    chunk_s: Annotated[Num, Field(gt=1)]
    chunk_search_s: Annotated[Num, Field(ge=0)]
    chunk_quiet_s: Annotated[Num, Field(gt=0)]
    silence_floor_dbfs: Annotated[Num, Field(le=0)]
    clip_level: Annotated[Num, Field(gt=0, le=1)]
    loudness_frame_s: Annotated[Num, Field(gt=0, le=1)]
    onset_repair: Bool
    onset_above_floor_db: Annotated[Num, Field(ge=0)]
    onset_below_speech_db: Annotated[Num, Field(ge=0)]
    onset_max_shift_s: Annotated[Num, Field(ge=0)]

    @model_validator(mode="after")
    def _check(self) -> VadConfig:
        if self.faint_threshold != "off" and self.faint_threshold >= self.threshold:
            raise ValueError(f"faint_threshold ({self.faint_threshold:g}) must be below threshold "
                             f"({self.threshold:g}), or \"off\"")
        return self


class GuardConfig(_Section):
    min_vad_overlap: Annotated[Num, Field(ge=0, le=1)]
    no_speech_prob_max: Annotated[Num, Field(ge=0, le=1)]
    no_speech_prob_alone_max: Annotated[Num, Field(ge=0, le=1)]
    redecode_no_speech_prob_max: Annotated[Num, Field(ge=0, le=1)]
    logprob_min: Num
    compression_ratio_max: Annotated[Num, Field(gt=0)]
    repeat_run_min: Annotated[Int, Field(ge=2)]
    repeat_min_chars: Annotated[Int, Field(ge=1)]
    prompt_echo_min_chars: Annotated[Int, Field(ge=1)]
    hallucination_lexicon: Annotated[Str, Field(min_length=1)]


class AsrConfig(_Section):
    enabled: Bool
    model: Annotated[Str, Field(min_length=1)]
    device: Literal["auto", "cpu", "cuda"]
    compute_type: Annotated[Str, Field(min_length=1)]
    cpu_threads: Literal["auto"] | Annotated[Int, Field(ge=1)]
    beam_size: Annotated[Int, Field(ge=1)]
    language: Annotated[Str, Field(min_length=1)]
    initial_prompt: Str
    word_timestamps: Bool
    to_simplified: Bool
    batched: Bool
    batch_size: Annotated[Int, Field(ge=1)]
    drop_crosstalk: Bool
    crosstalk_margin_db: Annotated[Num, Field(gt=0)]
    crosstalk_covered_share: Annotated[Num, Field(gt=0, le=1)]
    cut_pad_s: Annotated[Num, Field(ge=0)]
    join_pause_s: Annotated[Num, Field(ge=0)]
    window_s: Annotated[Num, Field(gt=1, le=30)]
    no_repeat_ngram_size: Annotated[Int, Field(ge=0)]
    piece_level_dbfs: Literal["off"] | Annotated[Num, Field(le=0)]
    piece_max_gain_db: Annotated[Num, Field(ge=0)]
    loop_min_repeats: Annotated[Int, Field(ge=2)]
    loop_min_tail_chars: Annotated[Int, Field(ge=1)]
    redecode: Bool
    redecode_passes: tuple[Literal["fresh_windows", "alone", "alone_with_fallback"], ...] = Field(max_length=5)
    redecode_min_s: Annotated[Num, Field(ge=0)]
    redecode_context_s: Annotated[Num, Field(ge=0)]
    redecode_window_s: Annotated[Num, Field(gt=1, le=30)]
    redecode_temperatures: tuple[Annotated[Num, Field(ge=0, le=1)], ...] = Field(min_length=1)
    redecode_prompt: Str
    coverage_snap_words: Bool
    sound_above_floor_db: Literal["off"] | Annotated[Num, Field(gt=0)]
    sound_below_speech_db: Annotated[Num, Field(ge=0)]
    decode_vad_missed: Bool
    coverage_word_margin_s: Annotated[Num, Field(ge=0)]
    gap_min_s: Annotated[Num, Field(ge=0)]
    guard: GuardConfig


class TextConfig(_Section):
    rules_dir: Annotated[Str, Field(min_length=1)]
    fuzzy: Bool
    fuzzy_confidence: Annotated[Num, Field(ge=0, le=1)]
    fuzzy_common_word_freq: Annotated[Int, Field(ge=0)]
    fuzzy_other_words_freq: Annotated[Int, Field(ge=0)]
    suspect_can_raise_fatal: Bool
    turn_max_gap_s: Annotated[Num, Field(ge=0)]
    repeat_word_min_freq: Annotated[Int, Field(ge=0)]
    rare_word_max_freq: Annotated[Int, Field(ge=0)]
    second_look: Bool
    second_look_beam_size: Annotated[Int, Field(ge=1, le=20)]
    second_look_pad_s: Annotated[Num, Field(ge=0, le=5)]
    second_look_max_per_call: Annotated[Int, Field(ge=0)]
    second_look_model_hits: Bool
    sound_check: Bool
    sound_check_max_drop: Annotated[Num, Field(ge=0, le=50)]
    sound_check_min_phrase_prob: Annotated[Num, Field(ge=0, le=1)]
    sound_check_max_per_call: Annotated[Int, Field(ge=0)]

    @property
    def uses_audio(self) -> bool:
        """Whether the text stage goes back to the audio (second look, model hits re-checked, sound check)."""
        return self.second_look or self.second_look_model_hits or self.sound_check


class PiiConfig(_Section):
    detect: Bool
    mask: Bool
    mask_char: Annotated[Str, Field(min_length=1, max_length=1)]
    chinese_digits: Bool

    @model_validator(mode="after")
    def _check(self) -> PiiConfig:
        if self.mask and not self.detect:
            raise ValueError("mask = true needs detect = true")
        return self


class TimingConfig(_Section):
    speech_rate_max_chars_per_min: Annotated[Num, Field(gt=0)]
    speech_rate_min_chars_per_min: Annotated[Num, Field(ge=0)]
    speech_rate_min_utterance_s: Annotated[Num, Field(ge=0)]
    speech_rate_min_sustained_s: Annotated[Num, Field(ge=0)]
    silence_min_s: Annotated[Num, Field(gt=0)]
    hold_max_s: Annotated[Num, Field(gt=0)]
    hold_announce_window_s: Annotated[Num, Field(ge=0)]
    answer_delay_max_s: Annotated[Num, Field(ge=0)]
    interruption_min_overlap_s: Annotated[Num, Field(ge=0)]
    interruption_min_chars: Annotated[Int, Field(ge=0)]
    interruption_simultaneous_start_s: Annotated[Num, Field(ge=0)]
    interruption_unchecked_confidence: Annotated[Num, Field(ge=0, le=1)]
    interruption_turn_gap_s: Annotated[Num, Field(ge=0)]
    interruption_unchecked_min_speech_s: Annotated[Num, Field(ge=0)]
    response_latency_max_s: Annotated[Num, Field(gt=0)]
    raised_voice_db: Annotated[Num, Field(gt=0)]
    raised_voice_min_s: Annotated[Num, Field(ge=0)]
    raised_voice_smoothing_s: Annotated[Num, Field(gt=0)]
    raised_voice_bridge_s: Annotated[Num, Field(ge=0)]
    raised_voice_min_baseline_s: Annotated[Num, Field(ge=0)]
    hangup_trailing_silence_s: Annotated[Num, Field(ge=0)]
    hangup_estimated_confidence: Annotated[Num, Field(ge=0, le=1)]
    onset_repair: Bool
    onset_above_floor_db: Annotated[Num, Field(ge=0)]
    onset_below_speech_db: Annotated[Num, Field(ge=0)]
    onset_max_shift_s: Annotated[Num, Field(ge=0)]

    @model_validator(mode="after")
    def _check(self) -> TimingConfig:
        if self.speech_rate_min_chars_per_min >= self.speech_rate_max_chars_per_min:
            raise ValueError(f"speech_rate_min_chars_per_min ({self.speech_rate_min_chars_per_min:g}) must be "
                             f"below speech_rate_max_chars_per_min ({self.speech_rate_max_chars_per_min:g})")
        return self


class FeaturesConfig(_Section):
    low_confidence_word_probability: Annotated[Num, Field(ge=0, le=1)]


class ScoringConfig(_Section):
    scorecard: Annotated[Str, Field(min_length=1)]


class ClassifierConfig(_Section):
    models_dir: Annotated[Str, Field(min_length=1)]
    redline_model: Annotated[Str, Field(min_length=1)]
    redline_threshold: Literal["model"] | Annotated[Num, Field(gt=0, le=1)]
    redline_severity: Literal["info", "non_fatal", "fatal"]
    redline_min_chars: Annotated[Int, Field(ge=1)]
    redline_review_margin: Annotated[Num, Field(ge=0, le=1)]


class RunConfig(_Section):
    workers: Annotated[Int, Field(ge=1)]
    commit_every_calls: Annotated[Int, Field(ge=1)]
    commit_every_s: Annotated[Num, Field(gt=0)]
    call_timeout_s: Annotated[Num, Field(gt=0)]


class StoreConfig(_Section):
    #: Object-store options (endpoint, region...) for delta-rs and pyarrow, on top of the environment's.
    storage_options: dict[Str, Str]


class ReportsConfig(_Section):
    intervention_score: Annotated[Num, Field(ge=0, le=100)]
    intervention_min_calls: Annotated[Int, Field(ge=1)]
    trend_periods: Annotated[Int, Field(ge=1, le=60)]
    common_problem_agent_share: Annotated[Num, Field(gt=0, le=1)]
    top_calls: Annotated[Int, Field(ge=1)]


#: Keys whose values are file system paths: a relative path in a user's file is
#: relative to that file's directory (never the current directory).
PATH_KEYS = (("text", "rules_dir"), ("scoring", "scorecard"), ("classifier", "models_dir"),
             ("classifier", "redline_model"), ("asr", "guard", "hallucination_lexicon"))
STORE_PLACEHOLDER = "{store}"
#: Sections that do not change results and are left out of :attr:`Config.config_hash`.
NOT_HASHED = ("run", "reports", "store")
#: Tables whose keys are the user's own (a user file replaces them whole instead of merging known keys).
FREE_TABLES = ("store.storage_options",)


class Config(_Section):
    """The whole validated, immutable configuration."""

    input: InputConfig
    vad: VadConfig
    asr: AsrConfig
    text: TextConfig
    pii: PiiConfig
    timing: TimingConfig
    features: FeaturesConfig
    scoring: ScoringConfig
    classifier: ClassifierConfig
    run: RunConfig
    reports: ReportsConfig
    store: StoreConfig

    @property
    def config_hash(self) -> str:
        """A stable 16-hex-digit hash of every setting that can change a call's result.

        ``[run]`` (workers, commit cadence, time limit), ``[reports]`` and
        ``[store]`` change how callqa runs, presents or stores results, not the
        results: they are left out, so changing them never makes ``callqa run``
        redo calls (and no storage credentials go into a hash).
        """
        settings = self.model_dump(mode="json", exclude=set(NOT_HASHED))
        canonical = json.dumps(settings, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any], source: str = "overrides") -> Config:
        """Return a new config with ``overrides`` (nested dict) applied and validated."""
        return _validate(_deep_merge(self.model_dump(mode="python"), overrides, source, ""), source)

    def models_dir(self, store_root: str | Path | None) -> Path:
        """The classifier models directory, with ``{store}`` replaced by ``store_root``.

        Raises:
            ConfigError: ``models_dir`` names the store but no store was given, or
                the store is on an object store (classifiers live on a local disk).
        """
        from pipeline.store.location import is_uri

        value = self.classifier.models_dir
        if STORE_PLACEHOLDER in value:
            if store_root is None:
                raise ConfigError("classifier.models_dir", f"{value!r} names the store's directory: give the "
                                  "store (--store STORE) or set [classifier] models_dir to a directory")
            if is_uri(store_root):
                raise ConfigError("classifier.models_dir", f"{value!r} names the store's directory, but "
                                  f"{store_root} is on an object store and classifiers are kept on a local disk: "
                                  "set [classifier] models_dir to a local directory")
            value = value.replace(STORE_PLACEHOLDER, str(store_root))
        return Path(value)


def _deep_merge(base: dict[str, Any], override: dict[str, Any], source: str, prefix: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(source, f"unknown key {dotted!r}")
        if isinstance(base[key], dict) and dotted not in FREE_TABLES:
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
        given = first.get("input")
        # a check across keys of one table names the keys in its message: the whole table adds nothing
        got = "" if isinstance(given, dict) else f" (got {given!r})"
        raise ConfigError(source, f"key '{key}': {first['msg']}{got}") from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None


def _resolve_paths(overrides: dict[str, Any], base: Path) -> None:
    """Make the relative path values of a user's file relative to that file's directory (in place)."""
    for key in PATH_KEYS:
        section: Any = overrides
        for part in key[:-1]:
            section = section.get(part) if isinstance(section, dict) else None
        value = section.get(key[-1]) if isinstance(section, dict) else None
        if (not isinstance(value, str) or not value or is_shipped(value) or value == "off"
                or value.startswith(STORE_PLACEHOLDER) or Path(value).expanduser().is_absolute()):
            continue
        section[key[-1]] = str(base / value)


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
        text = read_text_file(path)
    except FileNotFoundError:
        raise ConfigError(source, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read: {exc}") from None
    overrides = _parse_toml(text, source)
    _resolve_paths(overrides, Path(path).resolve().parent)
    return config.with_overrides(overrides, source)
