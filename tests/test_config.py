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


# -- strict types, shipped names, paths relative to the file that sets them ------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("[asr]\nbeam_size = true\n", "asr.beam_size"),  # a bool is not a number
    ("[vad]\nsilence_floor_dbfs = nan\n", "vad.silence_floor_dbfs"),  # NaN is not a level
    ("[timing]\nsilence_min_s = inf\n", "timing.silence_min_s"),
    ("[asr]\nenabled = 1\n", "asr.enabled"),  # a number is not a bool
    ("[asr]\ncpu_threads = 0\n", "asr.cpu_threads"),
    ('[asr]\ncpu_threads = "many"\n', "asr.cpu_threads"),
    ('[classifier]\nredline_threshold = "high"\n', "classifier.redline_threshold"),
    ('[pii]\nmask_char = "**"\n', "pii.mask_char"),
])
def test_strict_types_refuse_what_toml_would_coerce(tmp_path, text, key):
    with pytest.raises(ConfigError, match=rf"key '{key}"):
        load_config(write(tmp_path, text))


def test_words_stand_for_defaults_instead_of_zeros(tmp_path):
    config = load_config()
    assert (config.asr.cpu_threads, config.asr.device, config.classifier.redline_threshold) == (
        "auto", "auto", "model")
    assert config.classifier.redline_model == "callqa:models/redline_text"
    assert config.text.rules_dir == "callqa:lexicons" and config.scoring.scorecard == "callqa:config/scorecard.toml"
    tuned = load_config(write(tmp_path, '[asr]\ncpu_threads = 2\n[classifier]\nredline_threshold = 0.7\n'
                                        'redline_model = "off"\n'))
    assert (tuned.asr.cpu_threads, tuned.classifier.redline_threshold, tuned.classifier.redline_model) == (
        2, 0.7, "off")


def test_cross_field_checks_name_both_keys(tmp_path):
    with pytest.raises(ConfigError, match="mask = true needs detect = true"):
        load_config(write(tmp_path, "[pii]\ndetect = false\n"))
    with pytest.raises(ConfigError, match="speech_rate_min_chars_per_min .* must be below speech_rate_max"):
        load_config(write(tmp_path, "[timing]\nspeech_rate_min_chars_per_min = 300.0\n"))
    with pytest.raises(ConfigError, match="channel_roles must name each role once"):
        load_config(write(tmp_path, '[input]\nchannel_roles = ["agent", "agent"]\n'))
    # one line naming the keys, without the whole [vad] table dumped after it
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[vad]\nthreshold = 0.5\nfaint_threshold = 0.6\n"))
    assert str(caught.value).endswith("key 'vad': Value error, faint_threshold (0.6) must be below threshold (0.5), "
                                      'or "off"') and "{" not in str(caught.value)


def test_relative_paths_in_a_user_file_are_relative_to_that_file(tmp_path, monkeypatch):
    folder = tmp_path / "settings"
    folder.mkdir()
    path = folder / "callqa.toml"
    path.write_text('[text]\nrules_dir = "my_rules"\n[scoring]\nscorecard = "../cards/strict.toml"\n'
                    '[classifier]\nmodels_dir = "trained"\nredline_model = "off"\n'
                    '[asr.guard]\nhallucination_lexicon = "callqa:lexicons/hallucinations.txt"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(path.relative_to(tmp_path))  # given relative to the working directory
    assert config.text.rules_dir == str(folder / "my_rules")
    assert config.scoring.scorecard == str(folder / "../cards/strict.toml")
    assert config.classifier.models_dir == str(folder / "trained")
    assert config.classifier.redline_model == "off"  # words and shipped names are not paths
    assert config.asr.guard.hallucination_lexicon == "callqa:lexicons/hallucinations.txt"
    assert config.models_dir(None) == folder / "trained"


def test_models_dir_is_in_the_store_by_default(tmp_path):
    config = load_config()
    assert config.models_dir(tmp_path / "store") == tmp_path / "store" / "models"
    with pytest.raises(ConfigError, match="give the store"):
        config.models_dir(None)


def test_run_and_reports_settings_do_not_change_the_hash(tmp_path):
    base = default_config().config_hash
    assert load_config(write(tmp_path, "[run]\nworkers = 4\ncommit_every_s = 5.0\n")).config_hash == base
    assert load_config(write(tmp_path, "[reports]\ntop_calls = 3\n")).config_hash == base
    assert load_config(write(tmp_path, "[pii]\nmask_char = \"#\"\n")).config_hash != base
    assert load_config(write(tmp_path, "[asr.guard]\nrepeat_run_min = 4\n")).config_hash != base


def test_every_number_that_changes_a_result_is_a_config_key():
    """Numbers that were constants in callqa 0.1 (transcribe, loudness, interruptions, hang-up, guard, features)."""
    config = default_config()
    assert (config.asr.cut_pad_s, config.asr.join_pause_s, config.asr.window_s) == (0.4, 0.2, 29.5)
    assert (config.vad.onset_above_floor_db, config.vad.onset_below_speech_db, config.vad.onset_max_shift_s) == (
        12.0, 10.0, 1.5)
    assert config.timing.interruption_unchecked_confidence == 0.6
    assert config.timing.hangup_estimated_confidence == 0.5
    assert config.asr.guard.repeat_run_min == 3 and config.asr.guard.prompt_echo_min_chars == 6
    assert config.features.low_confidence_word_probability == 0.5


def test_a_fifo_named_as_config_scorecard_or_lexicon_is_refused_not_waited_on(tmp_path) -> None:
    import os

    from pipeline.asr.guard import load_hallucination_lexicon
    from pipeline.errors import ConfigError, LexiconError
    from pipeline.scoring.scorecard import load_scorecard

    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)  # reading it would block until someone writes
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_scorecard(fifo)
    with pytest.raises(LexiconError, match="not a regular file"):
        load_hallucination_lexicon(str(fifo))
