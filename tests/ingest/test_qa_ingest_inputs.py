"""QA regressions for ingest-side inputs: folders where files are expected give one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbsync.errors import TrackFileError
from mtbsync.ingest.gpx import read_track_file


@pytest.mark.parametrize("name", ["tracks", "ride.gpx", "ride.fit"])
def test_qa_ingest_track_file_that_is_a_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(TrackFileError, match="is a folder"):
        read_track_file(folder)
