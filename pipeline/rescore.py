"""Re-analyse and re-score stored calls without touching audio.

- :func:`rescore_store` (``callqa rescore``): new rule sets or red-line model over
  stored transcripts; new hits and feature rows. Timing results measured on the
  audio are carried over from the stored ones (the timing detectors need the audio),
  and so are the hits the second look and the sound check found in the audio
  (:func:`audio_hits_kept`): a phrase Whisper first wrote wrong stays found, where its
  rule is still there, instead of the call passing for want of audio.
- :func:`score_store` (``callqa score`` and ``callqa run`` after ``models promote``):
  the scorecard and the classifier over stored feature rows and hits.

Both read the store's scoring state (:mod:`pipeline.store.state`), so neither
undoes the other: ``score --scorecard X`` records X, and a later ``rescore`` or
``run`` scores with X too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.analysis import Resources, analyse_evidence, score_features
from pipeline.config import STORE_PLACEHOLDER, Config
from pipeline.errors import StoreError
from pipeline.paths import resolve
from pipeline.records import Hit
from pipeline.scoring.classifier import TrainedModel
from pipeline.scoring.registry import load_promoted
from pipeline.scoring.scorecard import Scorecard, load_scorecard
from pipeline.store.delta import CallResult, Store
from pipeline.store.rows import evidence_of, hit_of, rescored_result, scored_result
from pipeline.store.state import save_scoring_state, scoring_state
from pipeline.text.redline_model import RULE_ID as REDLINE_RULE_ID
from pipeline.timing.detect import TIMING_FEATURES, TimingResult
from pipeline.versions import Versions

#: Calls re-analysed per commit (bounded memory, progress visible in the store).
CHUNK_CALLS = 500


@dataclass(frozen=True)
class StoreScoring:
    """The scorecard and classifier a store is scored with, and where the scorecard came from."""

    scorecard: Scorecard
    scorecard_text: str
    scorecard_source: str
    classifier: TrainedModel | None
    #: Set when the config names another scorecard than the one the store is scored with.
    config_differs: str = ""


def store_scoring(store: Store, config: Config, scorecard_path: str | None = None) -> StoreScoring:
    """What a store is scored with: its recorded scorecard (or ``scorecard_path``, or the config's
    for a new store) and the promoted classifier of ``[classifier] models_dir``.

    A store on an object store has no ``{store}/models`` folder (classifiers
    live on a local disk): with that default no classifier is promoted.

    Raises:
        ConfigError: the scorecard is missing or invalid.
        ModelError: the promoted classifier cannot be loaded.
    """
    in_store = STORE_PLACEHOLDER in config.classifier.models_dir
    classifier = None if store.remote and in_store else load_promoted(config.models_dir(store.root))
    state = scoring_state(store)
    if scorecard_path is None and state is not None:
        configured = load_scorecard(config.scoring.scorecard)
        differs = "" if configured.version == state.scorecard_version else configured.version
        return StoreScoring(state.scorecard, state.scorecard_text, state.scorecard_source, classifier, differs)
    source = scorecard_path or config.scoring.scorecard
    scorecard = load_scorecard(source)  # a missing or invalid file is a ConfigError naming it
    return StoreScoring(scorecard, resolve(source).read_text(encoding="utf-8"), source, classifier)


def record_scoring(store: Store, scoring: StoreScoring) -> None:
    """Record in the store the scorecard and classifier it is now scored with."""
    save_scoring_state(store, scoring.scorecard, scoring.scorecard_text, scoring.scorecard_source,
                       scoring.classifier.version if scoring.classifier else None)


@dataclass(frozen=True)
class StoreUpdate:
    """What a rescore or score did."""

    calls: int
    hits: int
    commits: int
    skipped: int
    versions: Mapping[str, str]
    #: hits the second look or the sound check found in the audio: carried over, and dropped (rule gone)
    audio_hits_kept: int = 0
    audio_hits_dropped: int = 0


def heard_from_audio(hit: Hit) -> bool:
    """Whether a stored hit came from the audio rather than the transcript: the second look's (its detail
    notes ``"second_look"``) or the sound check's (``{"sound_check"``)."""
    return '"second_look"' in hit.detail or '{"sound_check"' in hit.detail


def audio_hits_kept(stored: Iterable[Hit], resources: Resources) -> tuple[list[Hit], int]:
    """The stored hits found in the audio that a rescore keeps, and how many it drops.

    Kept: a lexicon rule's hit whose rule is in ``resources``' rules, and a red-line model hit when the
    model is the one that raised it. Dropped: a rule no longer there, or another model (without the
    audio nothing can check them again).
    """
    rule_ids = {rule.id for rule in resources.rules.rules}
    kept, dropped = [], 0
    for hit in stored:
        if not heard_from_audio(hit):
            continue
        if hit.rule_id in rule_ids or (hit.rule_id == REDLINE_RULE_ID
                                       and hit.detector_version == resources.versions.redline_model):
            kept.append(hit)
        else:
            dropped += 1
    return kept, dropped


def _stored_timing(row: Mapping[str, Any], hits: Iterable[Hit], timing_version: str) -> TimingResult:
    """The timing detectors' results as stored: their hits and feature columns."""
    features = {f.name: row.get(f.name) for f in TIMING_FEATURES}
    return TimingResult(tuple(h for h in hits if h.detector_version == timing_version), features)


def _grouped(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        grouped.setdefault(row["call_id"], []).append(row)
    return grouped


def _ok_calls(store: Store, call_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    calls = store.read("calls", call_ids=call_ids)
    return [c for c in calls.to_pylist() if c["status"] == "ok"]


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def rescore_store(store: Store, resources: Resources, call_ids: Iterable[str] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> StoreUpdate:
    """Run ``resources``' rule sets and red-line model on every ok call's stored transcript and commit.

    Args:
        store: an existing store.
        resources: the rules, models, scorecard and classifier to apply (no transcriber needed).
        call_ids: only these calls.
        progress: told (done, total) after each commit.

    Raises:
        StoreError: the store cannot be read or written.
    """
    calls = _ok_calls(store, call_ids)
    done = hits = commits = skipped = kept_from_audio = dropped_from_audio = 0
    dates: set[str] = set()
    for chunk in _chunks(calls, CHUNK_CALLS):
        ids = [c["call_id"] for c in chunk]
        segments, utterances = _grouped(store.read("segments", call_ids=ids)), _grouped(
            store.read("utterances", call_ids=ids))
        features = {r["call_id"]: r for r in store.read("features", call_ids=ids).to_pylist()}
        stored_hits = _grouped(store.read("hits", call_ids=ids))
        results: list[CallResult] = []
        for call in chunk:
            evidence = evidence_of(call, segments.get(call["call_id"], []), utterances.get(call["call_id"], []))
            old = features.get(call["call_id"])
            stored = [hit_of(h) for h in stored_hits.get(call["call_id"], [])]
            timing = None if old is None else _stored_timing(old, stored, call["timing_version"])
            from_audio, dropped = audio_hits_kept(stored, resources)
            versions = rescored_versions(call, resources)
            analysis = analyse_evidence(evidence, resources, call, timing=timing, versions=versions,
                                        audio_hits=from_audio)
            hits += len(analysis.hits) - (0 if timing is None else len(timing.hits))
            kept_from_audio += sum(h in analysis.hits for h in from_audio)
            dropped_from_audio += dropped
            results.append(rescored_result(call, analysis, versions))
        report = store.commit(results, kind="rescore", metadata={"rules_version": resources.versions.rules_version})
        dates.update(c["call_date"] for c in chunk)
        done += report.calls
        skipped += len(report.skipped)
        commits += 1
        if progress:
            progress(done + skipped, len(calls))
    if dates:
        store.optimize(dates)
    return StoreUpdate(done, hits, commits, skipped, resources.versions.columns(), kept_from_audio,
                       dropped_from_audio)


def rescored_versions(call: Mapping[str, Any], resources: Resources) -> Versions:
    """A rescored call's versions: the stored decoding's (config, analysis, speech model, timing) with
    the new rule sets and red-line model."""
    new = resources.versions
    return Versions(config_hash=call["config_hash"], analysis_version=call["analysis_version"],
                    asr_model=call["asr_model"], rules_version=new.rules_version,
                    timing_version=call["timing_version"], redline_model=new.redline_model)


def rescore_rows(features: pa.Table, hits: pa.Table, resources: Resources) -> list[dict[str, Any]]:
    """Score stored feature rows again with ``resources``' scorecard and classifier (pure: nothing is written).

    This is how any stored score is reproduced from the stored rows: give the
    rows of ``features`` and ``hits`` (current ones, e.g. from one snapshot) and
    resources loaded with the scorecard text kept in ``STORE/_state/scorecards``
    and the classifier named by ``features.classifier_model``.

    Returns:
        The feature rows with the score, outcome and classifier columns recomputed.
    """
    by_call = _grouped(hits)
    return [score_features(_features_in(row), [hit_of(h) for h in by_call.get(row["call_id"], [])],
                           TimingResult(()), resources).features
            for row in features.to_pylist()]


def score_store(store: Store, resources: Resources, call_ids: Iterable[str] | None = None,
                only_if: Callable[[Mapping[str, Any]], bool] | None = None) -> tuple[StoreUpdate, list[dict[str, Any]]]:
    """Apply ``resources``' scorecard and classifier to stored feature rows and hits, and commit.

    Args:
        store: an existing store.
        resources: the scorecard and classifier to apply.
        call_ids: only these calls.
        only_if: re-score only the feature rows for which this returns True
            (``run`` re-scores rows another classifier scored).

    Returns:
        The update and the new feature rows.

    Raises:
        StoreError: the store cannot be read or written.
    """
    calls = {c["call_id"]: c for c in _ok_calls(store, call_ids)}
    if not calls:
        return StoreUpdate(0, 0, 0, 0, resources.versions.columns()), []
    new_rows: list[dict[str, Any]] = []
    done = commits = skipped = 0
    for chunk in _chunks(list(calls.values()), CHUNK_CALLS):
        ids = [c["call_id"] for c in chunk]
        features = store.read("features", call_ids=ids)
        if only_if is not None:
            features = features.filter(pa.array([only_if(r) for r in features.to_pylist()], pa.bool_()))
        if not features.num_rows:
            continue
        hits = store.read("hits", call_ids=features["call_id"].to_pylist())
        results = []
        for scored in rescore_rows(features, hits, resources):
            new_rows.append(scored)
            results.append(scored_result(calls[scored["call_id"]], scored))
        report = store.commit(results, kind="score")
        done, skipped, commits = done + report.calls, skipped + len(report.skipped), commits + 1
    if new_rows:
        store.optimize({r["call_date"] for r in new_rows})
    return StoreUpdate(done, 0, commits, skipped, resources.versions.columns()), new_rows


def _features_in(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored features row in the shape :func:`pipeline.scoring.features.build_features` makes."""
    out = {k: v for k, v in row.items() if k not in ("score_id",)}
    out["schema_version"] = out.pop("features_schema_version")
    return out


def require_calls(store: Store) -> None:
    """Raise when the store holds no call at all (nothing to rescore or score)."""
    if store.read("calls", columns=[]).num_rows == 0:
        raise StoreError(store.name, "no calls in the store (run `callqa run` first)")


__all__ = ["CHUNK_CALLS", "StoreScoring", "StoreUpdate", "record_scoring", "require_calls", "rescore_rows",
           "rescore_store", "score_store", "store_scoring"]
