from __future__ import annotations

from pathlib import Path

import pytest

from mtbsync.align.pairs import AlignmentPair, read_pairs_csv, write_pairs_csv
from mtbsync.errors import PairsFileError

HEADER = "t_new,t_ref,inliers,confidence,verified,source\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_written_as_documented_and_round_trips(tmp_path: Path) -> None:
    pairs = [
        AlignmentPair(0.5, 3.25, 120, 0.95, True, "path"),
        AlignmentPair(1.23456, 4.56789, 0, 0.1234, False, "refined"),
        AlignmentPair(2.0, 5.0, 40, 1.0, True, "marker"),
        AlignmentPair(3.0, 6.5, 0, 1.0, True, "anchor"),
    ]
    path = write_pairs_csv(tmp_path / "sub" / "pairs.csv", pairs)
    assert path.read_text() == (
        HEADER
        + "0.5000,3.2500,120,0.950,true,path\n"
        + "1.2346,4.5679,0,0.123,false,refined\n"
        + "2.0000,5.0000,40,1.000,true,marker\n"
        + "3.0000,6.5000,0,1.000,true,anchor\n"
    )
    back = read_pairs_csv(path)
    assert back[0] == pairs[0] and back[2:] == pairs[2:]
    assert back[1] == AlignmentPair(1.2346, 4.5679, 0, 0.123, False, "refined")
    assert [p.name for p in path.parent.iterdir()] == ["pairs.csv"]


def test_empty_table_round_trips(tmp_path: Path) -> None:
    assert read_pairs_csv(write_pairs_csv(tmp_path / "pairs.csv", [])) == []


def test_hand_made_t_new_t_ref_file(tmp_path: Path) -> None:
    text = "\ufeff# pairs I checked by eye\nt_new,t_ref\n1.0,2.0\n\n3.5,4.25\n"
    assert read_pairs_csv(write(tmp_path, text)) == [
        AlignmentPair(1.0, 2.0, 0, 1.0, True, "anchor"),
        AlignmentPair(3.5, 4.25, 0, 1.0, True, "anchor"),
    ]


def test_headerless_file(tmp_path: Path) -> None:
    assert read_pairs_csv(write(tmp_path, "1,2\n3,4,10,0.5,false,path\n")) == [
        AlignmentPair(1.0, 2.0),
        AlignmentPair(3.0, 4.0, 10, 0.5, False, "path"),
    ]


def test_columns_by_name_extra_columns_and_blank_defaults(tmp_path: Path) -> None:
    text = "note,T_REF,t_new,verified,frame\nfirst,2.0,1.0,,30\nsecond,4.0,3.0,no,90\n"
    assert read_pairs_csv(write(tmp_path, text)) == [
        AlignmentPair(1.0, 2.0, 0, 1.0, True, "anchor"),
        AlignmentPair(3.0, 4.0, 0, 1.0, False, "anchor"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("t_new,time\n1,2\n", 1, "lacks t_ref"),
        ("a,b\n1,2\n", 1, "lacks t_new and t_ref"),
        (HEADER + "1,2,3,0.5,true,path\n4\n", 3, "missing t_ref"),
        (HEADER + "\n# x\n1,abc,3,0.5,true,path\n", 4, "t_ref is not a number"),
        (HEADER + "1,2,3,0.5,true,path\nnan,2,3,0.5,true,path\n", 3, "t_new is not a number"),
        (HEADER + "1,-2,3,0.5,true,path\n", 2, "t_ref is negative"),
        (HEADER + "-1,2,3,0.5,true,path\n", 2, "t_new is negative"),
        (HEADER + "1,2,3.5,0.5,true,path\n", 2, "inliers is not a whole number"),
        (HEADER + "1,2,3,1.5,true,path\n", 2, "confidence is not from 0 to 1"),
        (HEADER + "1,2,3,0.5,perhaps,path\n", 2, "verified is not true/false"),
        (HEADER + "1,2,3,0.5,true,guess\n", 2, "unknown source 'guess'"),
        (HEADER + '1,2,3,0.5,true,"path\n', 2, "malformed CSV"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(PairsFileError) as err:
        read_pairs_csv(write(tmp_path, text))
    assert err.value.line == line
    assert f"line {line}:" in str(err.value) and words in str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(PairsFileError, match="file not found"):
        read_pairs_csv(tmp_path / "nope.csv")
    with pytest.raises(PairsFileError, match="empty file"):
        read_pairs_csv(write(tmp_path, "\n# nothing\n"))


def test_unknown_source_is_refused_in_code() -> None:
    with pytest.raises(ValueError, match="source"):
        AlignmentPair(1.0, 2.0, 0, 1.0, True, "magic")
