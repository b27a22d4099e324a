"""Planning a run (pipeline/inputs.py): call ids, what directory mode skips, manifest rows that
cannot be calls, started_at, and inputs that must never make planning wait."""

from __future__ import annotations

import csv
import os
import threading
from datetime import date
from pathlib import Path

import pytest
from conftest import CLIPS

from pipeline.batch import RunOptions, run_batch
from pipeline.errors import ManifestError
from pipeline.inputs import EARLIEST_CALL_DATE, parse_started_at, plan_input
from pipeline.store import Store

EXTENSIONS = ("wav", "mp3")
CLIP = CLIPS / "news_5s.wav"
IN_PROCESS = RunOptions(isolate=False)


def within(seconds: float, fn, *args):  # type: ignore[no-untyped-def]
    """fn(*args) in a thread; fails the test if it has not returned after ``seconds`` (a hang)."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} did not return within {seconds} s"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def copy_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CLIP.read_bytes())
    return path


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = sorted({k for row in rows for k in row})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# -- call ids ---------------------------------------------------------------------------------
def test_same_stem_in_two_formats_gets_two_ids(tmp_path):
    root = tmp_path / "in"
    for name in ("x.wav", "x.mp3", "y.wav", "day/x.wav", "a.wav", "a.mp3", "a.wav.mp3"):
        copy_clip(root / name)
    plan = plan_input(root, EXTENSIONS)
    ids = {Path(j.path).relative_to(root).as_posix(): j.call_id for j in plan.jobs}
    assert ids == {"x.wav": "x.wav", "x.mp3": "x.mp3", "y.wav": "y", "day/x.wav": "day/x",
                   # a.wav.mp3's own id would be "a.wav", which a.wav now holds: it keeps its extension too
                   "a.wav": "a.wav", "a.mp3": "a.mp3", "a.wav.mp3": "a.wav.mp3"}
    assert len(set(ids.values())) == len(ids)


def test_same_stem_run_keeps_both_calls_and_resumes(tmp_path, vad_only_config):
    # Before: x.wav and x.mp3 were both call "x": two current rows with one key, and every re-run
    # said "2 already done" for ever.
    import imageio_ffmpeg  # noqa: F401 - ffmpeg_convert needs it
    from conftest import ffmpeg_convert

    root = tmp_path / "in"
    copy_clip(root / "x.wav")
    ffmpeg_convert(CLIP, root / "x.mp3", "-c:a", "libmp3lame")
    first = run_batch(root, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (first.planned, first.done, first.failed) == (2, 2, 0)
    calls = Store(tmp_path / "store").read("calls", columns=["path", "codec"]).to_pylist()
    assert sorted((r["call_id"], Path(r["path"]).name, r["codec"]) for r in calls) == [
        ("x.mp3", "x.mp3", "mp3float"), ("x.wav", "x.wav", "pcm_s16le")]
    again = run_batch(root, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (again.planned, again.skipped, again.done) == (2, 2, 0)


# -- directory mode says what it skipped ---------------------------------------------------------
def test_directory_mode_reports_what_it_skipped(tmp_path):
    root = tmp_path / "in"
    copy_clip(root / "good.wav")
    copy_clip(root / "x.wav" / "inside.wav")  # a directory named like a recording
    os.mkfifo(root / "pipe.wav")
    os.symlink(root / "gone.wav", root / "dangling.wav")
    os.symlink(root / "loop2.wav", root / "loop1.wav")
    os.symlink(root / "loop1.wav", root / "loop2.wav")
    os.symlink(root, root / "back")  # a link to a directory already searched
    (root / "notes.txt").write_text("not audio")
    (root / "meta.json").write_text("{}")
    plan = within(20, plan_input, root, EXTENSIONS)
    assert sorted(j.call_id for j in plan.jobs) == ["good", "x.wav/inside"]
    skipped = {Path(s.path).relative_to(root).as_posix() if s.path != str(root) else ".": s.reason
               for s in plan.skipped}
    assert skipped == {
        "x.wav": "a directory named like a recording (searched inside)",
        "pipe.wav": "not a regular file: a FIFO (named pipe)",
        "dangling.wav": "dangling symbolic link (its target does not exist)",
        "loop1.wav": "symbolic link loop",
        "loop2.wav": "symbolic link loop",
        "back": "a link to a directory already searched (a loop or a second link to one folder)",
        ".": "2 file(s) with other extensions (.json ×1, .txt ×1): not in [input] extensions",
    }


def test_linked_directories_are_searched_once(tmp_path):
    real = tmp_path / "archive" / "2026-11-22"
    copy_clip(real / "call1.wav")
    root = tmp_path / "in"
    root.mkdir()
    os.symlink(real, root / "today")
    os.symlink(real, root / "yesterday")
    plan = plan_input(root, EXTENSIONS)
    assert [j.call_id for j in plan.jobs] == ["today/call1"]
    assert [Path(s.path).name for s in plan.skipped] == ["yesterday"]


def test_run_summary_lists_the_skipped_paths(tmp_path, vad_only_config):
    root = tmp_path / "in"
    copy_clip(root / "good.wav")
    os.mkfifo(root / "pipe.wav")
    summary = within(120, run_batch, root, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (summary.planned, summary.done) == (1, 1)
    assert f"skipped {root / 'pipe.wav'}: not a regular file: a FIFO (named pipe)" in summary.notes


# -- manifests --------------------------------------------------------------------------------
def test_unusable_manifest_rows_become_input_error_rows(tmp_path, vad_only_config):
    audio = copy_clip(tmp_path / "audio" / "good.wav")
    os.mkfifo(tmp_path / "audio" / "pipe.wav")
    manifest = write_manifest(tmp_path / "calls.csv", [
        {"call_id": "good", "path": "audio/good.wav", "started_at": "2026-11-22T09:30:00+08:00"},
        {"call_id": "absent", "path": "audio/absent.wav", "started_at": ""},
        {"call_id": "pipe", "path": "audio/pipe.wav", "started_at": ""},
        {"call_id": "device", "path": "/dev/zero", "started_at": ""},
        {"call_id": "folder", "path": "audio", "started_at": ""},
        {"call_id": "baddate", "path": str(audio), "started_at": "yesterday at nine"},
        {"call_id": "future", "path": str(audio), "started_at": "9999-12-31T23:59:59+14:00"},
        {"call_id": "ancient", "path": str(audio), "started_at": "1970-01-01T00:00:00Z"},
        {"call_id": "nul", "path": "audio/good\0.wav", "started_at": ""},
    ])
    summary = within(120, run_batch, manifest, tmp_path / "store", vad_only_config, IN_PROCESS)
    assert (summary.planned, summary.done, summary.failed) == (9, 1, 8)
    assert summary.failures == {"ManifestError": 8}  # an input error, not UnsupportedAudioError
    calls = {r["call_id"]: r for r in Store(tmp_path / "store").read(
        "calls", columns=["status", "error_type", "error_message"]).to_pylist()}
    assert calls["good"]["status"] == "ok" and calls["good"]["call_date"] == "2026-11-22"
    expected = {
        "absent": "file not found (manifest",
        "pipe": "not a regular file: a FIFO (named pipe) (manifest",
        "device": "not a regular file: a character device (manifest",
        "folder": "not a regular file: a directory (manifest",
        "baddate": "started_at 'yesterday at nine' is not an ISO 8601 date and time",
        "future": "started_at '9999-12-31T23:59:59+14:00' is outside 1990-01-01 ..",
        "ancient": "started_at '1970-01-01T00:00:00Z' is outside 1990-01-01 ..",
        "nul": "not a usable path: embedded null byte (manifest",
    }
    for call_id, reason in expected.items():
        row = calls[call_id]
        assert (row["status"], row["error_type"]) == ("failed", "ManifestError"), call_id
        assert reason in row["error_message"], row["error_message"]
        assert f"{manifest}, line " in row["error_message"]
    assert "9999-12-31" not in {r["call_date"] for r in calls.values()}  # no far-future partition
    assert "1970-01-01" not in {r["call_date"] for r in calls.values()}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-22T09:30:00+08:00", date(2026, 11, 22)),
    ("2026-11-21T23:30:00-05:00", date(2026, 11, 21)),  # the call's own local date
    ("2026-11-22T01:00:00Z", date(2026, 11, 22)),
    ("2026-11-22 09:30:00", date(2026, 11, 22)),
    ("2026-11-22", date(2026, 11, 22)),
    ("2026-11-23T10:00:00+14:00", date(2026, 11, 23)),  # tomorrow in Kiribati is today in UTC
])
def test_started_at_values_accepted(value, expected):
    assert parse_started_at(value, today=date(2026, 11, 22)) == expected


@pytest.mark.parametrize("value", ["2026-13-01", "22/11/2026", "nan", "2026-11-22T25:00", "tomorrow",
                                   "2026-11-24", "9999-12-31T23:59:59+14:00", "1989-12-31T23:59:59"])
def test_started_at_values_refused(value):
    with pytest.raises(ValueError, match="started_at"):
        parse_started_at(value, today=date(2026, 11, 22))
    assert EARLIEST_CALL_DATE == date(1990, 1, 1)


def test_fifo_or_device_as_input_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "calls.csv")
    with pytest.raises(ManifestError, match="input is a FIFO"):
        within(10, plan_input, tmp_path / "calls.csv", EXTENSIONS)
    with pytest.raises(ManifestError, match="input is a character device"):
        plan_input("/dev/null", EXTENSIONS)
    with pytest.raises(ManifestError, match="input not found"):
        plan_input(tmp_path / "absent", EXTENSIONS)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "manifest has no rows"),
    ("call_id\nx\n", "lacks required column(s) ['path']"),
    ("call_id,path\n,a.wav\n", "empty call_id or path"),
    ("call_id,path\nx,a.wav\nx,b.wav\n", "duplicate call_id 'x'"),
    ("call_id,path,channel_roles\nx,a.wav,agent;boss\n", "unknown role(s) ['boss']"),
    ("call_id,path\nx,\udcff.wav\n", "cannot read manifest"),  # not UTF-8
])
def test_malformed_manifests_stop_the_run_with_one_line(tmp_path, text, reason):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ManifestError) as info:
        plan_input(manifest, EXTENSIONS)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)
