"""Rule regexes written in Python ``re`` syntax, matched by RE2 in linear time.

A rule's ``regexes`` are parsed by Python's own regex parser, so they mean
what Python's ``re`` says they mean (``\\w`` and ``\\d`` include Chinese
characters and full-width digits, ``.`` stops at a newline, ``(?i)`` folds
case), and are then written out in RE2 syntax and compiled by RE2
(``google-re2``). RE2 runs in time linear in the text: a pattern such as
``(a+)+$`` that makes Python's backtracking engine run for ever on
``"aaaa…ab"`` takes microseconds.

One difference remains, and cannot matter here: Python's ``$`` also matches
just before a final newline, RE2's only at the very end; rules match the
normalised text, which holds no newline.

What RE2 cannot do in linear time is refused when the rules are loaded
(``callqa rules check``), with the reason: backreferences (``\\1``,
``(?P=name)``), lookahead and lookbehind (``(?=…)``, ``(?!…)``, ``(?<=…)``,
``(?<!…)``), conditionals, atomic groups and possessive repeats, Unicode word
boundaries (``\\b``, ``\\B``), repeat counts above 1000, ``\\W`` or ``\\S``
inside a negated ``[^...]`` class, and patterns that match empty text (they find nothing).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import re2

try:  # Python 3.11+
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

#: RE2's largest repeat count.
MAX_REPEAT = 1000
#: Memory RE2 may use for one compiled pattern (its default; larger patterns are refused).
MAX_PATTERN_BYTES = 8 << 20

# Python's \s in str patterns: every character str.isspace() accepts (all below U+3001).
_PY_SPACE = "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace())
_ASCII_SPACE = r"\t\n\x0b\x0c\r "
# Python's \w in str patterns: str.isalnum() (letters, numbers) or "_"; \d: str.isdecimal() (Nd).
_CLASSES = {
    # category: (Unicode form, ASCII form), each as the inside of a [...] class
    _sre.CATEGORY_DIGIT: (r"\p{Nd}", "0-9"),
    _sre.CATEGORY_WORD: (r"\p{L}\p{N}_", "0-9A-Za-z_"),
    _sre.CATEGORY_SPACE: (_PY_SPACE, _ASCII_SPACE),
}
_NEGATED = {_sre.CATEGORY_NOT_DIGIT: _sre.CATEGORY_DIGIT, _sre.CATEGORY_NOT_WORD: _sre.CATEGORY_WORD,
            _sre.CATEGORY_NOT_SPACE: _sre.CATEGORY_SPACE}
_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_REFUSED = {
    _sre.GROUPREF: "a backreference", _sre.GROUPREF_EXISTS: "a conditional (?(group)...)",
    _sre.ASSERT: "a lookahead or lookbehind", _sre.ASSERT_NOT: "a negative lookahead or lookbehind",
}
for _name, _why in (("ATOMIC_GROUP", "an atomic group (?>...)"), ("POSSESSIVE_REPEAT", "a possessive repeat")):
    if hasattr(_sre, _name):
        _REFUSED[getattr(_sre, _name)] = _why


class PatternError(ValueError):
    """A rule regex that is not valid, or cannot be matched in linear time; ``str()`` says why."""


@dataclass(frozen=True)
class LinearPattern:
    """A compiled rule regex: Python ``re`` meaning, RE2 matching (see the module docstring)."""

    source: str
    re2_source: str
    compiled: Any  # re2._Regexp

    def finditer(self, text: str) -> Iterator[Any]:
        """Non-overlapping matches (``start()``, ``end()``, ``group(0)`` in characters), left to right."""
        return self.compiled.finditer(text)

    def search(self, text: str) -> Any:
        return self.compiled.search(text)


def _hex(code: int) -> str:
    return f"\\x{{{code:x}}}"


def _literal(code: int) -> str:
    return chr(code) if chr(code).isalnum() else _hex(code)


class _Writer:
    """Writes a Python regex parse tree in RE2 syntax."""

    def __init__(self, source: str) -> None:
        self.source = source

    def refuse(self, reason: str) -> PatternError:
        return PatternError(f"{self.source!r} uses {reason}, which linear-time matching (RE2) does not support; "
                            "rewrite it without")

    def sequence(self, items: Any, ascii_only: bool) -> str:
        return "".join(self.item(op, av, ascii_only) for op, av in items)

    def item(self, op: Any, av: Any, ascii_only: bool) -> str:
        if op in _REFUSED:
            raise self.refuse(_REFUSED[op])
        if op == _sre.LITERAL:
            return _literal(av)
        if op == _sre.NOT_LITERAL:
            return f"[^{_hex(av)}]"
        if op == _sre.ANY:
            return "."
        if op == _sre.IN:
            return self.char_class(av, ascii_only)
        if op == _sre.BRANCH:
            return "(?:" + "|".join(self.sequence(branch, ascii_only) for branch in av[1]) + ")"
        if op == _sre.SUBPATTERN:
            return self.group(av, ascii_only)
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            return self.repeat(op, av, ascii_only)
        if op == _sre.AT:
            return self.anchor(av, ascii_only)
        raise PatternError(f"{self.source!r}: unsupported regex construct {op}")

    def group(self, av: Any, ascii_only: bool) -> str:
        group, add_flags, del_flags, body = av
        ascii_only = (ascii_only or bool(add_flags & re.ASCII)) and not del_flags & re.ASCII
        flags = "".join(c for f, c in _FLAGS if add_flags & f)
        off = "".join(c for f, c in _FLAGS if del_flags & f)
        inner = self.sequence(body, ascii_only)
        if flags or off:
            inner = f"(?{flags}{'-' + off if off else ''}:{inner})"
        return f"({inner})" if group is not None else f"(?:{inner})"

    def repeat(self, op: Any, av: Any, ascii_only: bool) -> str:
        low, high, body = av
        unbounded = high == _sre.MAXREPEAT
        if low > MAX_REPEAT or (not unbounded and high > MAX_REPEAT):
            raise PatternError(f"{self.source!r}: a repeat count above {MAX_REPEAT} (RE2's limit)")
        if unbounded:
            quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        elif (low, high) == (0, 1):
            quantifier = "?"
        else:
            quantifier = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        lazy = "?" if op == _sre.MIN_REPEAT else ""
        return f"(?:{self.sequence(body, ascii_only)}){quantifier}{lazy}"

    def anchor(self, at: Any, ascii_only: bool) -> str:
        anchors = {_sre.AT_BEGINNING: "^", _sre.AT_BEGINNING_STRING: r"\A", _sre.AT_END: "$",
                   _sre.AT_END_STRING: r"\z"}
        if at in anchors:
            return anchors[at]
        if at in (_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY) and ascii_only:
            return r"\b" if at == _sre.AT_BOUNDARY else r"\B"  # RE2's are ASCII, like Python's under re.ASCII
        raise self.refuse(r"a Unicode word boundary (\b or \B; Chinese text has no spaces: use a phrase)")

    def char_class(self, items: Any, ascii_only: bool) -> str:
        form = 1 if ascii_only else 0
        negate = bool(items) and items[0][0] == _sre.NEGATE
        items = items[1:] if negate else items
        if len(items) == 1 and items[0][0] == _sre.CATEGORY and items[0][1] in _NEGATED:
            return f"[{'' if negate else '^'}{_CLASSES[_NEGATED[items[0][1]]][form]}]"  # \W, \S, \D alone
        parts, alternatives = [], []
        for op, av in items:
            if op == _sre.LITERAL:
                parts.append(_hex(av))
            elif op == _sre.RANGE:
                parts.append(f"{_hex(av[0])}-{_hex(av[1])}")
            elif op == _sre.CATEGORY and av in _CLASSES:
                parts.append(_CLASSES[av][form])
            elif op == _sre.CATEGORY and av == _sre.CATEGORY_NOT_DIGIT:
                parts.append(r"\P{Nd}" if not ascii_only else r"\D")
            elif op == _sre.CATEGORY and av in _NEGATED and not negate:  # [a\W]: a union RE2 writes as (?:[a]|[^\w])
                alternatives.append(f"[^{_CLASSES[_NEGATED[av]][form]}]")
            elif op == _sre.CATEGORY:
                raise PatternError(f"{self.source!r}: \\W or \\S inside a negated [^...] class is not supported")
            else:
                raise PatternError(f"{self.source!r}: unsupported class item {op}")
        if not alternatives:
            return f"[{'^' if negate else ''}{''.join(parts)}]"
        return "(?:" + "|".join(([f"[{''.join(parts)}]"] if parts else []) + alternatives) + ")"


#: Images are characters of the Private Use Area, which normalised text never holds (so a match
#: can only start on a pair).
_ANY_IMAGE = "[\\x{e000}-\\x{f8ff}]"


class _SoundAlikeWriter(_Writer):
    """Writes a pattern that matches text in the *paired* form of :func:`compile_sound_alike`.

    Every character of the text is a pair (its sound image, itself). A literal in a run
    of at least ``min_run`` literals matches on its image alone (a sound-alike), any
    other literal on both; ``.``, classes and ``[^x]`` look at the character itself.
    """

    def __init__(self, source: str, image: Callable[[str], str], min_run: int) -> None:
        super().__init__(source)
        self.image, self.min_run = image, min_run

    def sequence(self, items: Any, ascii_only: bool) -> str:
        items = list(items)
        out, i = [], 0
        while i < len(items):
            j = i
            while j < len(items) and items[j][0] == _sre.LITERAL:
                j += 1
            if j == i:
                out.append(self.item(*items[i], ascii_only))
                i += 1
                continue
            alike = j - i >= self.min_run
            for _op, code in items[i:j]:
                out.append(_hex(ord(self.image(chr(code)))) + ("." if alike else _literal(code)))
            i = j
        return "".join(out)

    def item(self, op: Any, av: Any, ascii_only: bool) -> str:
        if op == _sre.LITERAL:
            return _hex(ord(self.image(chr(av)))) + _literal(av)
        if op in (_sre.NOT_LITERAL, _sre.ANY, _sre.IN):
            return _ANY_IMAGE + super().item(op, av, ascii_only)
        return super().item(op, av, ascii_only)

    def anchor(self, at: Any, ascii_only: bool) -> str:
        if at in (_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY):  # an image beside every character: no word edges
            raise PatternError(f"{self.source!r}: a word boundary cannot be matched on sound-alikes")
        return super().anchor(at, ascii_only)


def compile_sound_alike(source: str, image: Callable[[str], str], min_run: int) -> LinearPattern:
    """``source`` compiled to match sound-alikes of its longer literal runs, on paired text.

    The text to match is written as pairs, ``image(c) + c`` for each character ``c``
    (:meth:`pipeline.text.fuzzy.SoundAlike.paired`; images are Private Use Area characters,
    which the text itself never holds), so a match spans ``start // 2`` to ``end // 2`` of
    the original. A run of at least ``min_run`` literal characters
    ("去别家") matches any characters with the same images ("去别加"); shorter runs,
    ``.``, classes and anchors keep their exact meaning.

    Raises:
        PatternError: as :func:`compile_pattern`, or the pattern has a word boundary (``\\b``).
    """
    return compile_pattern(source, _SoundAlikeWriter(source, image, min_run))


def compile_pattern(source: str, writer: _Writer | None = None) -> LinearPattern:
    """Parse ``source`` as a Python regex and compile it with RE2 (see the module docstring).

    Raises:
        PatternError: not a valid Python regex, uses a construct RE2 cannot match in
            linear time, is too large, or matches empty text.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible set intersection" and friends
            parsed = _sre_parse.parse(source, 0)
    except re.error as exc:
        raise PatternError(f"{source!r} is not a valid regex: {exc}") from None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise PatternError(f"{source!r} is not a usable regex: {type(exc).__name__}") from None
    global_flags = parsed.state.flags
    ascii_only = bool(global_flags & re.ASCII)
    if global_flags & re.LOCALE:
        raise PatternError(f"{source!r}: the LOCALE flag is not supported")
    try:
        body = (writer or _Writer(source)).sequence(parsed, ascii_only)
    except RecursionError:
        raise PatternError(f"{source!r} is nested too deeply") from None
    prefix = "".join(c for f, c in _FLAGS if global_flags & f)
    translated = f"(?{prefix}){body}" if prefix else body
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_BYTES
    try:
        compiled = re2.compile(translated, options)
    except re2.error as exc:
        message = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"{source!r} cannot be compiled for linear-time matching: {message}") from None
    if compiled.fullmatch("") is not None:
        raise PatternError(f"{source!r} matches empty text, so it can never find anything")
    return LinearPattern(source, translated, compiled)


__all__ = ["MAX_REPEAT", "LinearPattern", "PatternError", "compile_pattern", "compile_sound_alike"]
