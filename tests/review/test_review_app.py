"""Route tests for the review app (FastAPI TestClient over a synthetic store)."""

from __future__ import annotations

import io
import re
import threading
import wave

import numpy as np
import pyarrow as pa
import pytest

from pipeline.review import verdicts
from pipeline.review.security import COOKIE

from .conftest import PHONE, XSS, csrf_of, login, make_client


@pytest.fixture()
def client(store, tables):
    return make_client(store, tables)


def _call_ids(html: str) -> list[str]:
    return re.findall(r'class="call-link" href="/calls/([^"?]+)', html)


# -- authentication, sessions, CSRF, headers -----------------------------------------


@pytest.mark.parametrize("path", ["/", "/calls/c-red", "/rules", "/queues/plan", "/next?after=c-red"])
def test_pages_redirect_to_login_without_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2F")


def test_audio_and_posts_refuse_without_a_session(client):
    assert client.get("/audio/c-red").status_code == 401
    assert client.post("/calls/c-red/verdict", data={"verdict": "pass"}).status_code == 401


def test_login_sets_a_signed_httponly_samesite_cookie(client):
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"name": "lena", "password": "nope-nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong name or password" in wrong.text
    unknown = client.post("/login", data={"name": "zed", "password": "whatever1", "csrf_token": token})
    assert unknown.status_code == 401
    ok = client.post("/login", data={"name": "lena", "password": "lead-password", "csrf_token": token,
                                     "next": "/calls/c-red"})
    assert ok.status_code == 303 and ok.headers["location"] == "/calls/c-red"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "lena" not in cookie.split(";")[0].split("=", 1)[1][:4]  # signed, not a plain name
    assert client.get("/").status_code == 200


def test_login_needs_csrf_and_refuses_foreign_redirects_and_disabled_users(client):
    client.get("/login")
    no_token = client.post("/login", data={"name": "lena", "password": "lead-password"})
    assert no_token.status_code == 403
    token = csrf_of(client.get("/login").text)
    away = client.post("/login", data={"name": "lena", "password": "lead-password", "csrf_token": token,
                                       "next": "//evil.example/x"})
    assert away.headers["location"] == "/"
    token = csrf_of(client.get("/login").text)
    disabled = client.post("/login", data={"name": "dora", "password": "dora-password", "csrf_token": token})
    assert disabled.status_code == 401


def test_tampered_cookie_and_disabled_user_lose_the_session(client, store):
    login(client, "rita")
    assert client.get("/").status_code == 200
    value = client.cookies.get(COOKIE)
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/").status_code == 303
    login(client, "rita")
    from pipeline.review.users import set_disabled

    set_disabled(store, "rita")
    assert client.get("/").status_code == 303


def test_login_is_throttled_after_repeated_failures(client):
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        client.post("/login", data={"name": "remi", "password": "bad-password", "csrf_token": token})
    blocked = client.post("/login", data={"name": "remi", "password": "remi-password", "csrf_token": token})
    assert blocked.status_code == 429


def test_every_post_needs_the_session_csrf_token(client, store):
    token = login(client, "rita")
    url = "/calls/c-red/hits/h-c-red-abuse-insult/verdict"
    assert client.post(url, data={"verdict": "confirmed"}).status_code == 403
    assert client.post(url, data={"verdict": "confirmed", "csrf_token": "forged"}).status_code == 403
    assert client.post("/calls/c-red/verdict", data={"verdict": "pass", "csrf_token": "x"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/refresh", data={"csrf_token": token}).status_code == 403  # a reviewer, not a lead
    assert verdicts.verdict_counts(store) == {"hit_verdicts": 0, "call_verdicts": 0}
    ok = client.post(url, data={"verdict": "confirmed"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 303
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_security_headers(client):
    login(client, "lena")
    headers = client.get("/calls/c-red").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


# -- queue -----------------------------------------------------------------------------


def test_queue_orders_by_severity_and_counts(client):
    login(client, "lena")
    html = client.get("/").text
    assert _call_ids(html) == ["c-red", "c-fatal", "c-low", "c-prob", "c-pii", "c-pass", "c-xss"]
    assert "<b>7</b> calls" in html and "<b>3</b> fail" in html and "<b>4</b> pass" in html
    assert "<b>1</b> red line" in html and "1 not processed" in html
    # the red-line call lists its specific finding before the generic absence at 00:00
    row = html[html.index('href="/calls/c-red"'):html.index('href="/calls/c-fatal"')]
    assert row.index("abuse.insult") < row.index("opening.greeting")


@pytest.mark.parametrize("query, expected", [
    ("team=售后二组", ["c-fatal", "c-prob", "c-pii"]),
    ("agent=A1", ["c-red", "c-low", "c-pii"]),
    ("rule=opening.greeting", ["c-red", "c-low"]),
    ("category=hangup", ["c-fatal"]),
    ("severity=fatal", ["c-red", "c-fatal"]),
    ("outcome=fail", ["c-red", "c-fatal", "c-low"]),
    ("date_from=2026-11-22&date_to=2026-11-22", ["c-prob", "c-pass", "c-xss"]),
    ("text=投诉", ["c-red"]),
    ("text=c-pa", ["c-pass"]),
    ("date_from=not-a-date", ["c-red", "c-fatal", "c-low", "c-prob", "c-pii", "c-pass", "c-xss"]),
    ("team=nobody", []),
])
def test_queue_filters(client, query, expected):
    login(client, "lena")
    assert _call_ids(client.get(f"/?{query}").text) == expected


def test_review_status_filter_is_per_reviewer_for_reviewers(client, store):
    token = login(client, "rita")
    client.post("/calls/c-low/verdict", data={"verdict": "fail", "csrf_token": token})
    client.post("/calls/c-red/hits/h-c-red-abuse-insult/verdict", data={"verdict": "confirmed", "csrf_token": token})
    assert _call_ids(client.get("/?status=reviewed").text) == ["c-low"]
    assert _call_ids(client.get("/?status=in_progress").text) == ["c-red"]
    assert "c-low" not in _call_ids(client.get("/?status=unreviewed").text)
    login(client, "remi")  # another reviewer has reviewed nothing
    assert _call_ids(client.get("/?status=reviewed").text) == []
    login(client, "lena")  # a lead sees everyone's
    assert _call_ids(client.get("/?status=reviewed").text) == ["c-low"]


def test_paging_is_stable_and_clamped(store, tmp_path):
    from .conftest import synthetic_tables

    tables = synthetic_tables(tmp_path / "many")

    calls = tables["calls"].to_pylist()
    features = tables["features"].to_pylist()
    call_row, feature_row = calls[4], features[4]  # c-pass
    for i in range(120):
        calls.append({**call_row, "call_id": f"bulk-{i:03d}"})
        features.append({**feature_row, "call_id": f"bulk-{i:03d}", "score": 80.0 + (i % 20) / 2})
    tables.update(calls=pa.Table.from_pylist(calls), features=pa.Table.from_pylist(features))
    client = make_client(store, tables)
    login(client, "lena")
    seen = []
    for page in (1, 2, 3, 4, 5, 6):
        html = client.get(f"/?per_page=25&page={page}").text
        seen += _call_ids(html)
    assert len(seen) == 127 and len(set(seen)) == 127
    assert seen[:3] == ["c-red", "c-fatal", "c-low"]
    scores = [80.0 + (int(c.split("-")[1]) % 20) / 2 for c in seen if c.startswith("bulk-")]
    assert scores == sorted(scores)  # lowest score first within the pass tier
    assert "page 6 of 6" in client.get("/?per_page=25&page=99").text
    assert "page 1 of 3" in client.get("/?per_page=50&page=-4").text


def test_sampling_queue_keeps_file_order(client, store):
    folder = store / "_review" / "queues"
    folder.mkdir(parents=True)
    (folder / "plan.csv").write_text("call_id,stratum,weight,reason\nc-pass,A,2.5,random\nc-red,B,1.0,"
                                     "redline\nghost,B,1.0,gone\n", encoding="utf-8")
    login(client, "lena")
    html = client.get("/queues/plan").text
    assert _call_ids(html) == ["c-pass", "c-red"]
    assert "1 queued calls not in the store" in html and "random" in html
    assert 'href="/queues/plan"' in html  # listed in the navigation
    assert client.get("/queues/nope").status_code == 404
    assert client.get("/queues/..%2F..%2Fsecret").status_code == 404
    nxt = client.get("/next?after=c-pass&queue=plan")
    assert nxt.headers["location"] == "/calls/c-red?queue=plan"


def test_next_call_follows_the_queue_and_its_filters(client):
    login(client, "lena")
    assert client.get("/next?after=c-red").headers["location"] == "/calls/c-fatal"
    assert client.get("/next?after=c-fatal&previous=1").headers["location"] == "/calls/c-red"
    assert client.get("/next?after=c-red&outcome=fail").headers["location"] == "/calls/c-fatal?outcome=fail"
    assert client.get("/next?after=c-pass").headers["location"] == "/calls/c-xss"
    assert client.get("/next?after=c-xss").headers["location"] == "/"


# -- call page ---------------------------------------------------------------------------


def test_call_page_shows_scorecard_timeline_transcript_and_hits(client):
    login(client, "lena")
    html = client.get("/calls/c-red").text
    assert 'src="/audio/c-red"' in html
    assert '<mark data-hit="h-c-red-abuse-insult">你有病吧</mark>' in html
    assert 'id="hit-h-c-red-abuse-insult"' in html and 'data-start="3.0"' in html
    assert html.index('id="hit-h-c-red-abuse-insult"') < html.index('id="hit-h-c-red-opening-greeting"')
    assert "4.0 s untranscribed" in html  # agent speech at 20-24 s has no transcript
    assert html.count('class="notext unheard"') == 1  # the customer's vad_missed gap at 12-13.5 s
    assert "3.0 s untranscribed" in html  # customer: 4.5-6 s of speech without text and that 1.5 s
    assert 'class="overlap"' in html and 'class="silence"' in html
    assert "redline_abuse" in html and "red line" in html and "售后一组" in html
    assert client.get("/calls/nope").status_code == 404
    assert "no call" in client.get("/calls/nope").text


def test_a_call_that_needs_review_is_not_called_failed(store, tables):
    # stored as the scoring stage writes it: passed false (only "pass" passes), scorecard 84/B not failed
    features = tables["features"].to_pylist()
    for row in features:
        row["outcome"], row["outcome_reasons"] = ("pass", []) if row["passed"] else ("fail", ["scorecard_fail"])
        if row["call_id"] == "c-pass":
            row.update(score=84.0, grade="B", passed=False, outcome="needs_review",
                       outcome_reasons=["model_only:shirking"])
    client = make_client(store, {**tables, "features": pa.Table.from_pylist(features)})
    login(client, "lena")
    head = client.get("/calls/c-pass").text.split('id="outcome"')[1].split("</div>")[0]
    assert ">needs review</span>" in head and "model only:shirking" in head
    assert "failed" not in head and "passed" not in head
    queue = client.get("/?date_from=2026-11-22&date_to=2026-11-22").text
    row = queue[queue.index('>c-pass</a>'):].split("</tr>")[0]
    assert '<td class="small">needs review</td>' in row  # why here: its tier, not "failed"
    assert "failed" in client.get("/calls/c-low").text.split('id="outcome"')[1].split("</div>")[0]


def test_a_red_line_no_rule_heard_is_shown_unconfirmed(store, tables):
    features = tables["features"].to_pylist()
    for row in features:
        row["outcome"], row["outcome_reasons"] = ("pass", []) if row["passed"] else ("fail", ["scorecard_fail"])
        if row["call_id"] == "c-pass":  # only the text model heard a red line
            row.update(redline=True, passed=False, outcome="needs_review", outcome_reasons=["redline_model_only"])
    from tests.review.conftest import _hit

    model = _hit("c-pass", "model.redline_text", "redline_abuse", "info", 11.0, 12.6, matched_text="玄棍你别买啊",
                 match_type="model", detail='{"probability": 0.7146, "threshold": 0.6367}')
    # on c-red the model agrees with the abuse rule over the same words
    agrees = _hit("c-red", "model.redline_text", "redline_abuse", "info", 1.0, 5.0, matched_text="喂你有病吧怎么又打来",
                  match_type="model", detail='{"probability": 0.99, "threshold": 0.6367}')
    hits = pa.Table.from_pylist([*tables["hits"].to_pylist(), model, agrees], schema=tables["hits"].schema)
    client = make_client(store, {**tables, "features": pa.Table.from_pylist(features), "hits": hits})
    login(client, "lena")
    page = client.get("/calls/c-pass").text
    head = page.split('id="outcome"')[1].split("</div>")[0]
    assert 'class="badge redline unconfirmed"' in head and ">red line, unconfirmed</span>" in head
    card = page[page.index(f'id="hit-{model["hit_id"]}"'):].split("</li>")[0]
    assert 'class="badge redline unconfirmed" title="no rule heard it' in card
    assert ">red line, unconfirmed</span>" in card
    # the model's evidence in words, never its raw JSON (on the card and on the transcript's hit line)
    assert "the red-line text model gives this turn 71% (threshold 64%)" in card and "probability" not in card
    assert "text model 71% (threshold 64%), no rule heard it" in page and '{"probability"' not in page
    queue = client.get("/").text
    unsure = queue[queue.index('>c-pass</a>'):].split("</tr>")[0]
    sure = queue[queue.index('>c-red</a>'):].split("</tr>")[0]
    assert ">red line, unconfirmed</span>" in unsure
    assert '<span class="badge redline">red line</span>' in sure and "unconfirmed" not in sure
    red = client.get("/calls/c-red").text
    assert '<span class="badge redline">red line</span>' in red.split('id="outcome"')[1].split("</div>")[0]
    card = red[red.index('id="hit-h-c-red-abuse-insult"'):].split("</li>")[0]
    assert '<span class="badge redline">red line</span>' in card  # a lexicon hit: confirmed
    card = red[red.index(f'id="hit-{agrees["hit_id"]}"'):].split("</li>")[0]
    assert '<span class="badge redline">red line</span>' in card and "a rule of the same class fired here too" in card
    assert "text model 99% (threshold 64%), a rule of its class fired here too" in red


def test_a_sound_check_hit_says_what_the_transcript_has_and_asks_to_listen(client):
    login(client, "lena")
    html = client.get("/calls/c-pass").text
    hit = html[html.index('id="hit-h-c-pass-contradicting-go_buy_elsewhere"'):]
    hit = hit[:hit.index("</li>")]
    assert "sound check · listen" in hit and "info" in hit
    assert "transcript: <q>玄棍你别买</q> · the audio fits <q>嫌贵你别买</q> about as well" in hit
    assert "log ratio -0.1" in hit and "words 31%" in hit
    assert '{"sound_check"' not in hit  # the raw note is not shown


def test_scorecard_items_get_their_evidence_when_the_version_matches(store, tables):

    from pipeline.scoring.scorecard import load_scorecard

    version = load_scorecard().version
    rows = [{**r, "scorecard_version": version} for r in tables["features"].to_pylist()]
    client = make_client(store, {**tables, "features": pa.Table.from_pylist(rows)})
    login(client, "lena")
    html = client.get("/calls/c-red").text
    item = html[html.index('class="card scorecard"'):html.index('class="card hits"')]
    assert "红线" in item and 'href="#hit-h-c-red-abuse-insult"' in item


def test_transcript_and_metadata_are_escaped(client):
    login(client, "lena")
    html = client.get("/calls/c-xss").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;您好" in html
    assert "&lt;b&gt;bold&lt;/b&gt; detail" in html
    token = csrf_of(html)
    client.post("/calls/c-xss/hits/h-c-xss-closing-script/verdict",
                data={"verdict": "rejected", "comment": "<img src=x onerror=alert(1)>", "csrf_token": token})
    page = client.get("/calls/c-xss").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert XSS not in client.get("/rules").text


def test_pii_is_masked_on_the_page_when_configured(store, tables):
    from pipeline.review.calls import PiiDisplay

    masked = make_client(store, tables, pii=PiiDisplay(mask=True))
    login(masked, "lena")
    html = masked.get("/calls/c-pii").text
    assert PHONE not in html and "***********" in html
    shown = make_client(store, tables, pii=PiiDisplay(mask=False))
    login(shown, "lena")
    assert PHONE in shown.get("/calls/c-pii").text


# -- verdicts ------------------------------------------------------------------------------


def test_a_reviewer_marks_what_the_detectors_missed(client, store):
    """An agent utterance marked as a missed finding: shown under the line, kept with the masked text, withdrawn."""
    token = login(client, "rita")
    url = "/calls/c-pii/missed"
    response = client.post(url, data={"utterance_index": "1", "category": "redline_coldness",
                                      "comment": "cold tone", "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/calls/c-pii#utt-1"
    [row] = verdicts.current_missed(store).to_pylist()
    assert (row["call_id"], row["utterance_index"], row["role"], row["text"], row["category"], row["reviewer"]) == (
        "c-pii", 1, "agent", "好的我记下了", "redline_coldness", "rita")
    assert (row["start_s"], row["end_s"], row["comment"]) == (7.0, 9.0, "cold tone")
    line = client.get("/calls/c-pii").text.split('id="utt-1"')[1].split('class="line')[0]
    assert "missed 红线/冷漠不耐烦" in line and "marked by rita" in line and ">withdraw</button>" in line
    # the customer's line cannot be marked, nor a line that is not there; only the model's categories
    assert client.post(url, data={"utterance_index": "0", "category": "redline_abuse",
                                  "csrf_token": token}).status_code == 404
    assert client.post(url, data={"utterance_index": "9", "category": "redline_abuse",
                                  "csrf_token": token}).status_code == 404
    assert client.post(url, data={"utterance_index": "1", "category": "opening",
                                  "csrf_token": token}).status_code == 400
    assert client.post(url, data={"utterance_index": "1", "category": "redline_abuse"}).status_code == 403
    withdrawn = client.post(url, data={"utterance_index": "1", "category": "redline_coldness", "action": "withdrawn",
                                       "csrf_token": token}, headers={"Accept": "application/json"})
    assert withdrawn.json()["action"] == "withdrawn"
    assert verdicts.current_missed(store).num_rows == 0
    assert "missed 红线" not in client.get("/calls/c-pii").text


def test_a_missed_finding_never_stores_personal_data(store, tables):
    from pipeline.review.calls import PiiDisplay

    utterances = [u | {"role": "agent"} if u["call_id"] == "c-pii" and u["utterance_index"] == 0 else u
                  for u in tables["utterances"].to_pylist()]
    other = make_client(store, {**tables, "utterances": pa.Table.from_pylist(utterances)}, pii=PiiDisplay(mask=False))
    token = login(other, "rita")
    assert other.post("/calls/c-pii/missed", data={"utterance_index": "0", "category": "redline_abuse",
                                                   "csrf_token": token}).status_code == 303
    [row] = verdicts.current_missed(store).to_pylist()
    assert PHONE not in row["text"] and "*" in row["text"]


def test_hit_verdict_is_kept_with_history(client, store):
    token = login(client, "rita")
    url = "/calls/c-red/hits/h-c-red-abuse-insult/verdict"
    first = client.post(url, data={"verdict": "confirmed", "comment": "clear insult", "csrf_token": token})
    assert first.status_code == 303 and first.headers["location"] == "/calls/c-red#hit-h-c-red-abuse-insult"
    second = client.post(url, data={"verdict": "rejected", "csrf_token": token}, headers={"Accept": "application/json"})
    assert second.json()["verdict"] == "rejected"
    html = client.get("/calls/c-red").text
    hit = html[html.index('id="hit-h-c-red-abuse-insult"'):]
    assert 'your verdict: <span class="verdict v-rejected">rejected</span>' in hit
    assert "history (2)" in hit
    rows = verdicts.current_hit_verdicts(store).to_pylist()
    assert [(r["reviewer"], r["verdict"], r["rule_id"], r["rules_version"]) for r in rows] == [
        ("rita", "rejected", "abuse.insult", "rv1")]
    assert client.post(url, data={"verdict": "maybe", "csrf_token": token}).status_code == 400
    wrong_hit = client.post("/calls/c-fatal/hits/h-c-red-abuse-insult/verdict",
                            data={"verdict": "confirmed", "csrf_token": token})
    assert wrong_hit.status_code == 404  # the hit does not belong to that call
    assert verdicts.verdict_counts(store)["hit_verdicts"] == 2


def test_call_verdict_and_grade(client, store):
    token = login(client, "rita")
    assert client.post("/calls/c-low/verdict", data={"verdict": "fail", "grade": "Z", "csrf_token": token}
                       ).status_code == 400
    ok = client.post("/calls/c-low/verdict", data={"verdict": "fail", "grade": "C", "comment": "rude",
                                                   "csrf_token": token})
    assert ok.status_code == 303
    assert client.post("/calls/ghost/verdict", data={"verdict": "fail", "csrf_token": token}).status_code == 404
    assert verdicts.call_labels(store).to_pylist() == [{"call_id": "c-low", "label": "fail"}]
    assert 'value="fail" checked' in client.get("/calls/c-low").text


def test_reviewers_see_their_own_verdicts_leads_see_everyones(store, tables):
    rita, remi, lena = (make_client(store, tables) for _ in range(3))
    token = login(rita, "rita")
    rita.post("/calls/c-red/hits/h-c-red-abuse-insult/verdict",
              data={"verdict": "confirmed", "comment": "rita-note", "csrf_token": token})
    rita.post("/calls/c-red/verdict", data={"verdict": "fail", "comment": "rita-call", "csrf_token": token})
    login(remi, "remi")
    page = remi.get("/calls/c-red").text
    assert "rita-note" not in page and "rita-call" not in page and "not reviewed" in page
    assert "rita-note" not in remi.get("/rules").text
    login(lena, "lena")
    page = lena.get("/calls/c-red").text
    assert "rita-note" in page and "rita-call" in page


def test_concurrent_verdict_posts_are_all_kept(store, tables):
    clients = [make_client(store, tables) for _ in range(6)]
    tokens = [login(c, name) for c, name in zip(clients, ["rita", "remi", "lena"] * 2, strict=True)]
    codes: list[int] = []
    lock = threading.Lock()

    def post(client, token):
        for i in range(15):
            r = client.post("/calls/c-red/hits/h-c-red-abuse-insult/verdict",
                            data={"verdict": ("confirmed", "rejected", "unsure")[i % 3], "csrf_token": token},
                            headers={"Accept": "application/json"})
            with lock:
                codes.append(r.status_code)

    threads = [threading.Thread(target=post, args=pair) for pair in zip(clients, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 90
    assert verdicts.verdict_counts(store)["hit_verdicts"] == 90


# -- rules ----------------------------------------------------------------------------------


def test_rules_page_shows_precision_and_rejected_examples(client):
    token = login(client, "lena")
    client.post("/calls/c-red/hits/h-c-red-opening-greeting/verdict",
                data={"verdict": "rejected", "comment": "greeted in dialect", "csrf_token": token})
    client.post("/calls/c-low/hits/h-c-low-opening-greeting/verdict", data={"verdict": "confirmed",
                                                                             "csrf_token": token})
    client.post("/calls/c-red/hits/h-c-red-abuse-insult/verdict", data={"verdict": "confirmed", "csrf_token": token})
    html = client.get("/rules").text
    row = html[html.index('href="/?rule=opening.greeting"'):]
    row = row[:row.index("</tr>")]
    assert "50%" in row and "greeted in dialect" in row and 'href="/calls/c-red#hit-h-c-red-opening-greeting"' in row
    assert "timing.agent_hung_up_first" in html  # current hits, never reviewed


# -- audio ------------------------------------------------------------------------------------


def _wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as handle:
        frames = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").reshape(-1, handle.getnchannels())
        return frames.astype(np.float32) / 32767, handle.getframerate()


def test_audio_is_served_as_wav_with_range_requests(client):
    login(client, "lena")
    whole = client.get("/audio/c-red")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes" and whole.content[:4] == b"RIFF"
    size = len(whole.content)
    part = client.get("/audio/c-red", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == whole.content[100:200]
    tail = client.get("/audio/c-red", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    open_ended = client.get("/audio/c-red", headers={"Range": f"bytes={size - 5}-"})
    assert open_ended.content == whole.content[-5:]
    beyond = client.get("/audio/c-red", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    assert client.get("/audio/c-red", headers={"Range": "lines=1-2"}).status_code == 200
    samples, rate = _wav_samples(whole.content)
    assert rate == 8000 and samples.shape == (240000, 2)


def test_audio_bleeps_pii_only_when_masking(store, tables):
    from pipeline.review.calls import PiiDisplay

    for mask in (True, False):
        client = make_client(store, tables, pii=PiiDisplay(mask=mask))
        login(client, "lena")
        samples, rate = _wav_samples(client.get("/audio/c-pii").content)
        inside = samples[int(3.5 * rate):int(4.5 * rate), 0]
        outside = samples[int(10 * rate):int(11 * rate), 0]
        spectrum = np.abs(np.fft.rfft(inside))
        peak_hz = np.argmax(spectrum) * rate / len(inside)
        assert abs(peak_hz - (1000 if mask else 440)) < 5
        assert abs(np.argmax(np.abs(np.fft.rfft(outside))) * rate / len(outside) - 440) < 5


@pytest.mark.parametrize("path", [
    "/audio/..%2F..%2F..%2Fetc%2Fpasswd", "/audio/%2Fetc%2Fpasswd", "/audio/c-red%00", "/calls/..%2F..%2Fetc%2Fpasswd",
    "/static/..%2Fapp.py", "/static/../app.py", "/static/%2e%2e/app.py",
])
def test_traversal_attempts_reach_no_file(client, path):
    login(client, "lena")
    response = client.get(path)
    assert response.status_code == 404
    assert b"def create_app" not in response.content and b"root:" not in response.content


def test_missing_recording_is_a_clear_404(store, tables):

    rows = [{**r, "path": "/gone/c-red.wav"} if r["call_id"] == "c-red" else r for r in tables["calls"].to_pylist()]
    client = make_client(store, {**tables, "calls": pa.Table.from_pylist(rows)})
    login(client, "lena")
    response = client.get("/audio/c-red")
    assert response.status_code == 404 and "not available" in response.json()["error"]


def test_a_lead_can_rebuild_the_index(store, tables):
    from fastapi.testclient import TestClient

    from pipeline.review.app import create_app
    from pipeline.review.snapshot import build_snapshot
    from pipeline.review.state import ReviewSettings

    builds = []

    def loader():
        builds.append(1)
        return build_snapshot(**tables)

    client = TestClient(create_app(ReviewSettings(store_root=store), loader=loader), follow_redirects=False)
    token = login(client, "lena")
    assert len(builds) == 1
    assert client.post("/refresh", data={"csrf_token": token}).status_code == 303
    assert len(builds) == 2
