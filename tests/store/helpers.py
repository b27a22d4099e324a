"""Small synthetic results for store tests: each call's rows say how many hits it should have."""

from __future__ import annotations

import time
from typing import Any

from pipeline.store.delta import CallResult, new_result_id
from pipeline.versions import Versions

VERSIONS = Versions("c0ffee", "test", "fake@1", "rules-1", "timing-1", "none").columns()


def _id(age_s: float) -> str:
    """A result id made ``age_s`` seconds ago (result ids start with their creation time)."""
    fresh = new_result_id()
    return f"{int((time.time() - age_s) * 1000):012x}{fresh[12:]}"


def run_result(call_id: str, n_hits: int, date: str = "2026-11-21", tag: str = "", age_s: float = 0.0) -> CallResult:
    """A ``run`` result for ``call_id`` with ``n_hits`` hits, 2 utterances and a feature row.

    The call's ``path`` records ``n_hits`` and ``tag`` so a reader can check it sees
    exactly the rows of the result the pointers name. ``age_s`` backdates its ids.
    """
    transcript, analysis, score = _id(age_s), _id(age_s), _id(age_s)
    key: dict[str, Any] = {"call_id": call_id, "call_date": date, **VERSIONS}
    call = {**key, "transcript_id": transcript, "analysis_id": analysis, "score_id": score, "status": "ok",
            "path": f"{call_id}#{n_hits}#{tag}", "duration_s": 10.0, "roles": ["agent", "customer"]}
    hits = [{**key, "analysis_id": analysis, "hit_id": f"{call_id}-{tag}-{i}", "rule_id": "r.test",
             "detector_version": "rules-1", "start_s": float(i), "end_s": float(i) + 0.5} for i in range(n_hits)]
    utterances = [{**key, "transcript_id": transcript, "utterance_index": i, "role": "agent", "start_s": float(i),
                   "end_s": float(i) + 1, "text": f"{tag}{i}"} for i in range(2)]
    features = [{**key, "score_id": score, "features_schema_version": 2, "score": float(100 - n_hits),
                 "outcome": "pass"}]
    return CallResult(call, {"hits": hits, "utterances": utterances, "features": features})


def check_consistent(store: Any) -> dict[str, int]:
    """Assert every call shows exactly the rows of its current result; return hits per call.

    Reads through one snapshot, as a page or report that reads several tables does.
    """
    store = store.snapshot()
    calls = {r["call_id"]: r for r in store.read("calls").to_pylist()}
    hits: dict[str, int] = {}
    for row in store.read("hits").to_pylist():
        hits[row["call_id"]] = hits.get(row["call_id"], 0) + 1
        expected_tag = calls[row["call_id"]]["path"].split("#")[2]
        assert row["hit_id"].split("-")[1] == expected_tag, (row, calls[row["call_id"]])
    for call_id, call in calls.items():
        assert hits.get(call_id, 0) == int(call["path"].split("#")[1]), (call_id, call["path"], hits.get(call_id))
    features = store.read("features").to_pylist()
    assert sorted(f["call_id"] for f in features) == sorted(calls), "exactly one feature row per call"
    utterances = store.read("utterances").to_pylist()
    assert len(utterances) == 2 * len(calls)
    return hits


class EchoTranscriber:
    """A fake transcriber: one utterance per speech segment with the role's fixed text (picklable)."""

    model_id = "echo@1"

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def transcribe(self, channels: Any) -> list[Any]:
        from pipeline.records import Utterance, Word

        out = []
        for channel in channels:
            text = self.texts[channel.role]
            out += [Utterance(channel.role, s.start_s, s.end_s, text, (Word(text, s.start_s, s.end_s, 0.9),),
                              avg_logprob=-0.2, no_speech_prob=0.01) for s in channel.speech]
        return out
