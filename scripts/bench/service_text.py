"""Clean service text and what counts as a negative finding: shared by the red-line benchmarks and training.

* :func:`crosswoz_turns`: agent turns of CrossWOZ's validation split
  (``../shared/data/text/crosswoz/val_turns.tsv``, thu-coai, Apache-2.0), a travel information
  desk, split by dialogue into a ``train`` part (the red-line model may learn from it, rules may
  be tuned on it) and a ``test`` part that only measures false hits. The split is a hash of the
  dialogue id, so it never changes and no dialogue is in both.
* :func:`is_negative`: a hit that reports something bad about the agent.
* :func:`false_hits`: negative hits of the configured detectors on clean agent turns.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.records import AGENT, CallEvidence, Hit, Utterance

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text"
CROSSWOZ = DATA / "crosswoz" / "val_turns.tsv"
#: Ordinary agent sentences that hold a rude word or sound; no negative rule may fire on them.
PROBES = Path(__file__).resolve().parents[2] / "tests" / "data" / "clean_probes.txt"


def clean_probes() -> list[str]:
    """The clean probe sentences (``tests/data/clean_probes.txt``, ``#`` lines are comments)."""
    return [line.strip() for line in PROBES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
#: Categories whose hits are negative findings about the agent (what a QA lead acts on).
NEGATIVE_CATEGORIES = frozenset({
    "redline_abuse", "redline_counter_question", "redline_coldness", "arguing", "contradicting", "shirking",
    "forbidden_phrase", "rash_promise",
})


@dataclass(frozen=True)
class ServiceTurn:
    """One agent turn of a service dialogue."""

    dialogue_id: str
    text: str
    split: str  # "train" or "test"


def crosswoz_split(dialogue_id: str) -> str:
    """``test`` for about half of the dialogues (by a hash of the id), else ``train``."""
    return "test" if hashlib.sha256(dialogue_id.encode()).digest()[0] % 2 == 0 else "train"


def crosswoz_turns(path: Path = CROSSWOZ, role: str = AGENT) -> list[ServiceTurn]:
    """CrossWOZ turns of ``role`` with their split; empty when the file is not there."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [ServiceTurn(r["dialogue_id"], r["text"], crosswoz_split(r["dialogue_id"]))
                for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["role"] == role]


def is_negative(hit: Hit) -> bool:
    """A finding against the agent: negative category, agent side, not absence/count, not suspect."""
    return (hit.category in NEGATIVE_CATEGORIES and hit.role in (AGENT, "unknown") and not hit.suspect
            and hit.match_type not in ("absence", "count"))


def turn_evidence(text: str, call_id: str = "text") -> CallEvidence:
    """One agent turn as a call of its own (4 characters a second, as rule examples are timed)."""
    utterance = Utterance(AGENT, 1.0, 1.0 + max(1.0, len(text) / 4), text)
    return CallEvidence(call_id, utterance.end_s + 1.0, (AGENT, "customer"), utterances=(utterance,))


def false_hits(texts: Iterable[str], detect) -> list[tuple[str, Hit]]:  # noqa: ANN001 - any evidence -> hits
    """Every negative hit ``detect(evidence)`` raises on clean texts, with its text."""
    return [(text, hit) for text in texts for hit in detect(turn_evidence(text)) if is_negative(hit)]


__all__ = ["CROSSWOZ", "DATA", "NEGATIVE_CATEGORIES", "PROBES", "ServiceTurn", "clean_probes", "crosswoz_split",
           "crosswoz_turns", "false_hits", "is_negative", "turn_evidence"]
