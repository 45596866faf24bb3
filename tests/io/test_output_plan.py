"""`OutputPlan`: what a command may write, checked before it works, noted after it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtbsync.errors import OutputError
from mtbsync.io.files import WRITTEN_LIST_NAME, OutputPlan, atomic_write_text


def _write(plan: OutputPlan, path: Path, kind: str, text: str) -> None:
    with plan:
        plan.add(path, kind)
        atomic_write_text(path, text)


def test_a_written_file_may_be_replaced_by_the_same_kind_only(tmp_path: Path) -> None:
    out = tmp_path / "pairs.csv"
    _write(OutputPlan(), out, "pairs", "t_new,t_ref\n")
    listed = json.loads((tmp_path / WRITTEN_LIST_NAME).read_text())
    assert listed["mtbsync_files"] == 1 and listed["files"]["pairs.csv"]["kind"] == "pairs"
    _write(OutputPlan(), out, "pairs", "t_new,t_ref\n1,2\n")  # a re-run
    with pytest.raises(OutputError, match=r"another kind of mtbsync output \(pairs, not new-markers\)"):
        OutputPlan().add(out, "new-markers")
    _write(OutputPlan(force=True), out, "new-markers", "name\n")
    assert (
        json.loads((tmp_path / WRITTEN_LIST_NAME).read_text())["files"]["pairs.csv"]["kind"] == "new-markers"
    )


def test_nothing_written_nothing_noted(tmp_path: Path) -> None:
    with OutputPlan() as plan:
        plan.add(tmp_path / "a.csv", "pairs")
    assert not (tmp_path / WRITTEN_LIST_NAME).exists()


def test_a_broken_list_counts_as_none_and_is_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    out.write_text("mine")
    (tmp_path / WRITTEN_LIST_NAME).write_text("{not json")
    with pytest.raises(OutputError, match="mtbsync did not write it; add --force"):
        OutputPlan().add(out, "pairs")
    _write(OutputPlan(force=True), out, "pairs", "x")
    assert "a.csv" in json.loads((tmp_path / WRITTEN_LIST_NAME).read_text())["files"]


def test_a_newer_list_is_left_alone(tmp_path: Path) -> None:
    newer = json.dumps({"mtbsync_files": 99, "files": {}})
    (tmp_path / WRITTEN_LIST_NAME).write_text(newer)
    _write(OutputPlan(), tmp_path / "a.csv", "pairs", "x")
    assert (tmp_path / WRITTEN_LIST_NAME).read_text() == newer


def test_entries_of_files_gone_are_dropped(tmp_path: Path) -> None:
    _write(OutputPlan(), tmp_path / "a.csv", "pairs", "x")
    (tmp_path / "a.csv").unlink()
    _write(OutputPlan(), tmp_path / "b.csv", "pairs", "y")
    assert set(json.loads((tmp_path / WRITTEN_LIST_NAME).read_text())["files"]) == {"b.csv"}


def test_the_list_itself_and_media_are_never_outputs(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="list of the files it wrote"):
        OutputPlan(force=True).add(tmp_path / WRITTEN_LIST_NAME, "pairs")
    video = tmp_path / "GX010101.MP4"
    video.write_bytes(b"video")
    with pytest.raises(OutputError, match="never overwrites"):
        OutputPlan(force=True).add(video, "index")
    # A sample generator may replace its own videos; the rider's need --force there too.
    with pytest.raises(OutputError, match="mtbsync did not write it; add --force"):
        OutputPlan().add(video, "sample", replace_media=True)
    OutputPlan(force=True).add(video, "sample", replace_media=True)
    assert video.read_bytes() == b"video"


def test_an_input_is_refused_in_every_spelling_even_with_force(tmp_path: Path, monkeypatch) -> None:
    markers = tmp_path / "D" / "new_markers.csv"
    markers.parent.mkdir()
    markers.write_text("name,t_ref\na,1\n")
    (tmp_path / "link.csv").symlink_to(markers)
    monkeypatch.chdir(tmp_path)
    for given, out in [
        (markers, markers),
        (Path("link.csv"), markers),
        (Path("./D/../D/new_markers.csv"), Path("D/new_markers.csv")),
        (markers, tmp_path / "link.csv"),
    ]:
        with pytest.raises(OutputError, match="is also an input"):
            OutputPlan([given], force=True).add(out, "new-markers")
