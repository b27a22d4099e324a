"""The review app's pages: queue, sampling queues, call page, next call, verdict POSTs, rules, audio."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from pipeline.records import CATEGORIES, CUSTOMER, SEVERITIES
from pipeline.review import verdicts
from pipeline.review.audio import RangeNotSatisfiable, parse_range, pii_spans, render_call_audio, resolve_audio_path
from pipeline.review.calls import call_view
from pipeline.review.queue import (
    PER_PAGE_CHOICES,
    STATUSES,
    QueueFile,
    QueueFileError,
    QueueFilters,
    counts,
    ordered,
    page_of,
    page_rows,
    read_queue_file,
    select,
)
from pipeline.review.snapshot import OUTCOMES, Snapshot

if TYPE_CHECKING:
    from pipeline.review.app import Viewer, Web


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


@lru_cache(maxsize=32)
def _queue_file(path: Path, mtime_ns: int) -> QueueFile:
    return read_queue_file(path)


def register_pages(app: FastAPI, web: Web) -> None:  # noqa: C901 - one closure per route
    """Attach every page route to ``app``."""
    state = web.state

    def queue_order(snapshot: Snapshot, name: str | None) -> tuple[np.ndarray | None, QueueFile | None, int]:
        """(positions in the queue file's order, the file, how many of its calls the store lacks)."""
        if not name:
            return None, None, 0
        path = state.queues().get(name)
        if path is None:
            raise HTTPException(404, f"no queue named {name!r}")
        try:
            queue = _queue_file(path, path.stat().st_mtime_ns)
        except (QueueFileError, OSError) as exc:
            raise HTTPException(500, str(exc)) from None
        positions = [snapshot.position.get(c) for c in queue.call_ids]
        found = np.asarray([p for p in positions if p is not None], np.int64)
        return found, queue, sum(p is None for p in positions)

    def selection(request: Request, viewer: Viewer, snapshot: Snapshot, queue_name: str | None
                  ) -> tuple[QueueFilters, np.ndarray, np.ndarray, np.ndarray, np.ndarray, QueueFile | None, int]:
        filters = QueueFilters.from_query(request.query_params)
        reviewed, started = state.review_masks(snapshot, viewer.reviewer_filter)
        mask = select(snapshot, filters, reviewed, started, state.search)
        order, queue, missing = queue_order(snapshot, queue_name)
        if order is not None:
            mask &= np.isin(np.arange(snapshot.size), order)
        return filters, mask, ordered(mask, order), reviewed, started, queue, missing

    def queue_page(request: Request, queue_name: str | None) -> Response:
        viewer = web.viewer(request)
        snapshot = web.snapshot
        filters, mask, chosen, reviewed, started, queue, missing = selection(request, viewer, snapshot, queue_name)
        page = page_of(chosen, _int(request.query_params.get("page"), 1),
                       _int(request.query_params.get("per_page"), 50))
        rows = page_rows(snapshot, page.positions)
        design = {r["call_id"]: r for r in queue.rows} if queue else {}
        for row in rows:
            row["reviewed"] = bool(reviewed[row["position"]])
            row["started"] = bool(started[row["position"]])
            row["queue"] = design.get(row["call_id"], {})
        base = f"/queues/{queue_name}" if queue_name else "/"
        return web.render(
            request, "queue.html", viewer, rows=rows, page=page, filters=filters,
            counts=counts(snapshot, mask, reviewed),
            snapshot=snapshot, queue=queue, queue_name=queue_name or "", missing=missing, base=base,
            call_query=filters.query_string(queue=queue_name or ""), page_query=filters.query_string(
                per_page=page.per_page if page.per_page != 50 else ""),
            facets={k: snapshot.facet(k) for k in ("team", "agent", "rule", "category", "severity")},
            categories=CATEGORIES, severities=SEVERITIES, outcomes=OUTCOMES, statuses=STATUSES,
            per_page_choices=PER_PAGE_CHOICES)

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        return queue_page(request, None)

    @app.get("/queues/{name}", response_class=HTMLResponse)
    def sampling_queue(request: Request, name: str) -> Response:
        return queue_page(request, name)

    def position_of(snapshot: Snapshot, call_id: str) -> int:
        position = snapshot.position.get(call_id)
        if position is None:
            raise HTTPException(404, f"no call {call_id!r} in this store")
        return position

    @app.get("/calls/{call_id}", response_class=HTMLResponse)
    def call_page(request: Request, call_id: str) -> Response:
        viewer = web.viewer(request)
        snapshot = web.snapshot
        position = position_of(snapshot, call_id)
        view = call_view(snapshot, position, state.settings.scorecard, state.settings.pii)
        root = state.settings.store_root
        hit_rows = verdicts.current_hit_verdicts(root, viewer.reviewer_filter, call_id).to_pylist()
        call_rows = verdicts.current_call_verdicts(root, viewer.reviewer_filter, call_id).to_pylist()
        mine = {r["hit_id"]: r for r in hit_rows if r["reviewer"] == viewer.name}
        others: dict[str, list[dict[str, Any]]] = {}
        for row in hit_rows:
            if row["reviewer"] != viewer.name:
                others.setdefault(row["hit_id"], []).append(row)
        history = {h["hit_id"]: verdicts.hit_history(state.db(), h["hit_id"], viewer.reviewer_filter)
                   for h in view.hits if h["hit_id"] in mine or h["hit_id"] in others}
        missed: dict[int, list[dict[str, Any]]] = {}  # utterance index -> current missed findings on it
        for row in verdicts.current_missed(root, viewer.reviewer_filter, call_id).to_pylist():
            missed.setdefault(row["utterance_index"], []).append(row)
        queue_name = request.query_params.get("queue", "")
        filters = QueueFilters.from_query(request.query_params)
        grades = sorted(state.settings.scorecard.grades) if state.settings.scorecard is not None else []
        return web.render(
            request, "call.html", viewer, view=view, call=view.call, mine=mine, others=others, history=history,
            my_call=next((r for r in reversed(call_rows) if r["reviewer"] == viewer.name), None),
            other_calls=[r for r in call_rows if r["reviewer"] != viewer.name],
            call_history=verdicts.call_history(state.db(), call_id, viewer.reviewer_filter),
            back=(f"/queues/{queue_name}" if queue_name else "/") + (f"?{filters.query_string()}"
                                                                      if filters.active else ""),
            nav_query=filters.query_string(queue=queue_name), grades=grades, categories=CATEGORIES, missed=missed,
            missed_categories=verdicts.MISSED_CATEGORIES,
            mask_on=state.settings.pii.mask)

    @app.get("/next")
    def next_call(request: Request, after: str = "", previous: int = 0) -> Response:
        """The call after (or before) ``after`` in the queue the reviewer came from."""
        viewer = web.viewer(request)
        snapshot = web.snapshot
        queue_name = request.query_params.get("queue") or None
        filters, _, chosen, *_ = selection(request, viewer, snapshot, queue_name)
        query = filters.query_string(queue=queue_name or "")
        here = snapshot.position.get(after)
        if here is not None and (found := np.flatnonzero(chosen == here)).size:
            index = int(found[0]) + (-1 if previous else 1)
        else:  # not in this queue (e.g. just reviewed and filtered out): the first one after it in queue order
            index = int(np.searchsorted(chosen, here if here is not None else -1, side="right")) if not queue_name \
                else 0
            index -= 1 if previous else 0
        if 0 <= index < len(chosen):
            target = snapshot.calls["call_id"][int(chosen[index])].as_py()
            return RedirectResponse(f"/calls/{target}" + (f"?{query}" if query else ""), status_code=303)
        return RedirectResponse((f"/queues/{queue_name}" if queue_name else "/") + (f"?{query}" if query else ""),
                                status_code=303)

    def verdict_response(request: Request, call_id: str, anchor: str, body: Mapping[str, Any]) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        query = request.query_params.get("back", "")
        return RedirectResponse(f"/calls/{call_id}" + (f"?{query}" if query else "") + anchor, status_code=303)

    @app.post("/calls/{call_id}/hits/{hit_id}/verdict")
    async def hit_verdict(request: Request, call_id: str, hit_id: str) -> Response:
        viewer = web.viewer(request)
        form = await web.checked_form(request, viewer.session)
        snapshot = web.snapshot
        hit = next((h for h in snapshot.hits.rows(position_of(snapshot, call_id)) if h["hit_id"] == hit_id), None)
        if hit is None:
            raise HTTPException(404, f"no current hit {hit_id!r} on call {call_id!r} (reload the page)")
        verdict, comment = str(form.get("verdict", "")), str(form.get("comment", ""))

        def write() -> int:
            with state.write_lock:
                return verdicts.record_hit_verdict(
                    state.db(), call_id=call_id, hit_id=hit_id, rule_id=hit["rule_id"],
                    rules_version=hit.get("detector_version") or hit.get("rules_version") or "",
                    verdict=verdict, reviewer=viewer.name, comment=comment)
        try:
            row_id = await run_in_threadpool(write)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return verdict_response(request, call_id, f"#hit-{hit_id}",
                                {"ok": True, "id": row_id, "hit_id": hit_id, "verdict": verdict, "comment": comment})

    @app.post("/calls/{call_id}/verdict")
    async def call_verdict(request: Request, call_id: str) -> Response:
        viewer = web.viewer(request)
        form = await web.checked_form(request, viewer.session)
        position_of(web.snapshot, call_id)
        verdict, grade = str(form.get("verdict", "")), str(form.get("grade", ""))
        grades = state.settings.scorecard.grades if state.settings.scorecard is not None else None
        if grade and grades and grade not in grades:
            raise HTTPException(400, f"grade must be one of {', '.join(sorted(grades))}")

        def write() -> int:
            with state.write_lock:
                return verdicts.record_call_verdict(state.db(), call_id=call_id, verdict=verdict, grade=grade,
                                                    reviewer=viewer.name, comment=str(form.get("comment", "")))
        try:
            row_id = await run_in_threadpool(write)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return verdict_response(request, call_id, "#call-verdict",
                                {"ok": True, "id": row_id, "verdict": verdict, "grade": grade})

    @app.post("/calls/{call_id}/missed")
    async def missed_finding(request: Request, call_id: str) -> Response:
        """Mark an agent utterance as holding a finding no detector raised (``action=withdrawn`` takes it back)."""
        viewer = web.viewer(request)
        form = await web.checked_form(request, viewer.session)
        snapshot = web.snapshot
        index = _int(str(form.get("utterance_index", "")), -1)
        utterance = next((u for u in snapshot.utterances.rows(position_of(snapshot, call_id))
                          if u["utterance_index"] == index), None)
        if utterance is None or utterance["role"] == CUSTOMER:
            raise HTTPException(404, f"no agent utterance {index} on call {call_id!r} (reload the page)")
        category, action = str(form.get("category", "")), str(form.get("action", "added"))
        # training text never holds personal data, whatever the page shows
        masked = dataclasses.replace(state.settings.pii, mask=True).text(utterance["text"])

        def write() -> int:
            with state.write_lock:
                return verdicts.record_missed(
                    state.db(), call_id=call_id, utterance_index=index, role=utterance["role"],
                    start_s=utterance["start_s"], end_s=utterance["end_s"], text=masked, category=category,
                    reviewer=viewer.name, action=action, comment=str(form.get("comment", "")))
        try:
            row_id = await run_in_threadpool(write)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return verdict_response(request, call_id, f"#utt-{index}",
                                {"ok": True, "id": row_id, "utterance_index": index, "category": category,
                                 "action": action})

    @app.get("/rules", response_class=HTMLResponse)
    def rules(request: Request) -> Response:
        viewer = web.viewer(request)
        snapshot = web.snapshot
        root = state.settings.store_root
        precision = verdicts.rule_precision(root, reviewer=viewer.reviewer_filter).to_pylist()
        current: dict[str, int] = {}
        for rule_id in (snapshot.hits.table["rule_id"].to_pylist() if snapshot.hits.table.num_rows else []):
            current[rule_id] = current.get(rule_id, 0) + 1
        chosen = (verdicts.chosen_hit_verdicts(root) if viewer.is_lead
                  else verdicts.current_hit_verdicts(root, viewer.name)).to_pylist()
        rejected: dict[str, list[dict[str, Any]]] = {}
        for row in reversed(chosen):  # latest first
            examples = rejected.setdefault(row["rule_id"], [])
            if row["verdict"] == "rejected" and len(examples) < 5:
                position = state.hit_position(snapshot, row["hit_id"])
                hit = next((h for h in snapshot.hits.rows(position) if h["hit_id"] == row["hit_id"]), None) \
                    if position is not None else None
                examples.append({**row, "hit": hit, "text": state.settings.pii.text(
                    (hit or {}).get("matched_text") or (hit or {}).get("context") or (hit or {}).get("detail"))})
        seen = {r["rule_id"] for r in precision}
        unreviewed = sorted((rule, n) for rule, n in current.items() if rule not in seen)
        return web.render(request, "rules.html", viewer, precision=precision, current=current, rejected=rejected,
                          unreviewed=unreviewed)

    @app.get("/audio/{call_id}")
    def audio(request: Request, call_id: str) -> Response:
        web.viewer(request)
        snapshot = web.snapshot
        position = position_of(snapshot, call_id)
        stored = snapshot.call(position).get("path") or ""
        path = resolve_audio_path(stored, state.settings.store_root)  # from the store, never from the request
        if path is None:
            raise HTTPException(404, f"the recording of call {call_id!r} is not available")
        pii = state.settings.pii
        spans = tuple(pii_spans(snapshot.utterances.rows(position), pii.mask_char)) if pii.mask else ()
        stat = path.stat()
        key = (call_id, str(path), stat.st_mtime_ns, stat.st_size, spans)
        try:
            data = state.audio.get(key, lambda: render_call_audio(path, spans))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is one clear 500
            raise HTTPException(500, f"cannot decode the recording of call {call_id!r}: {exc}") from None
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300"}
        try:
            wanted = parse_range(request.headers.get("range"), len(data))
        except RangeNotSatisfiable:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
        if wanted is None:
            return Response(data, media_type="audio/wav", headers=headers)
        start, end = wanted
        return Response(data[start:end + 1], status_code=206, media_type="audio/wav",
                        headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


__all__ = ["register_pages"]
