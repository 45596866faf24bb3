"""I420 upscaling of a small rendered frame to any even output size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mtbsync.io.writer import upscale_i420


@pytest.mark.parametrize("size", [(640, 480), (480, 270), (480, 272), (320, 182)])
def test_upscale_i420_matches_scaling_the_picture(size: tuple[int, int]) -> None:
    """A height that is not a multiple of 4 (270) splits a row between the chroma planes."""
    y, x = np.mgrid[0:136, 0:240]
    small = np.stack(
        [128 + 60 * np.sin(x / 15), 128 + 60 * np.cos(y / 11), 128 + 50 * np.sin((x + y) / 20)], -1
    ).astype(np.uint8)
    i420 = upscale_i420(small, size)
    assert i420.shape == (size[1] * 3 // 2, size[0])
    back = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    expected = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    assert np.abs(back.astype(int) - expected.astype(int)).mean() < 3.0
