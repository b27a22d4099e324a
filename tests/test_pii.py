"""PII detection and masking (pipeline/text/pii.py) and audio redaction (pipeline/audio/redact.py)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio.redact import redact_file, redact_samples
from pipeline.records import Utterance, Word
from pipeline.text.pii import find_pii, id_number_ok, mask_text, pii_time_spans


@pytest.mark.parametrize(("text", "kind", "found"), [
    ("我的手机是13812345678谢谢", "mobile", "13812345678"),
    ("电话010-62345678", "landline", "010-62345678"),
    ("身份证11010519491231002X", "id_card", "11010519491231002X"),
    ("卡号6222 0212 3456 7890 128", "bank_card", "6222 0212 3456 7890 128"),
    ("卡号4539578763621486", "bank_card", "4539578763621486"),
    ("邮箱 zhang.san@example.com 收", "email", "zhang.san@example.com"),
    ("号码是幺三八幺二三四五六七八", "mobile", "幺三八幺二三四五六七八"),
])
def test_finds_pii(text: str, kind: str, found: str) -> None:
    spans = find_pii(text)
    assert [(s.kind, s.text) for s in spans] == [(kind, found)]
    masked = mask_text(text, spans)
    assert len(masked) == len(text) and found not in masked and "*" in masked


@pytest.mark.parametrize("text", [
    "订单号12345", "身份证110105194912310021", "卡号4539578763621487", "手机12812345678", "今天是二零二四年", "",
])
def test_rejects_non_pii_and_bad_checksums(text: str) -> None:
    assert find_pii(text) == []


def test_id_numbers_need_a_valid_check_character_and_birth_date() -> None:
    assert id_number_ok("11010519491231002X") and id_number_ok("11010519491231002x")
    assert not id_number_ok("110105194912310021")  # wrong check character
    assert not id_number_ok("1101051949123100")  # too short
    assert not id_number_ok("11010519491331002X")  # month 13
    # bank cards: 16-19 digits passing the Luhn check (python-stdnum); one digit off is not a card
    assert [s.kind for s in find_pii("卡号4539578763621486")] == ["bank_card"]
    assert find_pii("卡号4539578763621487") == []


def test_chinese_digits_can_be_turned_off() -> None:
    assert find_pii("幺三八幺二三四五六七八", chinese_digits=False) == []


def test_time_spans_and_redaction(tmp_path: Path) -> None:
    utt = Utterance("customer", 1.0, 4.0, "手机13812345678", words=(
        Word("手机", 1.0, 1.5, 0.9), Word("13812345678", 1.6, 3.6, 0.9)))
    assert pii_time_spans([utt], pad_s=0.0) == [(1.6, 3.6)]
    sr = 8000
    x = np.full((sr * 5, 1), 0.5, np.float32)
    silenced = redact_samples(x, sr, [(1.0, 2.0)], "silence")
    assert silenced[sr + 10, 0] == 0.0 and silenced[10, 0] == 0.5
    bleeped = redact_samples(x, sr, [(1.0, 2.0)], "bleep")
    assert abs(bleeped[sr:2 * sr, 0]).max() == pytest.approx(0.2, abs=1e-3)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.full((sr * 2, 2), 8000, np.int16).tobytes())
    assert redact_file(src, dst, [(0.5, 1.0)], "silence") == 1
    with wave.open(str(dst)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, sr, sr * 2)
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert abs(data[int(0.55 * sr):int(0.95 * sr)]).max() == 0
    assert abs(data[: int(0.45 * sr)]).min() > 7000


def test_masked_text_still_locates_where_the_data_was_spoken() -> None:
    from pipeline.config import default_config
    from pipeline.text.pii import locate_pii, mask_utterance

    utt = Utterance("customer", 1.0, 4.0, "手机13812345678", words=(
        Word("手机", 1.0, 1.5, 0.9), Word("138", 1.6, 2.2, 0.9), Word("12345678", 2.2, 3.6, 0.9)))
    masked = mask_utterance(utt, default_config().pii)
    # the number spans two words: masked as one string, cut back to each word's length and time
    assert masked.text == "手机" + "*" * 11 and [w.text for w in masked.words] == ["手机", "***", "********"]
    assert [(w.start_s, w.end_s) for w in masked.words] == [(w.start_s, w.end_s) for w in utt.words]
    assert [(p.kind, p.start_s, p.end_s) for p in locate_pii(utt)] == [("mobile", 1.6, 3.6)]
    assert [(p.kind, p.start_s, p.end_s) for p in locate_pii(masked, mask_char="*")] == [("masked", 1.6, 3.6)]
    assert locate_pii(masked) == []  # without mask_char the stars are just stars
    assert pii_time_spans([masked], pad_s=0.0) == pii_time_spans([utt], pad_s=0.0) == [(1.6, 3.6)]
    plain = Utterance("agent", 0.0, 2.0, "您好")
    assert mask_utterance(plain, default_config().pii) is plain


def test_protect_pii_follows_the_config() -> None:
    from pipeline.analysis import protect_pii
    from pipeline.config import default_config

    utts = [Utterance("customer", 0.0, 3.0, "我的手机13812345678"), Utterance("agent", 3.0, 4.0, "好的")]
    config = default_config()
    masked, spans = protect_pii(utts, config)
    assert [u.text for u in masked] == ["我的手机" + "*" * 11, "好的"]
    assert [[p.kind for p in s] for s in spans] == [["mobile"], []]
    found_only, spans = protect_pii(utts, config.with_overrides({"pii": {"mask": False}}))
    assert list(found_only) == utts and [[p.kind for p in s] for s in spans] == [["mobile"], []]
    off, none = protect_pii(utts, config.with_overrides({"pii": {"mask": False, "detect": False}}))
    assert list(off) == utts and none is None
    hashes = config.with_overrides({"pii": {"mask_char": "#"}})
    assert protect_pii(utts, hashes)[0][0].text == "我的手机" + "#" * 11
