from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from mtbsync.align.pairs import AlignmentPair
from mtbsync.align.warp import Warp
from mtbsync.markers import Marker, transfer_markers
from mtbsync.plot import plot_alignment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def warp() -> Warp:
    return Warp(t_new=[0, 10, 20], t_ref=[5, 15, 35], confidence=[1, 0.9, 0.3])


@pytest.fixture
def pairs(warp: Warp) -> list[AlignmentPair]:
    rng = np.random.default_rng(0)
    out = []
    for k, t in enumerate(np.arange(0.0, 20.0, 0.5)):
        t_ref = float(warp.to_ref(t)[0]) + rng.normal(0, 0.02)
        source = "refined" if k % 4 else "path"
        out.append(AlignmentPair(float(t), t_ref, 40, float(warp.confidence_at(t)[0]), k % 7 != 0, source))
    out.append(AlignmentPair(12.0, float(warp.to_ref(12.0)[0]), 0, 1.0, True, "anchor"))
    out.append(AlignmentPair(25.0, 40.0, 5, 0.1, False, "path"))  # outside the warp: no residual
    return out


# DejaVu Sans has no CJK glyphs: the label shows boxes, which is all we ask of it here.
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_plot_of_an_aligned_run(tmp_path: Path, warp: Warp, pairs: list[AlignmentPair]) -> None:
    markers = transfer_markers(
        [Marker("start gate", 3.0, "#e6194b"), Marker("gap jump", 10.0, "nonsense"), Marker("跳台", 33.0)],
        warp,
    )
    truth = np.stack([np.arange(0, 20.0, 0.1), warp.to_ref(np.arange(0, 20.0, 0.1))], axis=1)
    path = plot_alignment(
        tmp_path / "out" / "alignment.png",
        pairs=pairs,
        warp=warp,
        markers=markers,
        truth=truth,
        title="a -> b",
    )
    assert path == tmp_path / "out" / "alignment.png"
    width, height = png_size(path)
    assert (width, height) == (1210, 880)
    assert path.stat().st_size > 20_000
    assert [p.name for p in path.parent.iterdir()] == ["alignment.png"]


def test_plot_of_a_run_that_is_not_aligned(tmp_path: Path, pairs: list[AlignmentPair]) -> None:
    empty = Warp([], [], [], ok=False, reason="too few verified pairs (3 < 10)")
    path = plot_alignment(tmp_path / "alignment.png", pairs=pairs, warp=empty, markers=[], dpi=50)
    assert png_size(path) == (550, 400)


def test_plot_with_nothing_at_all(tmp_path: Path) -> None:
    empty = Warp([], [], [], ok=False, reason="no frames")
    assert png_size(plot_alignment(tmp_path / "a.png", pairs=[], warp=empty, dpi=40)) == (440, 320)


def test_plot_of_a_fitted_warp_that_failed_its_gates(
    tmp_path: Path, warp: Warp, pairs: list[AlignmentPair]
) -> None:
    warp.ok, warp.reason = False, "p90 residual 0.80 s > 0.50 s"
    path = plot_alignment(tmp_path / "a.png", pairs=pairs, warp=warp, dpi=40)
    assert png_size(path) == (440, 320)
