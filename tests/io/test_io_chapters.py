"""A recording split into chapter files decodes as one continuous timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import texture_frames, write_clip

from mtbsync.errors import ConfigError, MediaError
from mtbsync.io.split import split_into_chapters
from mtbsync.io.video import (
    ChapteredVideo,
    DecodeReport,
    chaptered_video,
    chapters_identity,
    iter_sampled_frames,
    iter_window_frames,
    probe,
    video_identity,
)

CUTS = (1.0, 2.1)  # 90 frames at 30 fps -> chapters of 30, 33 and 27 frames


@pytest.fixture(scope="module")
def unsplit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("whole") / "whole.mp4", texture_frames(90, seed=7))


@pytest.fixture(scope="module")
def chapters(unsplit: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return split_into_chapters(unsplit, tmp_path_factory.mktemp("card"), CUTS, number="0042")


def _times(video, **kwargs) -> np.ndarray:
    return np.array([f.t for f in iter_sampled_frames(video, long_side=160, **kwargs)])


def test_chapters_are_named_like_a_gopro_card(chapters: list[Path]) -> None:
    assert [p.name for p in chapters] == ["GX010042.MP4", "GX020042.MP4", "GX030042.MP4"]
    assert [probe(p).frame_count for p in chapters] == [30, 33, 27]


def test_chapter_starts_are_the_summed_durations(chapters: list[Path]) -> None:
    timeline = chaptered_video(chapters)
    assert timeline.starts == pytest.approx((0.0, 1.0, 2.1), abs=1e-9)
    assert timeline.duration == pytest.approx(3.0, abs=1e-9)
    assert timeline.to_chapter(2.2) == (chapters[2], pytest.approx(0.1))
    assert timeline.chapter_at(-1.0) == 0 and timeline.chapter_at(99.0) == 2


def test_chapter_starts_match_the_gpmf_readers_offsets(chapters: list[Path]) -> None:
    # The GPS of chapter k is shifted by the durations the telemetry reader sees: the same numbers.
    from mtbsync.ingest.gopro import _met_stream_info

    durations = [_met_stream_info(p)[1] for p in chapters]
    assert chaptered_video(chapters).durations == pytest.approx(tuple(durations), abs=1e-12)


def test_probe_of_chapters_joins_them(chapters: list[Path], unsplit: Path) -> None:
    info = probe(chapters)
    whole = probe(unsplit)
    assert info.is_chaptered and info.chapters == tuple(chapters)
    assert info.duration == pytest.approx(whole.duration, abs=1e-9)
    assert info.frame_count == whole.frame_count == 90
    assert (info.width, info.height, info.fps) == (whole.width, whole.height, whole.fps)
    assert info.identity == chapters_identity([video_identity(p) for p in chapters])
    assert info.identity != probe(list(reversed(chapters))).identity
    assert info.timeline.starts == pytest.approx((0.0, 1.0, 2.1))


def test_single_file_probe_is_unchanged(unsplit: Path) -> None:
    info = probe(unsplit)
    assert info.identity == video_identity(unsplit) and not info.is_chaptered
    assert info.chapters == (unsplit,) and info.chapter_starts == (0.0,)
    assert probe([unsplit]) == info  # a one-chapter list is the file itself


@pytest.mark.parametrize("sample_fps", [3.0, 7.0, 10.0, 0.0])
def test_joined_sampling_equals_the_unsplit_file(
    chapters: list[Path], unsplit: Path, sample_fps: float
) -> None:
    joined = _times(chapters, sample_fps=sample_fps)
    whole = _times(unsplit, sample_fps=sample_fps)
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-6)
    assert np.all(np.diff(joined) > 0)  # no duplicate at a boundary


def test_every_frame_once_across_boundaries(chapters: list[Path]) -> None:
    report = DecodeReport()
    frames = list(iter_sampled_frames(chapters, sample_fps=0, long_side=160, report=report))
    np.testing.assert_allclose([f.t for f in frames], np.arange(90) / 30, atol=1e-6)
    assert [f.index for f in frames] == list(range(90))
    assert report.decoded_frames == 90 and not report.truncated and report.source == chapters[0]


def test_joined_images_are_the_source_frames(chapters: list[Path], unsplit: Path) -> None:
    joined = list(iter_sampled_frames(chapters, sample_fps=10, long_side=160))
    whole = list(iter_sampled_frames(unsplit, sample_fps=10, long_side=160))
    diffs = [
        np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in zip(joined, whole, strict=True)
    ]
    assert max(diffs) < 4.0  # re-encoded, but the same pictures at the same times


def test_start_and_end_across_a_boundary(chapters: list[Path], unsplit: Path) -> None:
    kwargs = {"sample_fps": 10.0, "start": 0.85, "end": 2.35}
    joined = _times(chapters, **kwargs)
    np.testing.assert_allclose(joined, _times(unsplit, **kwargs), atol=1e-6)
    assert joined[0] == pytest.approx(0.85, abs=1 / 30) and joined[-1] == pytest.approx(2.35, abs=1 / 30)


def test_keyframes_only_walks_every_chapter(chapters: list[Path]) -> None:
    assert np.all(np.diff(_times(chapters, sample_fps=3.0, keyframes_only=True)) > 0)
    # Each chapter starts a GOP (15 frames): all key frames, on the joined timeline.
    times = _times(chapters, sample_fps=0, keyframes_only=True)
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 1.5, 2.0, 2.1, 2.6], atol=1e-6)


def test_windows_across_a_boundary(chapters: list[Path], unsplit: Path) -> None:
    windows = [(0.9, 1.1), (2.0, 2.2), (2.9, 3.5)]
    joined = [f.t for f in iter_window_frames(chapters, windows, long_side=160)]
    whole = [f.t for f in iter_window_frames(unsplit, windows, long_side=160)]
    np.testing.assert_allclose(joined, whole, atol=1e-6)
    assert len(joined) == len(set(np.round(joined, 6))) == 7 + 7 + 3
    assert [f.index for f in iter_window_frames(chapters, windows, long_side=160)] == list(range(17))


def test_explicit_timeline_keeps_its_starts(chapters: list[Path]) -> None:
    # Proxies play on the main files' timeline: the starts given are used as they are.
    timeline = ChapteredVideo(tuple(chapters[1:]), (5.0, 6.1), (1.1, 0.9))
    times = _times(timeline, sample_fps=0)
    assert times[0] == pytest.approx(5.0) and times[-1] == pytest.approx(6.1 + 26 / 30)


def test_chapters_of_another_size_are_refused(chapters: list[Path], tmp_path: Path) -> None:
    other = write_clip(tmp_path / "GX020043.MP4", texture_frames(10, width=160, height=90))
    with pytest.raises(MediaError, match="not chapters of one recording"):
        probe([chapters[0], other])


def test_missing_chapter_is_a_media_error(chapters: list[Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        list(iter_sampled_frames([chapters[0], tmp_path / "GX020099.MP4"], sample_fps=3, long_side=160))


def test_bad_cuts_are_refused(unsplit: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        split_into_chapters(unsplit, tmp_path, [2.0, 1.0])


def test_a_truncated_middle_chapter_keeps_the_later_ones_in_place(
    chapters: list[Path], tmp_path: Path
) -> None:
    middle = write_clip(tmp_path / "GX020042.MP4", texture_frames(90, seed=8), faststart=True)
    data = middle.read_bytes()
    middle.write_bytes(data[: len(data) // 3])  # the index (moov first) still says 3 s
    report = DecodeReport()
    times = [
        f.t
        for f in iter_sampled_frames(
            [chapters[0], middle, chapters[2]], sample_fps=0, long_side=160, report=report
        )
    ]
    assert report.truncated and any("GX020042.MP4" in w for w in report.warnings)
    # The third chapter starts where the second's index says it ends: 1.0 + 3.0 s.
    assert times[-27] == pytest.approx(4.0, abs=1e-6) and times[-1] == pytest.approx(4.0 + 26 / 30, abs=1e-6)
    assert np.all(np.diff(times) > 0)
