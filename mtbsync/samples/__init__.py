"""Sample data generated in code, with exact known truth (demo, tests, benchmarks).

- `make_sample_pair`: a reference run and a time-warped new run of one procedural trail.
- `make_different_trail_pair`: the same, but the new run rides another trail (nothing aligns).
- `Conditions` (and its named presets, `conditions.PRESETS`): how the new run's camera, light, season,
  frame rate and timing differ from the reference's; ``make_*_pair(..., conditions=...)``.
- `warp_video`: a self-warped copy of a real clip with its truth; `make_markers_for` adds markers;
  `make_warped_pair` does both and returns a `SamplePair`.

Run ``python -m mtbsync.samples --help`` for the command-line entry.
"""

from mtbsync.samples.conditions import Conditions, Light, Season
from mtbsync.samples.synth import SamplePair, make_different_trail_pair, make_sample_pair
from mtbsync.samples.warp import make_markers_for, make_warped_pair, read_truth, warp_video

__all__ = [
    "Conditions",
    "Light",
    "SamplePair",
    "Season",
    "make_different_trail_pair",
    "make_markers_for",
    "make_sample_pair",
    "make_warped_pair",
    "read_truth",
    "warp_video",
]
