from __future__ import annotations

import math
from pathlib import Path

import pytest

from mtbsync.errors import MarkerFileError
from mtbsync.markers import (
    Marker,
    TransferredMarker,
    parse_time,
    read_new_markers,
    read_reference_markers,
    write_new_markers,
)


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "ref_markers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12.5", 12.5),
        (" 7 ", 7.0),
        ("12.5s", 12.5),
        ("1e1", 10.0),
        (".5", 0.5),
        ("01:02.5", 62.5),
        ("75:00", 4500.0),
        ("1:02:03.250", 3723.25),
        ("0:00", 0.0),
    ],
)
def test_parse_time_forms(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1:60", "1:60:00", "12,5", "1__0", "--1"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_parse_time_leaves_sign_and_finiteness_to_the_caller() -> None:
    assert parse_time("-3") == -3.0
    assert parse_time("-1:30") == -90.0
    assert math.isnan(parse_time("nan"))
    assert parse_time("inf") == math.inf


def test_reads_the_documented_format_with_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name,t_ref,colour,comment\n"
        "start_gate,0.7644,#e6194b,red/white start posts with a beam across the trail\n"
        "sign,3.6159,#3cb44b,orange trail sign on a post beside the trail (rider passes it)\n",
    )
    assert read_reference_markers(path) == [
        Marker("start_gate", 0.7644, "#e6194b", "red/white start posts with a beam across the trail"),
        Marker("sign", 3.6159, "#3cb44b", "orange trail sign on a post beside the trail (rider passes it)"),
    ]


def test_reads_without_header_with_bom_crlf_blank_and_comment_lines(tmp_path: Path) -> None:
    text = (
        "# markers of the Lenk trail\r\n\r\ngap jump,12.5\r\n"
        "  # a comment line\r\nrock garden,1:02.250,red\r\n,,,\r\n"
    )
    markers = read_reference_markers(write(tmp_path, text, bom=True))
    assert markers == [Marker("gap jump", 12.5), Marker("rock garden", 62.25, "red")]


@pytest.mark.parametrize(
    "header", ["name,time", "Name,Time (s)", "marker,seconds", "label,t", "NAME , T_REF"]
)
def test_header_aliases(tmp_path: Path, header: str) -> None:
    markers = read_reference_markers(write(tmp_path, f"{header}\ndrop,4\n"))
    assert markers == [Marker("drop", 4.0)]


def test_header_columns_in_any_order_and_extra_columns(tmp_path: Path) -> None:
    text = "time,notes,id,name\n00:10,steep,7,chute\n"
    assert read_reference_markers(write(tmp_path, text)) == [Marker("chute", 10.0, "", "steep")]


def test_quoted_fields_keep_commas_quotes_newlines_and_pipes(tmp_path: Path) -> None:
    text = (
        "name,t_ref,colour,comment\n"
        '"jump, big",5,"#ff0000","say ""hup"" | then\nland, softly"\n'
        '"#1 drop",6,,plain\n'
    )
    markers = read_reference_markers(write(tmp_path, text))
    assert markers[0] == Marker("jump, big", 5.0, "#ff0000", 'say "hup" | then\nland, softly')
    # A quoted field starting with "#" is a name, not a comment line.
    assert markers[1] == Marker("#1 drop", 6.0, "", "plain")


def test_unquoted_commas_in_the_last_column_stay_in_the_comment(tmp_path: Path) -> None:
    text = 'berm,10,blue,fast, then brake,  hard\n"jump, big",12,red,up, over\n'
    assert read_reference_markers(write(tmp_path, text)) == [
        Marker("berm", 10.0, "blue", "fast, then brake,  hard"),
        Marker("jump, big", 12.0, "red", "up, over"),
    ]
    text = "name,time,comment\nberm,10,fast,then brake\n"
    assert read_reference_markers(write(tmp_path, text)) == [Marker("berm", 10.0, "", "fast,then brake")]


def test_a_header_naming_only_the_time_keeps_the_name_first(tmp_path: Path) -> None:
    assert read_reference_markers(write(tmp_path, "what,time,x\ndrop,4,y\n")) == [Marker("drop", 4.0)]


def test_non_latin_names_and_duplicates(tmp_path: Path) -> None:
    markers = read_reference_markers(write(tmp_path, "Sprung über Wurzel,3\n跳台,4\nдроп,5\n跳台,9\n"))
    assert [m.name for m in markers] == ["Sprung über Wurzel", "跳台", "дроп", "跳台"]
    assert [m.t_ref for m in markers] == [3.0, 4.0, 5.0, 9.0]


def test_line_numbers_count_multiline_fields_and_skipped_lines(tmp_path: Path) -> None:
    text = 'name,t_ref,colour,comment\n# note\na,1,,"two\nlines"\n\nb,oops\n'
    with pytest.raises(MarkerFileError) as err:
        read_reference_markers(write(tmp_path, text))
    assert err.value.line == 6
    assert "line 6" in str(err.value) and "'oops'" in str(err.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name,t_ref\na,1\n,2\n", 3, "no name"),
        ("a,1\nb\n", 2, "no time"),
        ("a,1\nb,   \n", 2, "no time"),
        ("a,1\n\nb,12..5\n", 3, "is not seconds"),
        ("a,1\nb,1:75\n", 2, "under 60"),
        ("a,1\nb,-2\n", 2, "negative"),
        ("a,nan\n", 1, "not a finite number"),
        ("a,1\nb,inf\n", 2, "not a finite number"),
        ("a,abc\n", 1, "is not seconds"),
        ('a,1\nb,2,"open\nquote\n', 2, "malformed CSV"),
        ('a,1\nb,"2"x\n', 2, "malformed CSV"),
        ("foo,bar,baz\n", 1, "is not seconds"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(MarkerFileError) as err:
        read_reference_markers(write(tmp_path, text))
    assert err.value.line == line
    assert f"line {line}:" in str(err.value)
    assert words in str(err.value)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,1\nb,2\nSprung über,3\n".encode("latin-1"))
    with pytest.raises(MarkerFileError, match="line 3: not UTF-8") as err:
        read_reference_markers(path)
    assert err.value.line == 3


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(MarkerFileError, match="file not found"):
        read_reference_markers(tmp_path / "nope.csv")
    with pytest.raises(MarkerFileError, match="not a file"):
        read_reference_markers(tmp_path)
    for text in ("", "\n\n", "# only a comment\n", "name,t_ref\n"):
        with pytest.raises(MarkerFileError, match="no markers"):
            read_reference_markers(write(tmp_path, text, bom=True))


def test_new_markers_are_written_as_documented(tmp_path: Path) -> None:
    markers = [
        TransferredMarker("gap jump", 12.5, 10.12345, 0.91234, False, "#ff0000", ""),
        TransferredMarker(
            "start", 0.7644, None, 0.0, True, "", "not placed: before the new run's covered part"
        ),
    ]
    path = write_new_markers(tmp_path / "out" / "new_markers.csv", markers)
    assert path.read_text(encoding="utf-8") == (
        "name,t_ref,t_new,confidence,needs_review,colour,comment\n"
        "gap jump,12.500,10.123,0.912,false,#ff0000,\n"
        "start,0.764,,0.000,true,,not placed: before the new run's covered part\n"
    )
    assert [p.name for p in path.parent.iterdir()] == ["new_markers.csv"]  # no temp file left behind


def test_new_markers_round_trip(tmp_path: Path) -> None:
    markers = [
        TransferredMarker("jump, big", 5.0, 4.25, 0.9, False, "#ff0000", 'say "hup" | then\nland'),
        TransferredMarker(
            "#1 drop", 6.0, None, 0.0, True, "", "user note | not placed: runs not aligned (x)"
        ),
        TransferredMarker("跳台\rline", 7.123, 6.001, 0.5, True, "blue", "  "),
        TransferredMarker(" spaced ", 1.0, 0.0, 1.0, False, "", ""),
    ]
    path = write_new_markers(tmp_path / "new_markers.csv", markers)
    back = read_new_markers(path)
    # Fields are stripped on reading: edge spaces do not survive (nobody means them).
    assert back == [
        *markers[:2],
        TransferredMarker("跳台\rline", 7.123, 6.001, 0.5, True, "blue", ""),
        TransferredMarker("spaced", 1.0, 0.0, 1.0, False, "", ""),
    ]


def test_new_markers_round_trip_rounds_to_milliseconds(tmp_path: Path) -> None:
    marker = TransferredMarker("a", 1.23456, 2.34567, 0.45678, True)
    (back,) = read_new_markers(write_new_markers(tmp_path / "m.csv", [marker]))
    assert (back.t_ref, back.t_new, back.confidence) == (1.235, 2.346, 0.457)


def test_empty_new_markers_round_trip(tmp_path: Path) -> None:
    assert read_new_markers(write_new_markers(tmp_path / "m.csv", [])) == []


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name,t_ref\na,1\n", 1, "lacks t_new, confidence, needs_review"),
        ("name,t_ref,t_new,confidence,needs_review\na,1,2,0.5,true\nb,1,2,1.5,true\n", 3, "from 0 to 1"),
        ("name,t_ref,t_new,confidence,needs_review\na,1,2,0.5,maybe\n", 2, "not true/false"),
        ("name,t_ref,t_new,confidence,needs_review\na,1,-2,0.5,true\n", 2, "negative"),
        ("name,t_ref,t_new,confidence,needs_review\n,1,2,0.5,true\n", 2, "no name"),
    ],
)
def test_new_markers_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(MarkerFileError) as err:
        read_new_markers(write(tmp_path, text, name="new_markers.csv"))
    assert err.value.line == line
    assert f"line {line}:" in str(err.value) and words in str(err.value)


def test_new_markers_empty_file(tmp_path: Path) -> None:
    with pytest.raises(MarkerFileError, match="empty file"):
        read_new_markers(write(tmp_path, "", name="new_markers.csv"))
