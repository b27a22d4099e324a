"""One call's page: metadata, scorecard with evidence, timeline, transcript with hits, in display form.

Pure: everything comes from a :class:`~pipeline.review.snapshot.Snapshot`
slice and the scorecard; verdicts are attached by the app.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.records import CATEGORIES, REDLINE_CATEGORIES, unconfirmed
from pipeline.review.snapshot import TIERS, Snapshot
from pipeline.review.timeline import Timeline, build_timeline
from pipeline.text.sound_check import read_note


@dataclass(frozen=True)
class PiiDisplay:
    """How personal data is shown: masked with ``mask_char`` when ``mask`` (config ``[pii]``)."""

    mask: bool = True
    mask_char: str = "*"
    chinese_digits: bool = True

    def text(self, text: str | None) -> str:
        """``text`` with any PII the store left unmasked masked now (already-masked text is unchanged)."""
        if not text or not self.mask:
            return text or ""
        from pipeline.text.pii import find_pii, mask_text

        return mask_text(text, find_pii(text, self.chinese_digits), self.mask_char)


@dataclass(frozen=True)
class FailedItem:
    """A failed scorecard item with the hits that are its evidence."""

    item_id: str
    name: str
    section: str
    fatal: bool
    hit_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class TranscriptLine:
    """One utterance (``kind == 'utterance'``) or one hit shown at its time (``kind == 'hit'``)."""

    kind: str
    start_s: float
    end_s: float
    role: str
    parts: tuple[tuple[str, str], ...] = ()  # (text, hit_id or "") - highlighted where hit_id is set
    hit: Mapping[str, Any] | None = None
    suspect_reason: str = ""
    index: int = -1  # the utterance's index in the call (utterances only)


@dataclass(frozen=True)
class CallView:
    """Everything the call page shows."""

    call: Mapping[str, Any]
    position: int
    tier: str
    hits: tuple[Mapping[str, Any], ...]  # most telling first (rank_hits)
    failed_items: tuple[FailedItem, ...]
    transcript: tuple[TranscriptLine, ...]
    timeline: Timeline
    other_evidence: tuple[str, ...]


def _item_matches(item: Any, hit: Mapping[str, Any]) -> bool:
    if hit["severity"] not in item.severities:
        return False
    return hit["category"] in item.categories or any(fnmatch.fnmatchcase(hit["rule_id"], p) for p in item.rule_ids)


def failed_items(call: Mapping[str, Any], hits: Sequence[Mapping[str, Any]], scorecard: Any | None,
                 feature_values: Mapping[str, float] | None = None) -> tuple[list[FailedItem], list[str]]:
    """The call's failed scorecard items, each with its evidence hits.

    Uses the scorecard's item definitions when it is the version that scored
    the call; otherwise lists the item ids with the call's evidence hits unassigned.

    Returns:
        (items, hit ids of evidence not assigned to any listed item).
    """
    evidence_ids = set(call.get("failed_hit_ids") or [])
    evidence = [h for h in hits if h["hit_id"] in evidence_ids]
    same_card = scorecard is not None and scorecard.version == call.get("scorecard_version")
    items_by_id = {item.id: item for item in scorecard.items} if scorecard is not None and same_card else {}
    sections = scorecard.sections if scorecard is not None and same_card else {}
    out: list[FailedItem] = []
    assigned: set[str] = set()
    for item_id in call.get("failed_items") or []:
        item = items_by_id.get(item_id)
        if item is not None:
            ids = tuple(h["hit_id"] for h in evidence if _item_matches(item, h))
            reason = f"{len(ids)} hit(s)" if ids else ""
            value = (feature_values or {}).get(item.feature) if item.feature else None
            if item.feature and value is not None and value == value:
                bound = f"< {item.min:g}" if item.min is not None and value < item.min else f"> {item.max:g}"
                reason = f"{item.feature} = {value:.3g} {bound}"
            section = sections[item.section].name if item.section in sections else item.section
            out.append(FailedItem(item_id, item.name, section, item.fatal, ids, reason))
        elif item_id.startswith("fatal_hit:"):
            rule = item_id.split(":", 1)[1]
            ids = tuple(h["hit_id"] for h in evidence if h["rule_id"] == rule)
            out.append(FailedItem(item_id, f"fatal hit of rule {rule}", "", True, ids, "a hit with severity fatal"))
        else:
            out.append(FailedItem(item_id, item_id, "", False, (), ""))
        assigned.update(out[-1].hit_ids)
    return out, sorted(evidence_ids - assigned)


def highlight(text: str, spans: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Split ``text`` into (piece, hit_id) parts, marking the first occurrence of each matched text."""
    marks: list[tuple[int, int, str]] = []
    for matched, hit_id in spans:
        if not matched:
            continue
        at = text.find(matched)
        if at >= 0 and not any(a < at + len(matched) and at < b for a, b, _ in marks):
            marks.append((at, at + len(matched), hit_id))
    parts: list[tuple[str, str]] = []
    cursor = 0
    for start, end, hit_id in sorted(marks):
        if start > cursor:
            parts.append((text[cursor:start], ""))
        parts.append((text[start:end], hit_id))
        cursor = end
    if cursor < len(text) or not parts:
        parts.append((text[cursor:], ""))
    return tuple(parts)


def rank_hits(hits: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Hits with the most telling first: fatal, red line, trusted, problems before observations (info),
    specific evidence before absences, then time.

    A generic "greeting missing" at 00:00 must not crowd out the one phrase that failed the call, nor
    a hit of the text model or the sound check (severity info): evidence to listen to, and what sends a
    call to review when no rule hit of its category confirms it. They count as problems, not observations.
    """
    return sorted(hits, key=lambda h: (h["severity"] != "fatal", h["category"] not in REDLINE_CATEGORIES,
                                       bool(h.get("suspect")), _observation(h),
                                       h.get("match_type") == "absence", h["start_s"]))


def _observation(hit: Mapping[str, Any]) -> bool:
    """An info hit that asks nothing of a reviewer (not the text model's or the sound check's: those are
    evidence to listen to)."""
    return hit["severity"] == "info" and not unconfirmed(hit.get("match_type"), hit["severity"])


def model_note(hit: Mapping[str, Any]) -> dict[str, float] | None:
    """The text model's probability and threshold recorded on a ``model`` hit, or None."""
    if hit.get("match_type") != "model":
        return None
    try:
        detail = json.loads(hit.get("detail") or "")
        return {"probability": float(detail["probability"]), "threshold": float(detail["threshold"])}
    except (ValueError, KeyError, TypeError):
        return None


def _summary(hit: Mapping[str, Any], sound: Mapping[str, Any] | None, model: Mapping[str, float] | None,
             agreed: bool) -> str:
    """One line on how a hit was found, for the transcript (never the raw JSON of its detail)."""
    if model is not None:
        return (f"text model {model['probability']:.0%} (threshold {model['threshold']:.0%}), "
                + ("a rule of its class fired here too" if agreed else "no rule heard it"))
    if sound is not None:
        return "sound check: not in the transcript, listen"
    detail = str(hit.get("detail") or "")
    return "" if detail.startswith("{") else detail


def _agreed(hit: Mapping[str, Any], hits: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a rule hit of the same category (not the model's nor the sound check's) overlaps ``hit``."""
    return any(other["category"] == hit["category"] and not unconfirmed(other.get("match_type"), other["severity"])
               and other["start_s"] < hit["end_s"] and hit["start_s"] < other["end_s"] for other in hits)


def _hit_display(hit: Mapping[str, Any], pii: PiiDisplay, hits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A hit as the call page shows it; ``hits`` are the call's hits (a rule among them may confirm it)."""
    note = read_note(hit)
    if note is not None:
        note = {**note, "written": pii.text(note.get("written")), "phrase": pii.text(note.get("phrase"))}
    model = model_note(hit)
    agreed = model is not None and _agreed(hit, hits)
    return {**hit, "matched_text": pii.text(hit.get("matched_text")), "context": pii.text(hit.get("context")),
            "category_name": CATEGORIES.get(hit["category"], hit["category"]),
            "redline": ("" if hit["category"] not in REDLINE_CATEGORIES else "red line, unconfirmed"
                        if unconfirmed(hit.get("match_type"), hit["severity"]) and not agreed else "red line"),
            "sound_check": note, "model": model, "agreed": agreed, "summary": _summary(hit, note, model, agreed)}


def transcript(utterances: Sequence[Mapping[str, Any]], hits: Sequence[Mapping[str, Any]],
               pii: PiiDisplay) -> list[TranscriptLine]:
    """Utterances in time order with matched text highlighted, and each hit placed at its start time."""
    lines: list[TranscriptLine] = []
    placed: set[str] = set()
    for utterance in utterances:
        text = pii.text(utterance["text"])
        inside = [h for h in hits if h.get("matched_text") and utterance["start_s"] - 0.5 <= h["start_s"]
                  <= utterance["end_s"] + 0.5 and h["role"] in (utterance["role"], "unknown", "mixed")]
        parts = highlight(text, [(h["matched_text"], h["hit_id"]) for h in inside])
        placed.update(hit_id for _, hit_id in parts if hit_id)
        lines.append(TranscriptLine("utterance", utterance["start_s"], utterance["end_s"], utterance["role"], parts,
                                    suspect_reason=utterance.get("suspect_reason") or ""
                                    if utterance.get("suspect") else "", index=utterance.get("utterance_index", -1)))
    for hit in hits:
        lines.append(TranscriptLine("hit", hit["start_s"], hit["end_s"], hit["role"], hit=hit))
    # a hit line sorts just before the utterance that starts at the same time
    lines.sort(key=lambda line: (line.start_s, line.kind == "utterance"))
    return lines


def call_view(snapshot: Snapshot, position: int, scorecard: Any | None, pii: PiiDisplay) -> CallView:
    """Build one call's page from the snapshot.

    Args:
        snapshot: the current snapshot.
        position: the call's queue position (``snapshot.position[call_id]``).
        scorecard: the scorecard the app was started with (for item names and evidence), or None.
        pii: how personal data is displayed.
    """
    call = snapshot.call(position)
    ranked = rank_hits(snapshot.hits.rows(position))
    hits = [_hit_display(h, pii, ranked) for h in ranked]
    utterances = snapshot.utterances.rows(position)
    segments = snapshot.segments.rows(position)
    values = {name: float(column[position]) for name, column in snapshot.extra_features.items()}
    items, other = failed_items(call, hits, scorecard, values)
    roles = call.get("roles") or sorted({s["role"] for s in segments} | {u["role"] for u in utterances})
    gaps = snapshot.gaps.rows(position) if snapshot.gaps is not None else []
    timeline = build_timeline(call.get("duration_s") or max([0.0, *(u["end_s"] for u in utterances)]), roles,
                              segments, utterances, hits, gaps=gaps)
    return CallView(call=call, position=position, tier=TIERS[call["tier"]], hits=tuple(hits),
                    failed_items=tuple(items), transcript=tuple(transcript(utterances, hits, pii)),
                    timeline=timeline, other_evidence=tuple(other))


__all__ = ["CallView", "FailedItem", "PiiDisplay", "TranscriptLine", "call_view", "failed_items", "highlight",
           "model_note", "rank_hits", "transcript"]
