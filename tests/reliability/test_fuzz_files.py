"""Hypothesis fuzzing of the files an operator writes: configuration, rule sets and manifests.
Each is loaded or refused with a documented error (ConfigError, LexiconError, ManifestError) in
one line; never another exception, and never a wait."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _support import SCALE, record_figures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.analysis import ResourceSpec
from pipeline.config import default_config, load_config
from pipeline.errors import CallqaError, ConfigError, LexiconError, ManifestError
from pipeline.inputs import plan_input
from pipeline.text.matcher import build_matcher, detect_phrases, example_evidence, run_examples
from pipeline.text.rules import load_rules

EXAMPLES = 150 * SCALE
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
TRIED: dict[str, int] = {}


def within(seconds: float, fn, *args):  # type: ignore[no-untyped-def]
    """fn(*args) in a thread, failing the test if it has not returned in ``seconds`` (a hang)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def documented(kind: type[CallqaError], fn, *args):  # type: ignore[no-untyped-def]
    """The result of fn(*args), or None when it raised ``kind`` with a one-line message."""
    try:
        return within(30, fn, *args)
    except kind as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        assert "Traceback" not in str(exc)
        return None


# -- a small TOML writer for generated values -------------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(tables: dict[str, dict[str, Any]], top: dict[str, Any] | None = None) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in (top or {}).items()]
    for name, body in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 0.0, 1e-9, 1e12, "", "auto", "off", "model", "embedded", "agent"]),
                    TEXT)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=2))


# -- configuration ---------------------------------------------------------------------------------
def _keys() -> list[tuple[str, str]]:
    dumped = default_config().model_dump()
    keys = []
    for section, body in dumped.items():
        for key, value in body.items():
            if isinstance(value, dict):
                keys += [(f"{section}.{key}", sub) for sub in value]
            else:
                keys.append((section, key))
    return keys


KEYS = _keys()


@st.composite
def config_files(draw) -> str:
    tables: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(1, 6))):
        section, key = draw(st.one_of(st.sampled_from(KEYS), st.tuples(st.sampled_from(["run", "vad", "nope"]), TEXT)))
        tables.setdefault(section, {})[key] = draw(VALUES)
    if draw(st.booleans()):
        tables.setdefault("asr", {})["enabled"] = False
    return toml_document(tables)


def test_fuzzed_config_files_load_or_fail_with_a_config_error(tmp_path):
    path = tmp_path / "callqa.toml"

    @FUZZ
    @given(st.one_of(config_files(), TEXT.map(lambda t: f"[run]\nworkers = {t}\n"), st.binary(max_size=64)
                     .map(lambda b: b.decode("latin-1"))))
    def check(text: str) -> None:
        path.write_text(text, encoding="utf-8")
        TRIED["config"] = TRIED.get("config", 0) + 1
        config = documented(ConfigError, load_config, path)
        if config is None:
            return
        assert len(config.config_hash) >= 8
        for number in (config.vad.silence_floor_dbfs, config.input.max_duration_s, config.run.call_timeout_s):
            assert math.isfinite(number)
        assert config.timing.speech_rate_min_chars_per_min < config.timing.speech_rate_max_chars_per_min
        assert config.input.extensions and len(set(config.input.channel_roles)) == len(config.input.channel_roles)
        if not config.asr.enabled:  # what `callqa run` asks next: only documented errors there too
            documented(CallqaError, ResourceSpec(config, transcriber=None).versions)

    check()


@pytest.mark.parametrize(("text", "reason"), [
    ("[asr]\nbeam_size = true\n", "asr.beam_size"),
    ("[vad]\nsilence_floor_dbfs = nan\n", "vad.silence_floor_dbfs"),
    ("[input]\nextensions = []\n", "input.extensions"),
    ('[input]\nchannel_roles = ["agent", "agent"]\n', "channel_roles"),
    ("[timing]\nspeech_rate_min_chars_per_min = 500.0\nspeech_rate_max_chars_per_min = 100.0\n", "speech_rate"),
])
def test_the_issues_silent_misconfigurations_are_refused(tmp_path, text, reason):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert reason in str(info.value) and "\n" not in str(info.value)


# -- rule sets ---------------------------------------------------------------------------------------
VALID_RULE = {
    "id": "t.rule", "name_zh": "测试", "name_en": "test", "category": "forbidden_phrase", "severity": "non_fatal",
    "error_class": "customer", "role": "agent", "phrases": ["不清楚"], "examples_match": ["这个我不清楚", "不清楚"],
    "examples_no_match": ["我知道", "好的"],
}
REGEX_PIECES = st.sampled_from(["a", "b", "您", "好", ".", "*", "+", "?", "(", ")", "[", "]", "|", "^", "$", "{2}",
                                "{1,3}", "\\d", "\\w", "\\b", "\\1", "(?=", "(?<!", "(?i)", "-", "\\"])
REGEXES = st.lists(REGEX_PIECES, min_size=1, max_size=10).map("".join)


@st.composite
def rule_files(draw) -> str:
    rules = []
    for _ in range(draw(st.integers(0, 3))):
        rule: dict[str, Any] = dict(VALID_RULE, id=draw(st.sampled_from(["r1", "r2", "r1 ", ""])))
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from([*VALID_RULE, "regexes", "kind", "window", "window_s", "min_count", "fuzzy",
                                        "triggers", "exceptions_followed", "unknown_key"]))
            choice = draw(st.integers(0, 3))
            if choice == 0:
                rule.pop(key, None)
            elif key == "regexes" or choice == 1:
                rule[key] = draw(st.lists(REGEXES, max_size=3)) if key == "regexes" else draw(VALUES)
            else:
                rule[key] = draw(VALUES)
        rules.append(rule)
    top: dict[str, Any] = {"version": draw(st.one_of(st.just("fuzz-1"), SCALARS))}
    text = toml_document({}, top)
    if draw(st.booleans()):
        text += toml_document({"lists": {"hold_announcement": draw(VALUES)}})
    if draw(st.integers(0, 4)) == 0:
        text += f"rules = {toml_value(draw(VALUES))}\n"
    else:
        for rule in rules:
            text += "[[rules]]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in rule.items())
    return text


def test_fuzzed_rule_sets_load_or_fail_with_a_lexicon_error(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    text_config = load_config().text

    @FUZZ
    @given(rule_files())
    def check(text: str) -> None:
        (directory / "fuzz.toml").write_text(text, encoding="utf-8")
        TRIED["rules"] = TRIED.get("rules", 0) + 1
        rules = documented(LexiconError, load_rules, directory)
        if rules is None:
            return
        matcher = build_matcher(rules, text_config)
        started = time.perf_counter()
        for sample in ("a" * 40 + "b", "您好您好请问" * 20, "这个我不清楚"):
            detect_phrases(example_evidence(sample, "agent"), matcher, text_config)
        run_examples(matcher, text_config)
        assert time.perf_counter() - started < 10

    check()


def test_a_fifo_among_rule_files_is_refused_without_waiting(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "a.toml").write_text(toml_document({}, {"version": "1"}), encoding="utf-8")
    os.mkfifo(directory / "b.toml")
    with pytest.raises(LexiconError, match="not a regular file"):
        within(10, load_rules, directory)


# -- manifests ---------------------------------------------------------------------------------------
@pytest.fixture
def manifest_dir(tmp_path) -> Path:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"RIFF")
    os.mkfifo(tmp_path / "audio" / "pipe.wav")
    os.symlink(tmp_path / "audio" / "gone.wav", tmp_path / "audio" / "dangling.wav")
    return tmp_path


PATHS = st.one_of(st.sampled_from(["audio/a.wav", "audio/pipe.wav", "audio/dangling.wav", "audio", "missing.wav",
                                   "/dev/zero", "/dev/null", "", "audio/a.wav\0x", "../" * 40 + "etc",
                                   "a" * 5000, "pipe:0", "file:audio/a.wav"]), TEXT)
STARTED = st.one_of(st.sampled_from(["", "2026-11-22T09:30:00+08:00", "9999-12-31T23:59:59+14:00", "1970-01-01",
                                     "2026-02-30", "nan", "2026-11-22T25:00"]), TEXT,
                    st.datetimes().map(lambda d: d.isoformat()))
ROLES = st.one_of(st.sampled_from(["", "agent,customer", "customer;agent;ignore", "agent,agent", "boss"]), TEXT)


@st.composite
def manifest_rows(draw) -> list[dict[str, str]]:
    rows = []
    for i in range(draw(st.integers(0, 4))):
        row = {"call_id": draw(st.one_of(st.just(f"c{i}"), st.just("dup"), TEXT)), "path": draw(PATHS),
               "started_at": draw(STARTED), "channel_roles": draw(ROLES), draw(TEXT): draw(TEXT)}
        for key in draw(st.lists(st.sampled_from(list(row)), max_size=2)):
            row.pop(key, None)
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]], raw: bytes | None) -> None:
    if raw is not None:
        path.write_bytes(raw)
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(json.dumps(c, ensure_ascii=False) for c in columns)]
    lines += [",".join(json.dumps(row.get(c, ""), ensure_ascii=False) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")


def test_fuzzed_csv_manifests_plan_or_fail_with_a_manifest_error(manifest_dir):
    path = manifest_dir / "calls.csv"

    @FUZZ
    @given(manifest_rows(), st.one_of(st.none(), st.binary(max_size=200)))
    def check(rows: list[dict[str, str]], raw: bytes | None) -> None:
        _write_csv(path, rows, raw)
        TRIED["manifests"] = TRIED.get("manifests", 0) + 1
        plan = documented(ManifestError, plan_input, path, ("wav",))
        if plan is None:
            return
        assert len({job.call_id for job in plan.jobs}) == len(plan.jobs)
        for job in plan.jobs:
            assert job.call_id and isinstance(job.path, str) and "\n" not in job.input_error
            if not job.input_error:
                assert Path(job.path).is_file() and job.call_date[:4].isdigit()
                assert "1990-01-01" <= job.call_date <= "2200-01-01"

    check()


PARQUET_COLUMNS = st.sampled_from([
    pa.array(["c1", "c2"]), pa.array([1, 2]), pa.array([1.5, float("nan")]), pa.array([None, None], pa.string()),
    pa.array([[1], [2, 3]]), pa.array([{"x": 1}, {"x": 2}]), pa.array([b"\x00\xff", b""]),
    pa.array(["audio/a.wav", "/dev/zero"]), pa.array(["dup", "dup"]),
    pa.array([0, 10**15], pa.timestamp("ms", tz="Asia/Shanghai")), pa.array([0, 10**6], pa.date32()),
])


def test_fuzzed_parquet_manifests_plan_or_fail_with_a_manifest_error(manifest_dir):
    path = manifest_dir / "calls.parquet"

    @FUZZ
    @given(st.dictionaries(st.sampled_from(["call_id", "path", "started_at", "channel_roles", "agent_id", "x"]),
                           PARQUET_COLUMNS, max_size=5), st.integers(0, 3))
    def check(columns: dict[str, pa.Array], cut: int) -> None:
        if columns:
            pq.write_table(pa.table(columns), path)
            if cut:  # a damaged file
                data = path.read_bytes()
                path.write_bytes(data[: len(data) * cut // 4])
        else:
            path.write_bytes(b"PAR1garbage")
        TRIED["manifests"] = TRIED.get("manifests", 0) + 1
        plan = documented(ManifestError, plan_input, path, ("wav",))
        if plan is not None:
            assert all(job.call_id for job in plan.jobs)

    check()


def test_figures():
    """Record how many files each fuzz test tried (docs/reliability.md)."""
    record_figures("fuzz_files", **TRIED, undocumented_errors=0, hangs=0)
    assert all(count >= 1 for count in TRIED.values())
