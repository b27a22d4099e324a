"""Load and validate QA rule sets (``lexicons/*.toml``).

A rule set file holds a ``version``, optional named phrase ``[lists]`` (hold
announcements, backchannels... for the timing detectors) and ``[[rules]]``.
See ``lexicons/README.md`` for the format. Every problem raises
:class:`~pipeline.errors.LexiconError` naming the file, the line and the key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from pipeline.errors import LexiconError
from pipeline.paths import is_shipped, resolve
from pipeline.records import CATEGORIES, ERROR_CLASSES, SEVERITIES
from pipeline.text.patterns import PatternError, compile_pattern
from pipeline.text.phrases import expand_phrases

KINDS = ("phrase", "required", "count")
SCOPES = ("agent", "customer", "any")
WINDOWS = ("anywhere", "first", "last")

_KEYS = {
    "id", "name_zh", "name_en", "category", "severity", "error_class", "role", "kind",
    "phrases", "regexes", "fuzzy", "window", "window_s", "min_count", "exceptions_preceded",
    "exceptions_followed", "exception_window_s", "allowed_longer", "requires_nearby",
    "nearby_window_s", "examples_match", "examples_no_match", "triggers", "allowed_longer_regexes",
}
#: Keys whose phrases may mark optional parts, "(你)烦不烦" (see pipeline/text/phrases.py).
_PHRASE_KEYS = ("phrases", "exceptions_preceded", "exceptions_followed", "allowed_longer", "requires_nearby",
                "triggers")


@dataclass(frozen=True)
class Rule:
    """One declarative QA rule (see ``lexicons/README.md``)."""

    id: str
    name_zh: str
    name_en: str
    category: str
    severity: str
    error_class: str
    role: str
    kind: str = "phrase"
    phrases: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    fuzzy: bool = False
    window: str = "anywhere"
    window_s: float = 0.0
    min_count: int = 1
    exceptions_preceded: tuple[str, ...] = ()
    exceptions_followed: tuple[str, ...] = ()
    exception_window_s: float = 10.0
    allowed_longer: tuple[str, ...] = ()
    allowed_longer_regexes: tuple[str, ...] = ()
    requires_nearby: tuple[str, ...] = ()
    nearby_window_s: float = 10.0
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class RuleSet:
    """All rules of a directory; ``version`` combines every file's version and content."""

    version: str
    rules: tuple[Rule, ...]
    lists: dict[str, tuple[str, ...]]

    def phrases(self) -> set[str]:
        """Every phrase any rule or list mentions (for the segmenter's user words)."""
        out: set[str] = set()
        for r in self.rules:
            out.update(r.phrases, r.exceptions_preceded, r.exceptions_followed,
                       r.allowed_longer, r.requires_nearby, r.triggers)
        for values in self.lists.values():
            out.update(values)
        return out


def _lex_error(message: str) -> LexiconError:
    """LexiconError from "PATH[:LINE]: reason"."""
    path, _, reason = message.partition(": ")
    return LexiconError(path, reason)


def _line_of(text: str, rule_index: int, key: str | None) -> int:
    """Best-effort 1-based line of the ``rule_index``-th ``[[rules]]`` (and ``key`` inside it)."""
    lines = text.splitlines()
    seen = -1
    start = 0
    for i, line in enumerate(lines):
        if line.strip() == "[[rules]]":
            seen += 1
            if seen == rule_index:
                start = i
                break
    if key is None:
        return start + 1
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == "[[rules]]":
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[j]):
            return j + 1
    return start + 1


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _lex_error(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _rule(raw: dict[str, Any], path: str, text: str, index: int) -> Rule:
    def where(key: str | None) -> str:
        return f"{path}:{_line_of(text, index, key)}: rule #{index + 1} key {key or '(rule)'!r}"

    unknown = set(raw) - _KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise _lex_error(f"{where(key)}: unknown key")
    for key in ("id", "name_zh", "name_en", "category", "severity", "error_class", "role"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _lex_error(f"{where(key if key in raw else None)}: missing or empty {key!r}")
    checks = {"category": tuple(CATEGORIES), "severity": SEVERITIES, "error_class": ERROR_CLASSES,
              "role": SCOPES, "kind": KINDS, "window": WINDOWS}
    for key, allowed in checks.items():
        if key in raw and raw[key] not in allowed:
            raise _lex_error(f"{where(key)}: {raw[key]!r} not one of {', '.join(allowed)}")
    fields: dict[str, Any] = {k: raw[k] for k in ("id", "name_zh", "name_en", "category",
                                                   "severity", "error_class", "role")}
    fields["kind"] = raw.get("kind", "phrase")
    fields["window"] = raw.get("window", "anywhere")
    for key in ("phrases", "regexes", "exceptions_preceded", "exceptions_followed", "allowed_longer",
                "requires_nearby", "examples_match", "examples_no_match", "triggers", "allowed_longer_regexes"):
        if key in raw:
            fields[key] = _strs(raw[key], where(key))
    for key in _PHRASE_KEYS:
        if key in fields:
            try:
                fields[key] = expand_phrases(fields[key])
            except ValueError as exc:
                raise _lex_error(f"{where(key)}: {exc}") from None
    for key in ("window_s", "exception_window_s", "nearby_window_s"):
        if key in raw:
            if not isinstance(raw[key], int | float) or isinstance(raw[key], bool) or raw[key] < 0:
                raise _lex_error(f"{where(key)}: expected a number >= 0")
            fields[key] = float(raw[key])
    if "min_count" in raw:
        if not isinstance(raw["min_count"], int) or isinstance(raw["min_count"], bool) or raw["min_count"] < 1:
            raise _lex_error(f"{where('min_count')}: expected an integer >= 1")
        fields["min_count"] = raw["min_count"]
    if "fuzzy" in raw:
        if not isinstance(raw["fuzzy"], bool):
            raise _lex_error(f"{where('fuzzy')}: expected true or false")
        fields["fuzzy"] = raw["fuzzy"]
    for key, pattern in [(k, p) for k in ("regexes", "allowed_longer_regexes") for p in fields.get(k, ())]:
        try:
            compile_pattern(pattern)  # Python syntax, matched in linear time: unsafe patterns are refused here
        except PatternError as exc:
            raise _lex_error(f"{where(key)}: bad regex: {exc}") from None
    if not fields.get("phrases") and not fields.get("regexes"):
        raise _lex_error(f"{where('phrases')}: a rule needs phrases or regexes")
    if fields.get("triggers") and fields["kind"] != "required":
        raise _lex_error(f"{where('triggers')}: triggers only apply to kind = \"required\" rules")
    if fields["window"] != "anywhere" and fields.get("window_s", 0.0) <= 0:
        raise _lex_error(f"{where('window_s')}: window {fields['window']!r} needs window_s > 0")
    if len(fields.get("examples_match", ())) < 2 or len(fields.get("examples_no_match", ())) < 2:
        raise _lex_error(f"{where('examples_match')}: need >= 2 examples_match and >= 2 examples_no_match")
    return Rule(source=path, **fields)


def parse_rule_file(path: str | Path, text: str | None = None) -> tuple[str, list[Rule], dict[str, tuple[str, ...]]]:
    """Parse one rule-set file into ``(version, rules, lists)``; raises LexiconError."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _lex_error(f"{name}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _lex_error(f"{name}: invalid TOML: {exc}") from None
    if not isinstance(data.get("version"), str) or not data["version"]:
        raise _lex_error(f"{name}:1: key 'version': missing or not a string")
    lists: dict[str, tuple[str, ...]] = {}
    raw_lists = data.get("lists", {})
    if not isinstance(raw_lists, dict):
        raise _lex_error(f"{name}: key 'lists': use a [lists] table of phrase lists")
    for key, values in raw_lists.items():
        lists[key] = _strs(values, f"{name}: lists key {key!r}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise _lex_error(f"{name}: key 'rules': use [[rules]] tables")
    rules = [_rule(r, name, text, i) for i, r in enumerate(raw_rules)]
    return data["version"], rules, lists


def load_rules(directory: str | Path = "callqa:lexicons") -> RuleSet:
    """Load every ``*.toml`` rule set in ``directory`` (``"callqa:lexicons"`` = the shipped rules).

    Raises:
        LexiconError: a file is malformed, two rules share an id, or no file is found.
    """
    label = str(directory)
    base = resolve(label) if is_shipped(label) else Path(directory)
    if not base.is_dir():
        raise _lex_error(f"{label}: rules directory not found")
    files = []
    for path in sorted(base.glob("*.toml")):
        if not path.is_file():  # a FIFO would block the read below
            raise _lex_error(f"{path}: not a regular file")
        try:
            files.append((path.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise _lex_error(f"{path}: cannot read: {exc}") from None
    if not files:
        raise _lex_error(f"{label}: no *.toml rule sets")
    digest = hashlib.sha256()
    versions: list[str] = []
    rules: list[Rule] = []
    lists: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for name, text in files:
        version, file_rules, file_lists = parse_rule_file(f"{label}/{name}", text)
        versions.append(version)
        digest.update(name.encode() + b"\0" + text.encode("utf-8") + b"\0")
        for rule in file_rules:
            if rule.id in seen:
                raise _lex_error(f"{rule.source}: key 'id': duplicate rule id {rule.id!r} (also in {seen[rule.id]})")
            seen[rule.id] = rule.source
            rules.append(rule)
        for key, values in file_lists.items():
            lists[key] = lists.get(key, ()) + values
    version = "+".join(versions) + "-" + digest.hexdigest()[:8]
    return RuleSet(version=version, rules=tuple(rules), lists=lists)


def load_phrase_list(name: str, directory: str | Path = "callqa:lexicons") -> tuple[str, ...]:
    """A named phrase list (e.g. ``"hold_announcement"``, ``"backchannel"``) from the rule sets.

    Raises:
        LexiconError: no rule set defines the list.
    """
    rules = load_rules(directory)
    if name not in rules.lists:
        raise _lex_error(f"{directory}: no phrase list {name!r} (have {sorted(rules.lists)})")
    return rules.lists[name]
