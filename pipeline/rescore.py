"""Re-run the text detectors over stored transcripts with a (new) rule set.

No audio is decoded and nothing is transcribed again: each call's
:class:`~pipeline.models.CallEvidence` is rebuilt from the store, the lexicon
detector runs on it, and the hits are committed under the rule set's
``rules_version``. Hits of earlier rule versions stay in the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.detectors.lexicon import build_matcher, detect_phrases
from pipeline.lexicon import RuleSet
from pipeline.store import Store, common_columns, hits_rows


@dataclass(frozen=True)
class RescoreSummary:
    """What a rescore did."""

    rules_version: str
    calls: int
    hits: int
    chunks: int


def rescore(store: Store, rules: RuleSet, config: Any, call_ids: Iterable[str] | None = None,
            chunk_calls: int = 200) -> RescoreSummary:
    """Run ``rules`` on every ok call in ``store`` and commit the hits, ``chunk_calls`` calls per commit.

    Args:
        store: an existing callqa store.
        rules: from :func:`pipeline.lexicon.load_rules`.
        config: the full :class:`~pipeline.config.Config` (uses ``config.text``).
        call_ids: restrict to these calls (default all).
        chunk_calls: calls per atomic commit.

    Raises:
        StoreError: the store cannot be read or written.
    """
    wanted = set(call_ids) if call_ids is not None else None
    calls = [c for c in store.read("calls", columns=["status"]).to_pylist() if c["status"] == "ok"
             and (wanted is None or c["call_id"] in wanted)]
    matcher = build_matcher(rules, config.text)
    pending: list[dict[str, Any]] = []
    n_calls = n_hits = chunks = 0
    for call, evidence in zip(calls, store.evidence(wanted), strict=True):
        hits = detect_phrases(evidence, matcher, config.text)
        common = common_columns(call["call_id"], call["config_hash"], call["model_id"], rules.version)
        common["call_date"] = call["call_date"]
        pending.extend(hits_rows(hits, common))
        n_calls += 1
        n_hits += len(hits)
        if n_calls % chunk_calls == 0 and pending:
            store.commit({"hits": pending}, kind="rescore")
            chunks += 1
            pending = []
    if pending:
        store.commit({"hits": pending}, kind="rescore")
        chunks += 1
    return RescoreSummary(rules_version=rules.version, calls=n_calls, hits=n_hits, chunks=chunks)
