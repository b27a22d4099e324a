"""Normalisation and isolated segmentation (pipeline/text/segment.py)."""

from __future__ import annotations

from pathlib import Path

import jieba
import pytest

from pipeline.records import Utterance, Word
from pipeline.text.segment import Normaliser, Segmenter


@pytest.fixture(scope="module")
def norm() -> Normaliser:
    return Normaliser()


def test_traditional_fullwidth_punctuation(norm: Normaliser) -> None:
    assert norm.text("妳這話什麼意思？ ＡＢＣ１２３，好的！") == "你这话什么意思abc123好的"
    assert norm.text("") == ""
    assert norm.text("，。！？ ") == ""


def test_char_times_follow_words(norm: Normaliser) -> None:
    utt = Utterance("agent", 1.0, 3.0, "您好，请讲", words=(
        Word("您好，", 1.0, 1.5, 0.9), Word("请讲", 2.0, 3.0, 0.5)))
    nt = norm.utterance(utt)
    assert nt.text == "您好请讲"
    assert nt.char_start_s == (1.0, 1.0, 2.0, 2.0)
    assert nt.char_end_s == (1.5, 1.5, 3.0, 3.0)
    assert nt.char_prob == (0.9, 0.9, 0.5, 0.5)


def test_numbers_written_as_digits_are_read_out(norm: Normaliser) -> None:
    # Whisper writes 你个十三点 as "你个13点" and 二百五 as "250"; QA phrases are in characters
    assert norm.text("你个13点") == "你个十三点"
    assert norm.text("你真是个250") == "你真是个二百五十"
    assert norm.text("07号窗口") == "零七号窗口"  # a leading zero is read digit by digit
    assert norm.text("订单号123456") == "订单号123456"  # order and phone numbers stay digits
    assert norm.text("iPhone15和5G套餐") == "iphone15和5g套餐"  # so do model names
    assert norm.text("13.5元") == "十三五元"  # punctuation ends a run


def test_a_read_number_keeps_the_time_of_its_digits(norm: Normaliser) -> None:
    utt = Utterance("agent", 1.0, 3.0, "好的，你个13点", words=(
        Word("好的，", 1.0, 1.5, 0.9), Word("你个", 1.5, 2.0, 0.8), Word("1", 2.0, 2.2, 0.7),
        Word("3点", 2.2, 3.0, 0.4)))
    nt = norm.utterance(utt)
    assert nt.text == "好的你个十三点"
    assert nt.char_start_s == (1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 2.2)
    assert nt.char_end_s == (1.5, 1.5, 2.0, 2.0, 3.0, 3.0, 3.0)  # the reading spans both digits
    assert nt.char_prob == (0.9, 0.9, 0.8, 0.8, 0.4, 0.4, 0.4)
    assert nt.breaks == frozenset({2})
    # a break after a number moves with it
    assert norm.utterance(Utterance("agent", 0.0, 2.0, "3点，好的")).breaks == frozenset({2})
    assert norm.utterance(Utterance("agent", 0.0, 2.0, "250，好的")).breaks == frozenset({4})


def test_char_times_without_words_spread_evenly(norm: Normaliser) -> None:
    nt = norm.utterance(Utterance("agent", 2.0, 4.0, "一二三四"))
    assert nt.char_start_s == (2.0, 2.5, 3.0, 3.5)
    assert nt.char_end_s[-1] == 4.0


def test_isolated_tokenizer_with_user_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLQA_CACHE_DIR", str(tmp_path))
    seg = Segmenter({"你这话什么意思", "喂"})
    assert "你这话什么意思" in seg.cut("喂你这话什么意思")
    assert "喂养" in seg.cut("宝宝喂养的问题")
    assert seg.boundaries("宝宝喂养") == {0, 2, 4}
    assert (tmp_path / "jieba.callqa.cache").exists()
    assert "你这话什么意思" not in jieba.dt.FREQ  # the global tokenizer is untouched
    assert seg.word_freq("喂养") > 0 and seg.word_freq("zzzq") == 0


def test_one_cache_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$CALLQA_CACHE_DIR, else $XDG_CACHE_HOME/callqa; callqa 0.1's second variable is not read any more."""
    monkeypatch.delenv("CALLQA_CACHE_DIR", raising=False)
    monkeypatch.setenv("CALLQA_CACHE", str(tmp_path / "old"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    Segmenter(set())
    assert (tmp_path / "xdg" / "callqa" / "jieba.callqa.cache").exists()
    assert not (tmp_path / "old").exists()
