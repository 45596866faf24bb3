"""The dense pass's settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mtbsync.align.dense import plan_dense_warp
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.errors import ConfigError


def test_an_unknown_dense_setting_is_refused() -> None:
    warp = Warp(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.ones(2))
    with pytest.raises(ConfigError, match="dense must be auto, on or off"):
        plan_dense_warp(warp, None, "ref.mp4", replace(SyncConfig(), dense="maybe"))
