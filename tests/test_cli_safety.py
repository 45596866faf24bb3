"""No command writes over one of its inputs; a file mtbsync did not write there is replaced only with
--force; an output folder that cannot be written is refused before any work (issue 12, items 2, 6b)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_NOT_ALIGNED, EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.io.files import WRITTEN_LIST_NAME

runner = CliRunner()
REFERENCE_MARKERS = "name,t_ref\njump,1.0\nberm,2.0\n"


def _run(*args: object, cwd: Path | None = None):
    # Nothing is recorded in a catalog (where the command has one).
    argv = [str(a) for a in args] + (
        [] if args[0] in ("sample", "demo", "warp", "plot") else ["--db", "none"]
    )
    if cwd is None:
        return runner.invoke(app, argv)
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, argv)
    finally:
        os.chdir(previous)


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and mtime (to prove nothing was touched)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _written_list(folder: Path) -> dict:
    return json.loads((folder / WRITTEN_LIST_NAME).read_text())["files"]


@pytest.fixture(scope="module")
def synced(clip_30fps: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sync (the clip against itself, with reference markers) into a folder of its own."""
    root = tmp_path_factory.mktemp("safety")
    (root / "ref_markers.csv").write_text(REFERENCE_MARKERS)
    result = _run(
        "sync",
        "-r",
        clip_30fps,
        "-n",
        clip_30fps,
        "--out",
        root / "D",
        "--reference-markers",
        root / "ref_markers.csv",
    )
    assert result.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), result.output
    return root


@pytest.fixture
def work(synced: Path, tmp_path: Path) -> Path:
    """A private copy of the synced folder (its list of written files travels with it)."""
    shutil.copytree(synced, tmp_path / "w")
    return tmp_path / "w"


def test_sync_notes_exactly_the_files_it_wrote(synced: Path) -> None:
    from mtbsync.cli.align_commands import SYNC_FILES, SYNC_MARKERS_FILE, SYNC_PLOT_FILE

    folder = synced / "D"
    on_disk = {p.name for p in folder.iterdir()} - {WRITTEN_LIST_NAME}
    listed = _written_list(folder)
    assert set(listed) == on_disk
    assert {(n, e["kind"]) for n, e in listed.items()} == {*SYNC_FILES, SYNC_MARKERS_FILE, SYNC_PLOT_FILE}


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("spelling", ["plain", "dot-slash", "symlink", "hardlink"])
def test_sync_never_writes_over_its_reference_markers(
    clip_30fps: Path, work: Path, spelling: str, force: bool
) -> None:
    folder = work / "D"
    # The rider reviewed new_markers.csv and now uses it as the reference markers of the next run.
    given = {
        "plain": folder / "new_markers.csv",
        "dot-slash": Path("./D/../D/new_markers.csv"),
        "symlink": work / "link.csv",
        "hardlink": work / "hard.csv",
    }[spelling]
    if spelling == "symlink":
        given.symlink_to(folder / "new_markers.csv")
    if spelling == "hardlink":
        os.link(folder / "new_markers.csv", given)
    before = _state(work)
    args = ["sync", "-r", clip_30fps, "-n", clip_30fps, "--out", "D" if spelling == "dot-slash" else folder]
    result = _run(*args, "--reference-markers", given, *(["--force"] if force else []), cwd=work)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "is also an input" in line and "new_markers.csv" in line
    assert _state(work) == before


def test_export_csv_over_reference_markers_needs_force(work: Path) -> None:
    ref = work / "ref_markers.csv"
    before = _state(work)
    result = _run("export", "csv", "-m", work / "D" / "new_markers.csv", "--out", ref, "--fps", "25")
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "--force" in line and "ref_markers.csv" in line
    assert _state(work) == before
    forced = _run(
        "export", "csv", "-m", work / "D" / "new_markers.csv", "--out", ref, "--fps", "25", "--force"
    )
    assert forced.exit_code == EXIT_OK, forced.output
    assert ref.read_text().startswith("name,timecode,frame,seconds")
    # Written now by this export: the next export may replace it without --force.
    again = _run("export", "csv", "-m", work / "D" / "new_markers.csv", "--out", ref, "--fps", "30")
    assert again.exit_code == EXIT_OK, again.output


def test_transfer_over_another_runs_pairs_needs_force(work: Path) -> None:
    folder = work / "D"
    args = ["transfer", "--reference-markers", work / "ref_markers.csv", "--warp", folder / "warp.npz"]
    before = _state(work)
    result = _run(*args, "--out", folder / "pairs.csv", "--no-refine")
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "another kind of mtbsync output (pairs" in line and "--force" in line
    assert _state(work) == before
    # A pairs file copied from another run's folder (not in this folder's list) is just as foreign.
    other = work / "other"
    other.mkdir()
    shutil.copy(folder / "pairs.csv", other / "pairs.csv")
    before = _state(work)
    result = _run(*args, "--out", other / "pairs.csv", "--no-refine")
    assert result.exit_code == EXIT_USER_ERROR and "mtbsync did not write it" in result.output
    assert _state(work) == before
    forced = _run(*args, "--out", other / "pairs.csv", "--no-refine", "--force")
    assert forced.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), forced.output
    assert (other / "pairs.csv").read_text().startswith("name,t_ref,t_new")


def test_rerunning_a_sync_into_its_folder_needs_no_force(clip_30fps: Path, work: Path) -> None:
    folder = work / "D"
    listed = _written_list(folder)
    result = _run(
        "sync",
        "-r",
        clip_30fps,
        "-n",
        clip_30fps,
        "--out",
        folder,
        "--reference-markers",
        work / "ref_markers.csv",
    )
    assert result.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), result.output
    assert set(_written_list(folder)) == set(listed)
    # A transfer into the sync's own new_markers.csv replaces the same kind of file: no --force.
    transfer = _run(
        *("transfer", "--reference-markers", work / "ref_markers.csv", "--warp", folder / "warp.npz"),
        *("--out", folder / "new_markers.csv", "--no-refine"),
    )
    assert transfer.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), transfer.output


def test_a_file_edited_since_mtbsync_wrote_it_needs_force(clip_30fps: Path, work: Path) -> None:
    folder = work / "D"
    edited = folder / "new_markers.csv"
    edited.write_text(edited.read_text().replace("jump", "big jump"))  # reviewed by hand
    before = _state(work)
    args = [
        "sync",
        "-r",
        clip_30fps,
        "-n",
        clip_30fps,
        "--out",
        folder,
        "--reference-markers",
        work / "ref_markers.csv",
    ]
    result = _run(*args)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "changed since mtbsync wrote it" in line and "--force" in line
    assert _state(work) == before


def _foreign_cases(root: Path, clip: Path) -> list[tuple[str, list[object], Path]]:
    """(name, arguments, the file in the way) for every command that writes files."""
    d = root / "D"
    markers, pairs, warp = d / "new_markers.csv", d / "pairs.csv", d / "warp.npz"
    return [
        ("index", ["index", "-r", clip, "--out", root / "mine.npz"], root / "mine.npz"),
        ("warp", ["warp", "--pairs", pairs, "--out", root / "mine.npz"], root / "mine.npz"),
        ("warp json", ["warp", "--pairs", pairs, "--out", root / "w.npz"], root / "w.timewarp.json"),
        ("plot", ["plot", "--pairs", pairs, "--warp", warp, "--out", root / "mine.png"], root / "mine.png"),
        (
            "transfer",
            [
                "transfer",
                "--reference-markers",
                root / "ref_markers.csv",
                "--warp",
                warp,
                "-o",
                root / "m.csv",
            ],
            root / "m.csv",
        ),
        (
            "transfer-markers",
            [
                *("transfer-markers", "--ref-markers", root / "ref_markers.csv"),
                *("--timewarp-json", warp, "-o", root / "m.csv"),
            ],
            root / "m.csv",
        ),
        ("export default", ["export", "edl", "-m", markers, "--fps", "25"], d / "new_markers.edl"),
        (
            "export-markers",
            ["export-markers", markers, "--preset", "fcpxml", "--fps", "25"],
            d / "new_markers.fcpxml",
        ),
        ("sample", ["sample", root / "s", "--duration", "4"], root / "s" / "ref_markers.csv"),
        ("demo", ["demo", "--out", root / "demo"], root / "demo" / "sync" / "pairs.csv"),
        ("sync", ["sync", "-r", clip, "-n", clip, "--out", root / "E"], root / "E" / "timewarp.json"),
        ("runs", ["runs", "--format", "csv", "--out", root / "runs.csv"], root / "runs.csv"),
        ("trails", ["trails", "--format", "json", "--out", root / "trails.json"], root / "trails.json"),
    ]


@pytest.mark.parametrize("case", [c[0] for c in _foreign_cases(Path("."), Path("c.mp4"))])
def test_every_writing_command_refuses_a_foreign_file(case: str, clip_30fps: Path, work: Path) -> None:
    (_name, args, in_the_way) = next(c for c in _foreign_cases(work, clip_30fps) if c[0] == case)
    in_the_way.parent.mkdir(parents=True, exist_ok=True)
    in_the_way.write_text("the rider's own file\n")
    before = _state(work)
    result = _run(*args)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "--force" in _lines(result.output)[-1], result.output
    assert "Traceback" not in result.output
    assert _state(work) == before


def test_force_replaces_a_foreign_file_but_never_an_input(work: Path) -> None:
    markers = work / "D" / "new_markers.csv"
    mine = work / "mine.edl"
    mine.write_text("mine")
    done = _run("export", "edl", "-m", markers, "--out", mine, "--fps", "25", "--force")
    assert done.exit_code == EXIT_OK, done.output
    assert "LOC" in mine.read_text() or "TITLE" in mine.read_text()
    before = _state(work)
    refused = _run("export", "csv", "-m", markers, "--out", markers, "--fps", "25", "--force")
    assert refused.exit_code == EXIT_USER_ERROR and "also an input" in refused.output
    assert _state(work) == before


def test_default_export_names_carry_the_format(work: Path) -> None:
    markers = work / "D" / "new_markers.csv"
    for fmt in ("edl", "resolve-edl", "csv", "fcpxml", "premiere"):
        result = _run("export", fmt, "-m", markers, "--fps", "25")
        assert result.exit_code == EXIT_OK, result.output
    names = {p.name for p in markers.parent.iterdir()}
    expected = {"new_markers.edl", "new_markers.resolve.edl", "new_markers.export.csv", "new_markers.fcpxml"}
    assert expected | {"new_markers.xml"} <= names
    assert "ResolveColor" in (markers.parent / "new_markers.resolve.edl").read_text()
    assert "ResolveColor" not in (markers.parent / "new_markers.edl").read_text()


def test_an_unwritable_output_folder_is_refused_before_decoding(clip_30fps: Path, work: Path) -> None:
    # The new run is not a video: a sync that checked its output only at the end would fail on it.
    not_a_video = work / "ref_markers.csv"
    in_the_way = work / "ref_markers.csv"
    result = _run("sync", "-r", clip_30fps, "-n", not_a_video, "--out", in_the_way / "out")
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "a file is in the way" in line


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only folder (Linux /sys)")
def test_a_folder_without_write_permission_is_refused_before_decoding(clip_30fps: Path, work: Path) -> None:
    if os.access("/sys", os.W_OK) and os.geteuid() != 0:
        pytest.skip("/sys is writable here")
    result = _run("sync", "-r", clip_30fps, "-n", work / "ref_markers.csv", "--out", "/sys/mtbsync-out")
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "cannot write in this folder" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused_before_decoding(clip_30fps: Path, work: Path) -> None:
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = _run("sync", "-r", clip_30fps, "-n", work / "ref_markers.csv", "--out", locked)
    finally:
        locked.chmod(0o700)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "cannot write in this folder" in _lines(result.output)[0]


def test_an_index_over_a_video_is_refused_before_it_is_built(clip_30fps: Path, work: Path) -> None:
    video = work / "GX010101.MP4"
    video.write_bytes(b"the rider's video")
    before = _state(work)
    result = _run("index", "-r", clip_30fps, "--out", video, "--force")
    assert result.exit_code == EXIT_USER_ERROR, result.output
    (line,) = _lines(result.output)
    assert "never overwrites" in line and "Indexed" not in result.output
    assert _state(work) == before
