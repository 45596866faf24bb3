"""Atomic writes keep the mode the umask asks for (editors on a shared drive can read the exports);
a replaced file keeps its own mode; a secret is 0600 from its first byte."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mtbsync.io.files import atomic_write_bytes, atomic_write_text, current_umask

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test (and put the old one back)."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)]
)
def test_new_files_get_the_umasks_mode(umask, tmp_path: Path, mask: int, expected: int) -> None:
    umask(mask)
    assert current_umask() == mask
    path = atomic_write_text(tmp_path / "markers.csv", "name,t_ref\n")
    assert _mode(path) == expected
    atomic_write_bytes(tmp_path / "warp.npz", lambda fh: fh.write(b"x"))
    assert _mode(tmp_path / "warp.npz") == expected


def test_reading_the_umask_leaves_it_as_it_was(umask) -> None:
    umask(0o027)
    for _ in range(3):
        assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027


@pytest.mark.parametrize("existing", [0o600, 0o664, 0o640])
def test_a_replaced_file_keeps_its_own_mode(umask, tmp_path: Path, existing: int) -> None:
    umask(0o022)
    path = tmp_path / "new_markers.csv"
    path.write_text("old")
    path.chmod(existing)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == existing


def test_an_explicit_mode_wins_and_a_secret_is_never_readable_by_others(umask, tmp_path: Path) -> None:
    umask(0o022)
    path = tmp_path / "secret.json"
    seen: list[int] = []

    def writer(fh) -> None:
        # The temp file as it is while being written: private already.
        seen.append(stat.S_IMODE(os.fstat(fh.fileno()).st_mode))
        fh.write(b"{}")

    path.write_text("was world-readable")
    path.chmod(0o644)
    atomic_write_bytes(path, writer, mode=0o600)
    assert seen == [0o600]
    assert _mode(path) == 0o600


def test_the_service_file_holding_the_token_stays_0600(umask, tmp_path: Path) -> None:
    from mtbsync.store.service_file import write_service_file

    umask(0o022)
    path = write_service_file(tmp_path / "catalog.duckdb", "http://127.0.0.1:1", token="t0ken", pid=1)
    assert _mode(path) == 0o600


def test_cli_exports_are_readable_by_the_group_and_others(umask, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtbsync.cli import app

    umask(0o022)
    markers = tmp_path / "new_markers.csv"
    markers.write_text("name,t_ref,t_new,confidence,needs_review,colour,comment\ngap,1,2,0.9,false,,\n")
    out = tmp_path / "markers.edl"
    result = CliRunner().invoke(
        app, ["export", "edl", "-m", str(markers), "-o", str(out), "--fps", "25", "--db", "none"]
    )
    assert result.exit_code == 0, result.output
    assert _mode(out) == 0o644
    assert _mode(tmp_path / ".mtbsync-files.json") == 0o644
