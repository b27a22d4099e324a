"""End to end in a real browser (Debian's chromium driven by Playwright) over real demo calls.

The README demo's three calls (real Mandarin clips, real Whisper) plus eight
scripted calls on another day (for enough training labels) go into one store;
``callqa review`` serves it; the browser logs in, opens the top flagged call,
clicks a hit and checks the audio element is at the hit's start, confirms it,
reloads and sees the verdict kept, gives call verdicts; then ``callqa verdicts
export`` and ``callqa train`` run on what the browser recorded. The queue and
call page screenshots are written to ``docs/`` when ``CALLQA_UPDATE_SCREENSHOTS=1``.

Needs ``apt-get install chromium fonts-noto-cjk`` (fonts for legible screenshots).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .real_store import Group, build_store

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PASSWORD = "lead-password"
DEMO_DAY = "2026-11-21"
LABEL_GROUPS = (Group("rude", "你有病吧我不知道你自己去查", "我的快递到现在还没收到", 4, "售后一组"),
                Group("polite", "您好很高兴为您服务请您稍等感谢您的来电再见", "好的谢谢", 4, "售后二组"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JS expression until it is true (page.evaluate is not subject to the page's CSP; wait_for_function is)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _callqa(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("review-e2e")
    demo = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(base)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert demo.returncode in (0, 1), demo.stdout + demo.stderr
    store = build_store(base, LABEL_GROUPS, day=10)  # the same store: base/store
    added = _callqa("users", "add", store, "lena", "--role", "lead", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    return store


@pytest.fixture(scope="module")
def server(demo_store: Path):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "review", str(demo_store), "--port", str(port)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/login", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_review_loop_in_a_real_browser(server: str, demo_store: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # log in: the queue link survives the login redirect
        page.goto(f"{server}/?date_from={DEMO_DAY}&date_to={DEMO_DAY}")
        assert "/login" in page.url
        page.fill('input[name="name"]', "lena")
        page.fill('input[name="password"]', PASSWORD)
        page.click('form.login button[type="submit"]')
        page.wait_for_selector("table.queue")
        assert page.locator("a.call-link").all_inner_texts() == ["demo-002", "demo-001", "demo-003"]
        page.screenshot(path=str(shots / "review_queue.png"), full_page=True)

        # the top flagged call; click its first hit: the audio is cued at the hit's start
        page.locator("a.call-link").first.click()
        page.wait_for_selector("#hitlist li.hit")
        assert page.url.split("?")[0].endswith("/calls/demo-002")
        _wait_until(page, "document.getElementById('player').readyState >= 1")
        hit = page.locator("#hitlist li.hit").first
        hit_id, start = hit.get_attribute("data-hit"), float(hit.get_attribute("data-start"))
        hit.locator(".rule").click()
        _wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {start}) < 0.1")
        assert abs(page.evaluate("document.getElementById('player').currentTime") - start) < 0.1
        assert "selected" in (hit.get_attribute("class") or "")

        # the j key moves to the next hit and cues the audio there
        second = page.locator("#hitlist li.hit").nth(1)
        second_start = float(second.get_attribute("data-start"))
        page.keyboard.press("j")
        _wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {second_start}) < 0.1")

        # confirm the first hit; the verdict is kept across a reload
        hit.locator("button.v-confirmed").click()
        _wait_until(page, f"document.querySelector('#hit-{hit_id} .current').textContent.includes('saved')")
        page.check('#call-verdict input[value="fail"]')
        page.select_option('#call-verdict select[name="grade"]', "D")
        page.fill('#call-verdict textarea[name="comment"]', "hung up on the customer")
        page.click("#call-verdict button[type=submit]")
        _wait_until(page, "document.querySelector('#call-current').textContent.includes('saved')")
        page.reload()
        page.wait_for_selector(f"#hit-{hit_id}")
        assert "your verdict: confirmed" in page.locator(f"#hit-{hit_id} .current").inner_text()
        assert page.is_checked('#call-verdict input[value="fail"]')
        # keyboard: the reloaded page selected the hit named in its #hit- anchor (the last one selected, by j)
        second_id = second.get_attribute("data-hit")
        assert "selected" in (page.locator(f"#hit-{second_id}").get_attribute("class") or "")
        page.keyboard.press("x")
        _wait_until(page, f"document.querySelector('#hit-{second_id} .current').textContent.includes('rejected')")
        page.locator(f"#hit-{hit_id} .rule").click()
        page.evaluate("window.scrollTo(0, 0)")  # the sticky player at the top of the full-page picture
        page.screenshot(path=str(shots / "review_call.png"), full_page=True)

        # call verdicts on the other calls, through the same form
        labels = {"demo-001": "pass", "demo-003": "pass", **{f"rude-{i:02d}": "fail" for i in range(4)},
                  **{f"polite-{i:02d}": "pass" for i in range(4)}}
        for call_id, verdict in labels.items():
            page.goto(f"{server}/calls/{call_id}")
            page.check(f'#call-verdict input[value="{verdict}"]')
            page.click("#call-verdict button[type=submit]")
            _wait_until(page, "document.querySelector('#call-current').textContent.includes('saved')")
        assert errors == []
        browser.close()

    if os.environ.get("CALLQA_UPDATE_SCREENSHOTS") == "1":
        for name in ("review_queue.png", "review_call.png"):
            shutil.copyfile(shots / name, REPO / "docs" / name)

    exported = _callqa("verdicts", "export", demo_store, "--out", tmp_path / "labels.parquet")
    assert exported.returncode == 0, exported.stderr
    assert "wrote 11 call labels" in exported.stdout and "fail 5" in exported.stdout
    trained = _callqa("train", demo_store, "--out", tmp_path / "model")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (tmp_path / "model" / "model_card.md").exists()
