"""Re-run the text rules over stored transcripts with a (new) rule set.

No audio is decoded and nothing is transcribed again: each call's
:class:`~pipeline.records.CallEvidence` is rebuilt from the store, the lexicon
rules and the red-line text model run on it (:class:`pipeline.analysis.Analysers`,
the same code as ``callqa run``), and the call's feature row is rebuilt,
re-scored and re-classified. The timing detectors need the audio, so their
stored hits and measurements are carried over unchanged.

The new hits are committed under the rule set's version; hits of earlier rule
versions stay in the store (``Store.read("hits")``) for comparison, while the
call's current feature row, and so ``callqa show`` and ``callqa score``, use
the new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.analysis import Analysers, is_timing_version, join_versions
from pipeline.config import Config
from pipeline.timing.detect import RULES_VERSION as TIMING_VERSION
from pipeline.scoring.features import TIMING_COLUMNS
from pipeline.text.rules import RuleSet
from pipeline.records import Hit
from pipeline.scoring.scorecard import hits_from_rows
from pipeline.store import CALL_KEY, Store, common_columns, hits_rows, split_rules_version


@dataclass(frozen=True)
class RescoreSummary:
    """What a rescore did."""

    rules_version: str
    calls: int
    hits: int
    chunks: int


def _stored_timing(row: Mapping[str, Any]) -> dict[str, Any]:
    """The timing detectors' measurements as stored in a feature row."""
    timing: dict[str, Any] = {k: row[k] for k in TIMING_COLUMNS if row.get(k) is not None}
    timing.update(dict(row.get("timing_other") or []))
    return timing


def rescore(store: Store, rules: RuleSet, config: Config, call_ids: Iterable[str] | None = None,
            chunk_calls: int = 200) -> RescoreSummary:
    """Run ``rules`` on every ok call in ``store`` and commit hits and feature rows, ``chunk_calls`` calls per commit.

    Args:
        store: an existing callqa store.
        rules: from :func:`pipeline.text.rules.load_rules`.
        config: the full configuration (text, pii, classifier and scoring sections are used).
        call_ids: restrict to these calls (default all).
        chunk_calls: calls per atomic commit.

    Raises:
        StoreError: the store cannot be read or written.
        ModelError: the red-line model or the promoted classifier cannot be loaded.
    """
    analysers = Analysers.load(config, rules, text=True)
    redline = analysers.redline.version if analysers.redline is not None else None
    features = {tuple(r[k] for k in CALL_KEY): r for r in store.read("features").to_pylist()}
    stored_hits: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in store.current_hits().to_pylist():
        stored_hits.setdefault(tuple(row[k] for k in CALL_KEY), []).append(row)
    pending: dict[str, list[dict[str, Any]]] = {"hits": [], "features": []}
    covers: dict[str, list[tuple[str, ...]]] = {"hits": [], "features": []}
    n_calls = n_hits = chunks = 0

    def flush() -> None:
        nonlocal chunks
        if covers["features"]:
            store.commit(pending, kind="rescore", covers=covers)
            chunks += 1
        for table in pending:
            pending[table], covers[table] = [], []

    for call, evidence in store.calls_with_evidence(call_ids):
        key = tuple(call[k] for k in CALL_KEY)
        old = features.get(key)
        text_hits = analysers.text_hits(evidence)
        new_hits: list[Hit] = list(text_hits)
        if old is not None:  # carry the timing detectors' results (they need the audio)
            timing_versions = [v for v in split_rules_version(old["rules_version"]) if is_timing_version(v)]
            timing_hits = hits_from_rows([h for h in stored_hits.get(key, [])
                                          if h["rules_version"] in timing_versions])
            timing_features = _stored_timing(old)
            timing_version = timing_versions[0] if timing_versions else None
        else:  # a store written without features: timing from segments alone
            timing = analysers.timing(evidence, None)
            timing_hits, timing_features, timing_version = list(timing.hits), dict(timing.features), TIMING_VERSION
            new_hits += timing_hits
        rules_version = join_versions(rules.version, timing_version, redline)
        common = common_columns(key[0], key[1], key[2], rules_version)
        dated = {**common, "call_date": call["call_date"]}
        row = analysers.feature_row(evidence, [*text_hits, *timing_hits], timing_features, call,
                                    {k: common[k] for k in ("config_hash", "model_id", "rules_version")})
        pending["hits"] += hits_rows(new_hits, dated)
        pending["features"].append({**row, "call_date": call["call_date"]})
        redone = split_rules_version(rules_version) if old is None else (rules.version, redline)
        covers["hits"] += [(*key, v) for v in redone if v]
        covers["features"].append(key)
        n_calls += 1
        n_hits += len(text_hits)
        if n_calls % chunk_calls == 0:
            flush()
    flush()
    return RescoreSummary(rules_version=rules.version, calls=n_calls, hits=n_hits, chunks=chunks)
