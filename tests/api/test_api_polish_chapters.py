"""`mtbsync preview` of runs recorded in GoPro chapters: one joined timeline for the player and the edits."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from web_fixtures import truth_warp

from mtbsync.api import PreviewFiles, PreviewSource
from mtbsync.api.schemas import MarkerPatch
from mtbsync.cli import EXIT_USER_ERROR, app
from mtbsync.io.split import split_into_chapters
from mtbsync.io.video import probe
from mtbsync.service import preview_files


@pytest.fixture(scope="module")
def chapters(sample_pair, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample pair as a card: the reference in 2 chapters (GX010006), the new run in 3 (GX010007)."""
    folder = tmp_path_factory.mktemp("polish_card") / "DCIM" / "100GOPRO"
    new_duration = probe(sample_pair.new).duration
    new = split_into_chapters(sample_pair.new, folder, [3.0, new_duration / 2], number="0007")
    ref = split_into_chapters(sample_pair.reference, folder, [6.5], number="0006")
    warp = truth_warp(sample_pair, tmp_path_factory.mktemp("polish_warp") / "warp.npz")
    return {"new": new, "ref": ref, "warp": warp}


@pytest.fixture(scope="module")
def source(chapters, sample_pair, tmp_path_factory: pytest.TempPathFactory) -> PreviewSource:
    files = preview_files(
        chapters["ref"],
        chapters["new"],
        chapters["warp"],
        reference_markers=sample_pair.reference_markers_csv,
        out_dir=tmp_path_factory.mktemp("polish_out"),
    )
    return PreviewSource(files)


def test_api_polish_chaptered_runs_are_named_and_timed_as_joined(source, chapters) -> None:
    joined_new = sum(probe(p).duration for p in chapters["new"])
    joined_ref = sum(probe(p).duration for p in chapters["ref"])
    new, reference = source.get_run("new"), source.get_run("reference")
    assert new.name == "GX010007.MP4 (+2 chapters)"
    assert reference.name == "GX010006.MP4 (+1 chapter)"
    assert new.duration == pytest.approx(joined_new, abs=1e-3)
    assert reference.duration == pytest.approx(joined_ref, abs=1e-3)
    assert new.media.duration == pytest.approx(joined_new, abs=1e-3)
    assert new.duration > probe(chapters["new"][0]).duration + 1.0


def test_api_polish_the_player_gets_one_joined_h264_file(source, chapters) -> None:
    for media_id, parts in (("new", chapters["new"]), ("reference", chapters["ref"])):
        playable = source.media_path(media_id)
        assert playable.is_relative_to(source.cache_dir)
        info = probe(playable)
        assert info.codec == "h264"
        assert info.duration == pytest.approx(sum(probe(p).duration for p in parts), abs=0.2)


def test_api_polish_edits_and_exports_use_the_joined_timeline(source, chapters) -> None:
    first_end = probe(chapters["new"][0]).duration
    late = [m for m in source.markers("new").markers if m.t_new is not None and m.t_new > first_end + 0.5]
    assert late, "the sample's markers should reach past the first chapter"
    # A move past the first chapter's end but inside the recording is accepted.
    moved = source.update_marker("new", late[0].id, MarkerPatch(t_new=late[0].t_new + 0.1))
    assert moved.t_new == pytest.approx(late[0].t_new + 0.1, abs=1e-3)
    state = json.loads((source.out_dir / "review.json").read_text())
    assert [Path(p).name for p in state["new"]] == [p.name for p in chapters["new"]]
    exported = source.export("new", "csv")
    assert exported.name == "GX010007.markers.csv"
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    seconds = {r["name"]: float(r["seconds"]) for r in rows}
    assert seconds[moved.name] == pytest.approx(moved.t_new, abs=1e-3)  # not clamped to chapter 1
    fcpxml = source.export("new", "fcpxml").read_text()
    assert "GX010007 + 2 chapters joined" in fcpxml


def test_api_polish_single_files_are_stored_as_files(sample_pair, tmp_path: Path) -> None:
    files = PreviewFiles([sample_pair.reference], (sample_pair.new,), tmp_path / "w.npz")
    assert files.reference == sample_pair.reference and files.new == sample_pair.new
    assert files.output_dir == sample_pair.new.with_name(sample_pair.new.name + ".mtbsync")


def test_api_polish_preview_of_a_missing_video_says_so_before_any_work(sample_pair, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["preview", "-r", str(tmp_path / "missing.mp4"), "-n", str(sample_pair.new), "--no-open"],
    )
    assert result.exit_code == EXIT_USER_ERROR
    assert "missing.mp4" in result.output and "not found" in result.output
    assert "aligning" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [result.output.strip()]


def test_api_polish_preview_cli_joins_the_chapters_of_the_first_chapter_given(
    chapters, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "mtbsync", "preview", "-r", str(chapters["ref"][0])]
    command += ["-n", str(chapters["new"][0]), "--warp", str(chapters["warp"]), "--out", str(tmp_path / "o")]
    command += ["--port", "0", "--no-open", "--token", "polish-token-1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen, url = [], None
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                url = found.group(0)
                break
        assert url is not None, "".join(seen)
        text = "".join(seen)
        assert "reference GX010006.MP4: 2 chapters joined" in text
        assert "new GX010007.MP4: 3 chapters joined" in text
        assert "GX010007.MP4 (+2 chapters) against GX010006.MP4 (+1 chapter)" in text
        runs = {r["id"]: r for r in httpx.get(f"{url}/api/runs", timeout=10).json()}
        assert runs["new"]["name"] == "GX010007.MP4 (+2 chapters)"
        assert runs["new"]["duration"] == pytest.approx(
            sum(probe(p).duration for p in chapters["new"]), abs=1e-3
        )
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
