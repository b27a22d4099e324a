"""Hypothesis fuzzing of ingest over bytes derived from the real clips (truncation, header fields,
body flips, spliced chunks) in WAV, MP3, FLAC, Ogg and M4A: every input decodes to finite audio or
is refused with an UnsupportedAudioError; never a crash, a hang or another exception. A batch of
such files runs to the end with one row per file."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
from _support import CLIPS, SCALE, SR, DecodeServer, clip, record_figures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.batch import RunOptions, run_batch
from pipeline.config import load_config
from pipeline.store import Store

EXAMPLES = 300 * SCALE  # new inputs every run (Hypothesis keeps failing ones in its database)
INTERESTING = [0, 1, 2, 3, 6, 7, 8, 12, 16, 24, 31, 32, 33, 48, 64, 255, 0x31, 0x55, 8000, 16000, 44100,
               0xFFFE, 0xFFFF, 12345, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
TRIED: list[str] = []


def _convert(source: Path, target: Path, *args: str) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), *args,
                    str(target)], check=True)
    return target


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Real recordings in every container callqa reads, as bytes to mutate."""
    directory = tmp_path_factory.mktemp("seeds")
    source = CLIPS / "asr_example.wav"
    stereo = np.stack([clip("news_5s.wav"), clip("news_5s.wav")[::-1]], axis=1)
    soundfile.write(directory / "stereo.wav", stereo, SR, subtype="PCM_16")
    soundfile.write(directory / "float.wav", clip("asr_example.wav"), SR, subtype="FLOAT")
    soundfile.write(directory / "ext24.wav", stereo, SR, subtype="PCM_24")  # WAVE_FORMAT_EXTENSIBLE
    paths = [CLIPS / name for name in ("asr_example.wav", "BAC009S0764W0121.wav", "news_5s.wav")]
    paths += [directory / "stereo.wav", directory / "float.wav", directory / "ext24.wav",
              _convert(source, directory / "mulaw.wav", "-ar", "8000", "-c:a", "pcm_mulaw"),
              _convert(source, directory / "call.mp3", "-c:a", "libmp3lame"),
              _convert(source, directory / "call.flac", "-c:a", "flac"),
              _convert(source, directory / "call.ogg", "-c:a", "libopus"),
              _convert(source, directory / "call.m4a", "-c:a", "aac")]
    return {p.name: p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def server():
    decoder = DecodeServer()
    yield decoder
    decoder.close()
    record_figures("fuzz_ingest", inputs_tried=decoder.tried, crashes=0, hangs=0, undocumented=0)


def _set(data: bytearray, offset: int, size: int, value: int) -> None:
    if offset + size <= len(data):
        data[offset:offset + size] = (value % (1 << (8 * size))).to_bytes(size, "little")


class Case(tuple):
    """(seed name, bytes, steps) with a short repr: Hypothesis prints it on failure."""

    def __repr__(self) -> str:
        import hashlib

        name, data, steps = self
        return f"Case({name!r}, {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}, {steps})"


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> Case:
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "field", "header_byte", "flip", "truncate", "splice", "zero_run"]))
        if kind == "field":  # one of the WAV fmt fields / chunk sizes, or any of the first 64 bytes
            offset, size = draw(st.sampled_from([(4, 4), (16, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2),
                                                 (34, 2), (36, 2), (40, 4), (38, 2), (44, 4), (60, 2), (66, 4)]))
            value = draw(st.one_of(st.sampled_from(INTERESTING), st.integers(0, 0xFFFFFFFF)))
            _set(data, offset, size, value)
            kind = f"field@{offset}={value}"
        elif kind == "header_byte":
            offset = draw(st.integers(0, min(255, len(data) - 1)))
            data[offset] = draw(st.integers(0, 255))
            kind = f"byte@{offset}={data[offset]}"
        elif kind == "flip":  # corrupt the body
            for _ in range(draw(st.integers(1, 64))):
                offset = draw(st.integers(0, len(data) - 1))
                data[offset] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
            kind = f"truncate@{len(data)}"
        elif kind == "splice":  # a stretch of the file copied over another place
            start = draw(st.integers(0, len(data) - 1))
            length = draw(st.integers(1, 4096))
            target = draw(st.integers(0, len(data) - 1))
            data[target:target + length] = data[start:start + length]
        else:
            start = draw(st.integers(0, len(data) - 1))
            data[start:start + draw(st.integers(1, 20000))] = bytes(min(20000, len(data) - start))
        steps.append(kind)
        if not data:
            break
    return Case((name, bytes(data), steps))


def test_fuzzed_recordings_decode_or_are_refused_in_one_line(tmp_path_factory, seeds, server):
    directory = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(seeds))
    def check(case: Case) -> None:
        name, data, steps = case
        path = directory / f"fuzz{Path(name).suffix}"
        path.write_bytes(data)
        result = server.decode(path)
        TRIED.append(result[0])
        if result[0] in ("crash", "hang", "undocumented"):
            (directory / f"failing{Path(name).suffix}").write_bytes(data)  # to reproduce it by hand
        assert result[0] not in ("crash", "hang", "undocumented"), (name, steps, result)
        if result[0] == "ok":
            _, duration_s, channels, finite = result
            assert duration_s > 0 and channels >= 1 and finite, (name, steps, result)
        else:
            assert result[0] == "UnsupportedAudioError", (name, steps, result)
            reason = result[1]
            assert reason and "\n" not in result[2] and "Traceback" not in reason, (name, steps, result)

    check()
    outcomes = {kind: TRIED.count(kind) for kind in set(TRIED)}
    assert outcomes.get("UnsupportedAudioError", 0) > EXAMPLES // 4, outcomes  # the fuzz reaches the checks
    assert outcomes.get("ok", 0) > 10, outcomes  # ... and damaged-but-decodable audio too


def test_lying_wav_header_fields_never_crash(seeds, server, tmp_path):
    """Every interesting value in every fmt field of a real WAV: refused or decoded, never a crash."""
    base = seeds["asr_example.wav"]
    fields = [(20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4)]
    results: dict[str, int] = {}
    for offset, size in fields:
        for value in INTERESTING:
            data = bytearray(base)
            _set(data, offset, size, value)
            path = tmp_path / "field.wav"
            path.write_bytes(bytes(data))
            result = server.decode(path)
            assert result[0] in ("ok", "UnsupportedAudioError"), (offset, value, result)
            results[result[0]] = results.get(result[0], 0) + 1
    assert results["UnsupportedAudioError"] > results.get("ok", 0)


def test_a_batch_of_damaged_files_runs_to_the_end(tmp_path, seeds):
    """Damaged copies of every seed in one `run_batch` with 2 workers: one row per file, only
    documented errors (no worker crash, no broken pool)."""
    directory = tmp_path / "calls"
    directory.mkdir()
    rng = np.random.default_rng(13)
    count = 0
    for name, data in sorted(seeds.items()):
        for variant in range(3):
            damaged = bytearray(data)
            if variant == 0:  # a lying fmt field
                struct.pack_into("<H", damaged, 22, int(rng.choice([0, 8, 64, 65535])))
            elif variant == 1:  # flipped body bits
                for offset in rng.integers(0, len(damaged), 200):
                    damaged[int(offset)] ^= 0xFF
            else:  # cut off
                damaged = damaged[: int(len(damaged) * rng.uniform(0.05, 0.6))]
            (directory / f"{Path(name).stem}_{variant}{Path(name).suffix}").write_bytes(bytes(damaged))
            count += 1
    config = load_config().with_overrides({"asr": {"enabled": False}})
    summary = run_batch(directory, tmp_path / "store", config, RunOptions(workers=2))
    assert summary.planned == count and summary.done + summary.failed == count
    assert set(summary.failures) <= {"UnsupportedAudioError"}, summary.failures
    rows = Store(tmp_path / "store").read("calls", columns=["status", "error_message"]).to_pylist()
    assert len(rows) == count
    assert all("\n" not in (r["error_message"] or "") for r in rows)
    record_figures("fuzz_batch", files=count, done=summary.done, failed=summary.failed, crashes=0)
