"""Load check of the review app: concurrent reviewers posting verdicts on loopback; nothing may be lost.

Starts ``uvicorn`` in a child process over a synthetic store (current rows
built as Arrow tables, verdicts in a fresh ``_review/review.sqlite``), logs in
``--reviewers`` accounts from as many threads (httpx), and has each one, for
``--seconds``, post hit verdicts (and every fifth time a call verdict), opening
a call page now and then. Afterwards it counts the verdict rows in SQLite and
compares them with the POSTs the server acknowledged.

Exit status 0 when no verdict was lost and no response was a 5xx.

    python scripts/bench/review_load.py --reviewers 20 --seconds 60
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from review_queue import synthetic_tables  # noqa: E402 - the same synthetic rows as the queue benchmark

PASSWORD = "load-password"


@dataclass
class Tally:
    """What one reviewer thread saw."""

    acknowledged: int = 0  # verdict POSTs answered 200
    statuses: dict[int, int] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadResult:
    """Figures of one load run."""

    reviewers: int
    seconds: float
    acknowledged: int
    stored: int
    statuses: dict[int, int]
    post_p50_ms: float
    post_p95_ms: float
    post_p99_ms: float
    page_p50_ms: float
    errors: tuple[str, ...]

    @property
    def lost(self) -> int:
        return self.acknowledged - self.stored

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.server_errors == 0 and not self.errors


def serve(root: Path, port: int, calls: int) -> None:
    """The child process: the review app over synthetic rows for ``calls`` calls."""
    import uvicorn

    from pipeline.review.app import create_app
    from pipeline.review.snapshot import build_snapshot
    from pipeline.review.state import ReviewSettings

    snapshot = build_snapshot(**synthetic_tables(calls, 6))
    app = create_app(ReviewSettings(store_root=root, refresh_every_s=1e9), loader=lambda: snapshot)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login(client: httpx.Client, name: str) -> str:
    page = client.get("/login").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 303:
        raise RuntimeError(f"login of {name} failed: {response.status_code}")
    page = client.get("/").text
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def _percentile(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))] if values else float("nan")


def reviewer(base: str, name: str, targets: list[tuple[str, str]], seconds: float, start: threading.Barrier,
             tally: Tally, seed: int) -> None:
    """One reviewer: log in, wait for the others, then post verdicts (and open a call page now and then)."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=60.0) as client:
        try:
            token = _login(client, name)
        except (httpx.HTTPError, RuntimeError, IndexError) as exc:
            tally.errors.append(f"{name}: {exc}")
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            return
        deadline = time.monotonic() + seconds
        headers = {"Accept": "application/json", "X-CSRF-Token": token}
        n = 0
        while time.monotonic() < deadline:
            call_id, hit_id = rng.choice(targets)
            n += 1
            try:
                if n % 10 == 0:
                    began = time.perf_counter()
                    response = client.get(f"/calls/{call_id}")
                    tally.page_ms.append((time.perf_counter() - began) * 1000)
                else:
                    if n % 5 == 0:
                        url, data = f"/calls/{call_id}/verdict", {"verdict": rng.choice(["pass", "fail"])}
                    else:
                        url = f"/calls/{call_id}/hits/{hit_id}/verdict"
                        data = {"verdict": rng.choice(["confirmed", "rejected", "unsure"]), "comment": f"n{n}"}
                    began = time.perf_counter()
                    response = client.post(url, data=data, headers=headers)
                    tally.post_ms.append((time.perf_counter() - began) * 1000)
                    if response.status_code == 200 and response.json().get("ok"):
                        tally.acknowledged += 1
            except httpx.HTTPError as exc:
                tally.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1


def run_load(reviewers: int = 20, seconds: float = 60.0, calls: int = 2000, seed: int = 0) -> LoadResult:
    """Start the server, run the reviewers, count what was stored."""
    from pipeline.review import verdicts
    from pipeline.review.users import add_user

    root = Path(tempfile.mkdtemp(prefix="review-load-"))
    port = _free_port()
    server = None
    try:
        names = [f"reviewer{i:02d}" for i in range(reviewers)]
        for i, name in enumerate(names):
            add_user(root, name, PASSWORD, "lead" if i == 0 else "reviewer")
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(root), "--port", str(port),
                                   "--calls", str(calls)])
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/login", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError("the review server exited during start-up")
            time.sleep(0.1)
        hits = synthetic_tables(calls, 6)["hits"].select(["call_id", "hit_id"]).to_pylist()
        targets = [(h["call_id"], h["hit_id"]) for h in hits]
        tallies = [Tally() for _ in names]
        start = threading.Barrier(reviewers + 1)
        threads = [threading.Thread(target=reviewer, args=(base, name, targets, seconds, start, tally, seed + i))
                   for i, (name, tally) in enumerate(zip(names, tallies, strict=True))]
        for thread in threads:
            thread.start()
        try:
            start.wait()  # everyone logged in: the clock starts
        except threading.BrokenBarrierError:
            pass
        began = time.monotonic()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        counts = verdicts.verdict_counts(root)
        statuses: dict[int, int] = {}
        for tally in tallies:
            for code, n in tally.statuses.items():
                statuses[code] = statuses.get(code, 0) + n
        post_ms = [ms for t in tallies for ms in t.post_ms]
        return LoadResult(
            reviewers=reviewers, seconds=elapsed, acknowledged=sum(t.acknowledged for t in tallies),
            stored=counts["hit_verdicts"] + counts["call_verdicts"], statuses=statuses,
            post_p50_ms=statistics.median(post_ms) if post_ms else float("nan"),
            post_p95_ms=_percentile(post_ms, 0.95), post_p99_ms=_percentile(post_ms, 0.99),
            page_p50_ms=statistics.median([ms for t in tallies for ms in t.page_ms] or [float("nan")]),
            errors=tuple(e for t in tallies for e in t.errors))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=20, help="Concurrent reviewers (threads).")
    parser.add_argument("--seconds", type=float, default=60.0, help="How long they post (bounded loop).")
    parser.add_argument("--calls", type=int, default=2000, help="Calls in the synthetic store.")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.calls)
        return 0
    result = run_load(args.reviewers, args.seconds, args.calls)
    posts = sum(result.statuses.values())
    print(f"{result.reviewers} reviewers for {result.seconds:.1f} s on loopback (uvicorn, 1 worker, SQLite WAL)")
    print(f"requests: {posts} ({posts / result.seconds:.0f}/s) · status codes: {dict(sorted(result.statuses.items()))}")
    print(f"verdicts acknowledged: {result.acknowledged} · rows stored: {result.stored} · lost: {result.lost}")
    print(f"verdict POST latency ms: p50 {result.post_p50_ms:.1f} · p95 {result.post_p95_ms:.1f} · "
          f"p99 {result.post_p99_ms:.1f} · call page p50 {result.page_p50_ms:.1f}")
    for error in result.errors[:10]:
        print(f"error: {error}")
    print("OK: no lost verdict, no 5xx" if result.ok else "FAILED")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
