"""``callqa show``: the list of calls (worst outcome first) and one call's transcript with its hits."""

from __future__ import annotations

import pytest
from conftest import scored_call

from pipeline.records import CallEvidence, Hit, SpeechSegment, Utterance
from pipeline.store import Store

DURATION_S = 60.0
SPEECH = (SpeechSegment("agent", 1.0, 4.0, -20.0), SpeechSegment("customer", 5.0, 9.0, -25.0))


def evidence(call_id: str, utterances=(), segments=SPEECH) -> CallEvidence:
    return CallEvidence(call_id, DURATION_S, ("agent", "customer"), segments, tuple(utterances))


def hit(call_id: str, rule: str, category: str, severity: str, start_s: float, end_s: float, match_type="exact",
        text: str = "") -> Hit:
    return Hit(call_id, rule, "rules-test", category, severity, "customer", "agent", start_s, end_s, match_type,
               matched_text=text)


#: Call id with console markup in it, and a team name that looks like markup: printed literally.
ODD_ID, ODD_TEAM = "c[/]7[bold]", "[red]售后[/red]"


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "store", create=True)
    red_utterances = (Utterance("agent", 1.0, 3.0, "你这话什么意思"), Utterance("customer", 5.0, 8.0, "我要投诉"),
                      Utterance("agent", 10.0, 12.0, "好的", suspect=True, suspect_reason="no_speech(0.90,-1.50)"))
    facts = {"team": "售后一组", "agent_id": "A007"}
    store.commit([
        scored_call(evidence("c-red", red_utterances),
                    [hit("c-red", "redline.counter_question", "redline_counter_question", "fatal", 1.0, 2.0,
                         text="你这话什么意思"),
                     hit("c-red", "timing.silence", "silence", "non_fatal", 8.0, 9.5, "timing"),
                     hit("c-red", "closing.script", "closing", "non_fatal", 40.0, 60.0, "absence")],
                    facts=facts),
        scored_call(evidence("c-review"), [hit("c-review", "model.redline_text", "redline_abuse", "info", 1.0, 4.0,
                                               "model")], facts=facts),
        scored_call(evidence("c-fail"), [hit("c-fail", "promise.refund", "rash_promise", "non_fatal", t, t + 1)
                                         for t in (2.0, 6.0)], facts={"team": "售后二组", "agent_id": "A008"}),
        scored_call(evidence("c-listen", segments=()), timing={"speech_total_s": 0.0}),
        scored_call(evidence("c-pass"), facts=facts),
        scored_call(evidence(ODD_ID), facts={"team": ODD_TEAM, "agent_id": "A[/]9"}),
        scored_call(evidence("c-error"), status="failed", error="not an audio file (FFmpeg cannot read its format)"),
    ])
    return store


def rows_of(output: str) -> dict[str, str]:
    """List-view rows by call id (the first cell); a row's continuation lines (more findings) are joined to it."""
    rows: dict[str, str] = {}
    last = None
    for line in output.splitlines():
        cells = line.split()
        if cells and (cells[0].startswith("c-") or cells[0] == ODD_ID):
            last = cells[0]
            rows[last] = line.rstrip()
        elif last is not None and cells and line.startswith(" " * 40):
            rows[last] += " | " + line.strip()
        else:
            last = None
    return rows


def test_list_shows_each_calls_values(cli, store):
    result = cli("show", store.root)
    assert result.exit_code == 0, result.output
    assert f"7 calls in {store.root}" in result.stdout
    rows = rows_of(result.stdout)
    assert set(rows) == {"c-red", "c-review", "c-fail", "c-listen", "c-pass", ODD_ID, "c-error"}
    assert rows["c-red"].split()[:9] == ["c-red", "2026-11-20", "售后一组", "A007", "60s", "0", "D", "FAIL", "red"]
    assert "3 (1!)" in rows["c-red"]  # three hits, one fatal
    # findings, most specific first: the fatal red line, then found evidence, then a missing phrase
    assert [part.strip() for part in rows["c-red"].split("3 (1!)")[1].split(" | ")] == [
        "00:01.0 redline.counter_question", "00:08.0 timing.silence", "00:40.0 closing.script"]
    # only the model heard its red line: flagged, and said to be unconfirmed (c-red's lexicon hit is not)
    assert rows["c-review"].split()[5:12] == ["100", "A", "needs", "review", "red", "line,", "unconfirmed"]
    assert "unconfirmed" not in rows["c-red"]
    assert rows["c-fail"].split()[:9] == ["c-fail", "2026-11-20", "售后二组", "A008", "60s", "67", "C", "FAIL", "2"]
    assert rows["c-listen"].split() == ["c-listen", "2026-11-20", "60s", "needs", "listening", "0"]  # no score
    assert rows["c-pass"].split()[5:9] == ["100", "A", "pass", "0"]
    assert "error" in rows["c-error"] and "not an audio file (FFmpeg cannot read its format)" in rows["c-error"]
    assert "pass" not in rows["c-listen"] and "pass" not in rows["c-review"]


def test_list_puts_the_worst_outcome_first(cli, store):
    order = list(rows_of(cli("show", store.root).stdout))
    # fails first (the red line, then by score: the error counts as 0, the plain fail 67), then needs
    # review (a red line only the model saw), needs listening, pass (equal scores: by call id)
    assert order == ["c-red", "c-error", "c-fail", "c-review", "c-listen", "c-pass", ODD_ID]


def test_list_order_is_the_documented_one(cli, store):
    order = list(rows_of(cli("show", store.root).stdout))
    assert order.index("c-fail") < order.index("c-review")


def test_list_limit(cli, store):
    result = cli("show", store.root, "--limit", "2")
    assert f"7 calls in {store.root} (first 2)" in result.stdout
    assert list(rows_of(result.stdout)) == ["c-red", "c-error"]


def test_markup_in_data_prints_literally(cli, store):
    listed = rows_of(cli("show", store.root).stdout)[ODD_ID]
    assert listed.split()[:4] == [ODD_ID, "2026-11-20", ODD_TEAM, "A[/]9"]
    one = cli("show", store.root, ODD_ID)
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines()[0].split()[:4] == [ODD_ID, "2026-11-20", ODD_TEAM, "A[/]9"]


def test_one_call_transcript_with_hits_under_the_words_that_raised_them(cli, store):
    result = cli("show", store.root, "c-red")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["c-red", "2026-11-20", "售后一组", "A007", "60.0", "s", "FAIL", "red", "line",
                                "score", "0", "D"]
    assert lines[1] == "  why: scorecard_fail"
    assert lines[2] == "  speech model fake@1 · rules rules-test · config cfg-test"
    red = next(h for h in store.read("hits").to_pylist() if h["rule_id"] == "redline.counter_question")
    body = lines[3:]
    assert body[0].split() == ["00:01.0", "agent", "你这话什么意思"]
    assert body[1].split() == ["▲", "00:01.0–00:02.0", "redline.counter_question", "fatal", "«你这话什么意思»",
                               "1.00", red["hit_id"]]
    assert body[2].split() == ["00:05.0", "customer", "我要投诉"]
    assert body[3].split()[:3] == ["▲", "00:08.0–00:09.5", "timing.silence"]  # starts inside the customer's turn
    assert body[4].split() == ["00:10.0", "agent", "好的", "(suspect:", "no_speech(0.90,-1.50))"]
    assert body[5].split()[:3] == ["▲", "00:40.0–01:00.0", "closing.script"]  # after the last words
    assert len(body) == 6


def test_one_call_that_failed_and_one_that_needs_listening(cli, store):
    error = cli("show", store.root, "c-error")
    assert error.exit_code == 0
    assert "error" in error.stdout.splitlines()[0]
    assert "  not an audio file (FFmpeg cannot read its format)" in error.stdout.splitlines()
    silent = cli("show", store.root, "c-listen")
    assert "needs listening" in silent.stdout.splitlines()[0] and "score" not in silent.stdout.splitlines()[0]
    assert "  why: no_speech" in silent.stdout.splitlines()


def test_unknown_call_is_an_error(cli, store):
    result = cli("show", store.root, "zzz")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"callqa: error: {store.root}: no call 'zzz' in this store"
