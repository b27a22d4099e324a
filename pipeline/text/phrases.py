"""Optional parts in lexicon phrases: ``"(你)烦不烦"``, ``"这不归我(们)管"``.

A part in ASCII parentheses may be said or not: the phrase stands for every combination.
Speech recognition drops a short leading pronoun ("我没有这个权限" heard as "没有这个权限"), and
agents say "我们" where the lexicon wrote "我"; marking the part optional keeps one phrase
per idea instead of a list of spellings. Only the lexicon author knows where a part is
optional ("(你)什么意思" would be wrong: "什么意思" alone is an ordinary question), so
nothing is dropped automatically.

:func:`expand_phrase` is used by :mod:`pipeline.text.rules` when a rule set is loaded; rules
hold the expanded phrases.
"""

from __future__ import annotations

import itertools
import re

#: At most this many optional parts in one phrase (2**3 = 8 spellings).
MAX_OPTIONAL_PARTS = 3
_PART = re.compile(r"\(([^()]*)\)")


def expand_phrase(phrase: str) -> tuple[str, ...]:
    """Every spelling of ``phrase``, longest (all optional parts said) first.

    Raises:
        ValueError: unbalanced or nested parentheses, an empty optional part, more than
            :data:`MAX_OPTIONAL_PARTS` parts, or nothing left without the optional parts.
    """
    if "(" not in phrase and ")" not in phrase:
        return (phrase,)
    pieces = _PART.split(phrase)  # literal, optional, literal, optional, ..., literal
    literals, optional = pieces[0::2], pieces[1::2]
    if any("(" in p or ")" in p for p in literals):
        raise ValueError(f"phrase {phrase!r}: unbalanced or nested parentheses")
    if any(not p.strip() for p in optional):
        raise ValueError(f"phrase {phrase!r}: empty optional part ()")
    if len(optional) > MAX_OPTIONAL_PARTS:
        raise ValueError(f"phrase {phrase!r}: more than {MAX_OPTIONAL_PARTS} optional parts")
    if not "".join(literals).strip():
        raise ValueError(f"phrase {phrase!r}: nothing is left when the optional parts are not said")
    spellings = []
    for said in itertools.product((True, False), repeat=len(optional)):
        text = literals[0]
        for part, used, literal in zip(optional, said, literals[1:], strict=True):
            text += (part if used else "") + literal
        spellings.append(text)
    return tuple(dict.fromkeys(spellings))


def expand_phrases(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`expand_phrase` over a list, duplicates removed, order kept."""
    return tuple(dict.fromkeys(s for p in phrases for s in expand_phrase(p)))


__all__ = ["MAX_OPTIONAL_PARTS", "expand_phrase", "expand_phrases"]
