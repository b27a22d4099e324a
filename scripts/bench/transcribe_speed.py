"""Wall time of callqa's transcription vs plain faster-whisper on a realistic call.

Builds a 5-minute stereo call from the real clips in ``../shared/data/speech``
(agent and customer take turns, about 40% of the call silent), encodes it as
8 kHz μ-law WAV like a telephone recording, and measures in one run, with the
same model and compute type:

- ``default``: ``WhisperModel.transcribe`` with default settings on the mono mix-down;
- ``vad``: the same with ``vad_filter=True`` (the mix-down baseline);
- ``per-channel``: the same with ``vad_filter=True`` on *each channel separately*,
  what a user who needs roles would otherwise do (the goal: callqa <= 1.0x this);
- ``callqa``: :func:`pipeline.analysis.transcribe_audio` with everything on (VAD,
  onset repair, both channels, word timestamps, t2s, guard, loop cutting,
  re-decoding of speech left without text), batched and not.

Prints wall time, real-time factor (wall / call duration), the ratio to each
baseline, the CER of each against the known script of the call (per role where
roles are known) and callqa's coverage of the speech; then where callqa's time
goes (VAD, onset repair and loudness, the first pass, each re-decoding
attempt). With ``--memory-calls N`` it then transcribes N short calls in a loop
and prints the peak RSS every N/4 calls (it must stay flat).

Usage: python scripts/bench/transcribe_speed.py [--duration-s 300] [--memory-calls 200] [--crosstalk-db 25]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import jiwer
import numpy as np
from faster_whisper import decode_audio

from pipeline.analysis import Resources, transcribe_audio
from pipeline.asr.transcribe import WhisperTranscriber
from pipeline.audio.decode import load_call
from pipeline.chinese import matching_form
from pipeline.config import default_config

SPEECH_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech"
RATE_HZ = 16_000


def referenced_clips() -> list[tuple[np.ndarray, str]]:
    """Every clip with a verified reference: (16 kHz float32 samples, reference)."""
    clips = []
    with open(SPEECH_DIR / "references.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["reference_text"]:
                clips.append((decode_audio(str(SPEECH_DIR / row["file"]), sampling_rate=RATE_HZ),
                              row["reference_text"]))
    return clips


def build_call(duration_s: float, silent_share: float, seed: int = 7) -> tuple[np.ndarray, list[tuple]]:
    """A stereo call (2, n) float32 at 16 kHz and its script [(role, start_s, end_s, text)]."""
    rng = random.Random(seed)
    clips = referenced_clips()
    speech_budget_s = duration_s * (1 - silent_share)
    turns, speech_s = [], 0.0
    while True:
        rng.shuffle(clips)
        for samples, text in clips:
            if speech_s + len(samples) / RATE_HZ > speech_budget_s:
                break
            turns.append((samples * rng.uniform(0.5, 1.0), text))
            speech_s += len(samples) / RATE_HZ
        else:
            continue
        break
    gaps = np.array([rng.uniform(0.3, 1.0) + rng.expovariate(1.0) for _ in turns])
    gaps *= (duration_s - speech_s) / gaps.sum()
    audio = np.zeros((2, int(duration_s * RATE_HZ)), dtype=np.float32)
    script, cursor, role = [], 0.0, 0
    for (samples, text), gap in zip(turns, gaps, strict=True):
        cursor += gap * 0.5  # half the pause before the turn, half after it
        start = int(cursor * RATE_HZ)
        audio[role, start:start + len(samples)] = samples[: audio.shape[1] - start]
        script.append(("agent" if role == 0 else "customer", cursor, cursor + len(samples) / RATE_HZ, text))
        cursor += len(samples) / RATE_HZ + gap * 0.5
        role = 1 - role if rng.random() < 0.85 else role
    return audio, script


def write_telephone_wav(audio: np.ndarray, path: Path) -> None:
    """Write (channels, n) float32 16 kHz audio as 8 kHz μ-law WAV (ffmpeg from imageio-ffmpeg)."""
    import imageio_ffmpeg

    pcm = path.with_suffix(".pcm16.wav")
    with wave.open(str(pcm), "wb") as out:
        out.setnchannels(audio.shape[0])
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes((np.clip(audio.T, -1, 1) * 32767).astype("<i2").tobytes())
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(pcm),
                    "-ar", "8000", "-c:a", "pcm_mulaw", str(path)], check=True)
    pcm.unlink()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate after t2s and removal of punctuation and spaces."""
    ref, hyp = matching_form(reference), matching_form(hypothesis)
    return jiwer.cer(ref, hyp) if hyp else 1.0


def _time(work):
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def per_channel(model, call) -> dict[str, str]:
    """Plain faster-whisper (defaults, ``vad_filter=True``) on each channel separately: text per role."""
    return {channel.role: "".join(s.text for s in model.transcribe(channel.samples, vad_filter=True)[0])
            for channel in call.channels}


def profile(call, resources: Resources) -> str:
    """Where callqa's transcription time goes: the stages of ``transcribe_audio`` timed one by one."""
    from pipeline.analysis import hear_missed_sound
    from pipeline.asr.transcribe import describe_passes, transcribe_speech
    from pipeline.audio.loudness import loudness_tracks, refine_segments, with_segments
    from pipeline.audio.vad import detect_speech

    config = resources.config
    vad_s, segments = _time(lambda: [s for c in call.channels for s in detect_speech(c, config.vad)])
    repair_s, segments = _time(lambda: sorted(refine_segments(
        segments, loudness_tracks(call, segments, config.vad.loudness_frame_s), config.vad),
        key=lambda s: (s.start_s, s.role)))
    asr_s, result = _time(lambda: transcribe_speech(call, segments, resources.transcriber, config.asr,
                                                    resources.hallucinations))
    tracks = with_segments(loudness_tracks(call, segments, config.vad.loudness_frame_s), segments)
    unheard_s, (result, unheard) = _time(lambda: hear_missed_sound(call, segments, tracks, result, resources))
    asr_s += unheard_s
    stats = result.stats
    passes = describe_passes(stats, config.asr.redecode_passes)
    decoding_s = sum(stats.get(f"{key}_{a}_s", 0.0) for key in ("redecode", "unheard")
                     for a in range(len(config.asr.redecode_passes)))
    other = asr_s - stats.get("first_pass_s", 0.0) - decoding_s
    left = [*result.gaps, *unheard]
    gaps = ", ".join(f"{g.role} {g.start_s:.1f}-{g.end_s:.1f} {g.reason}" for g in left) or "none"
    return (f"profile: VAD {vad_s:.1f} s, onset repair + loudness {repair_s:.1f} s, ASR {asr_s:.1f} s = "
            + ", ".join(passes) + f", guard/mapping/coverage {other:.1f} s; gaps left: {gaps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration-s", type=float, default=300.0)
    parser.add_argument("--silent-share", type=float, default=0.4)
    parser.add_argument("--memory-calls", type=int, default=0)
    parser.add_argument("--crosstalk-db", type=float, default=0.0,
                        help="leak each channel into the other this many dB down (0 = none)")
    parser.add_argument("--skip-default", action="store_true", help="skip the slow default baseline")
    parser.add_argument("--skip-plain", action="store_true", help="skip callqa with unbatched decoding")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time every variant this many times, interleaved, and keep the fastest "
                             "(the machine is shared)")
    args = parser.parse_args()

    config = default_config()
    audio, script = build_call(args.duration_s, args.silent_share)
    if args.crosstalk_db > 0:
        audio = audio + audio[::-1] * np.float32(10 ** (-args.crosstalk_db / 20))
    reference = "".join(text for *_times, text in sorted(script, key=lambda t: t[1]))
    role_reference = {role: "".join(t for r, _s, _e, t in script if r == role) for role in ("agent", "customer")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.wav"
        write_telephone_wav(audio, path)
        call = load_call(path, config)
        mono = decode_audio(str(path), sampling_rate=RATE_HZ)
        print(f"call: {args.duration_s:.0f} s stereo 8 kHz mu-law, {len(script)} turns, "
              f"{1 - sum(e - s for _r, s, e, _t in script) / args.duration_s:.0%} silent, "
              f"{len(matching_form(reference))} reference characters"
              + (f", crosstalk at -{args.crosstalk_db:.0f} dB" if args.crosstalk_db > 0 else ""))

        resources = Resources.load(config, text=False)
        transcriber = resources.transcriber
        assert isinstance(transcriber, WhisperTranscriber)
        model = transcriber.model
        work: dict[str, object] = {}
        if not args.skip_default:
            work["default"] = lambda: {"": "".join(s.text for s in model.transcribe(mono)[0])}
        work["vad"] = lambda: {"": "".join(s.text for s in model.transcribe(mono, vad_filter=True)[0])}
        work["per-channel"] = lambda: per_channel(model, call)
        variants = {}
        for batched in (True,) if args.skip_plain else (True, False):
            asr = config.asr.model_copy(update={"batched": batched})
            variants["callqa-batched" if batched else "callqa-plain"] = dataclasses.replace(
                resources, config=config.model_copy(update={"asr": asr}),
                transcriber=WhisperTranscriber(model, asr, transcriber.model_id))
        for name, variant in variants.items():
            work[name] = lambda v=variant: transcribe_audio(call, v)

        walls: dict[str, float] = {}
        outputs: dict[str, object] = {}
        for _ in range(args.repeats):
            for name, job in work.items():
                wall, outputs[name] = _time(job)  # type: ignore[operator]
                walls[name] = min(walls.get(name, float("inf")), wall)

        baselines = [b for b in ("default", "vad", "per-channel") if b in walls]
        for name, wall in walls.items():
            output = outputs[name]
            if isinstance(output, dict):
                text = "".join(output.values())
                by_role = {r: cer(role_reference[r], output[r]) for r in role_reference if r in output}
                extra = ""
            else:
                utterances = output.utterances  # type: ignore[attr-defined]
                text = "".join(u.text for u in utterances)
                by_role = {r: cer(role_reference[r], "".join(u.text for u in utterances if u.role == r))
                           for r in role_reference}
                covered = _coverage(output, call, variants[name])
                extra = "  coverage " + " ".join(f"{r} {c:.3f}" for r, c in covered.items())
            ratios = "  ".join(f"{wall / walls[b]:.2f}x {b}" for b in baselines)
            roles = ("  per-role CER " + " ".join(f"{r} {c:.3f}" for r, c in by_role.items())) if by_role else ""
            # with roles: all edits over all reference characters, role by role (their texts are not interleaved)
            overall = (sum(by_role[r] * len(matching_form(role_reference[r])) for r in by_role)
                       / sum(len(matching_form(role_reference[r])) for r in by_role)) if by_role else cer(reference,
                                                                                                        text)
            print(f"{name:16s} wall {wall:6.1f} s  RTF {wall / args.duration_s:.3f}  CER {overall:.3f}"
                  f"  {ratios}{roles}{extra}")
        print("goal: callqa-batched <= 1.00x per-channel at equal or better CER and coverage")
        print(profile(call, variants["callqa-batched"]))

        if args.memory_calls:
            measure_memory(resources, call, args.memory_calls)


def _coverage(transcript, call, resources: Resources) -> dict[str, float]:
    """Share of each role's VAD speech covered by trusted words (the stored feature)."""
    from pipeline.asr.coverage import coverage_columns, crosstalk_of
    from pipeline.records import CallEvidence

    asr = resources.config.asr
    evidence = CallEvidence(call.call_id, call.duration_s, tuple(c.role for c in call.channels),
                            transcript.segments, transcript.utterances)
    row = coverage_columns(evidence, crosstalk_of(transcript.segments, asr), asr.coverage_word_margin_s,
                           asr.gap_min_s, asr.coverage_snap_words)
    return {c.role: float(row[f"{c.role}_coverage"] or 0.0) for c in call.channels}


def measure_memory(resources: Resources, call, n_calls: int) -> None:
    """Transcribe a 20 s cut of the call ``n_calls`` times; print peak RSS as it goes."""
    import resource

    import psutil

    from pipeline.records import Channel

    process = psutil.Process()
    short = dataclasses.replace(call, channels=tuple(
        Channel(c.role, c.samples[: 20 * RATE_HZ].copy()) for c in call.channels), duration_s=20.0)
    for index in range(1, n_calls + 1):
        transcribe_audio(short, resources)
        if index % max(1, n_calls // 4) == 0:
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"memory: after {index:4d} calls RSS {process.memory_info().rss / 2**20:7.1f} MiB, "
                  f"peak {peak_mib:7.1f} MiB")


if __name__ == "__main__":
    main()
