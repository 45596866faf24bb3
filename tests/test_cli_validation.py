"""Every numeric option of every command refuses values that are not numbers in its range (nan, inf,
1e309, empty, text, out of range) as a usage error: exit code 2, one message naming the option, no
traceback, before any work (issue 12, item 5: one rule per option, shared by the commands)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_USER_ERROR, app

EXIT_USAGE = 2  # Typer's (click's) usage error
BAD_NUMBERS = ("nan", "inf", "-inf", "0", "-1", "1e309", "", "abc", "1.5e", "0x10")

# (command line before the option, option, values of BAD_NUMBERS that are valid for it)
OPTIONS: list[tuple[tuple[str, ...], str, frozenset[str]]] = []


def _add(command: tuple[str, ...], option: str, valid: tuple[str, ...] = ()) -> None:
    OPTIONS.append((command, option, frozenset(valid)))


INDEX = ("index", "-r", "ref.mp4")
SYNC = ("sync", "-r", "ref.mp4", "-n", "new.mp4")
WARP = ("warp", "--pairs", "pairs.csv")
TRANSFER = ("transfer", "--reference-markers", "ref.csv", "--warp", "warp.npz")
TRANSFER_OLD = ("transfer-markers", "--ref-markers", "ref.csv", "--timewarp-json", "timewarp.json")
PREVIEW = ("preview", "-r", "ref.mp4", "-n", "new.mp4")
SERVE = ("serve", "--library", "library")

_add(INDEX, "--fps")
_add(INDEX, "--threads", ("0",))
_add(SYNC, "--fps")
_add(SYNC, "--threads", ("0",))
_add(SYNC, "--review-threshold", ("0",))
_add(SYNC, "--warp-min-inlier-frac", ("0",))
_add(SYNC, "--warp-max-p90", ("0",))
_add(SYNC, "--warp-min-coverage", ("0",))
_add(SYNC, "--track-offset", ("0", "-1"))
_add(WARP, "--new-duration")
_add(WARP, "--ref-duration")
_add(WARP, "--warp-min-inlier-frac", ("0",))
_add(WARP, "--warp-max-p90", ("0",))
_add(WARP, "--warp-min-coverage", ("0",))
_add(TRANSFER, "--review-threshold", ("0",))
_add(TRANSFER_OLD, "--review-threshold", ("0",))
_add(PREVIEW, "--review-threshold", ("0",))
_add(PREVIEW, "--threads", ("0",))
_add(PREVIEW, "--port", ("0",))
_add(SERVE, "--review-threshold", ("0",))
_add(SERVE, "--settle", ("0",))
_add(SERVE, "--threads", ("0",))
_add(SERVE, "--port", ("0",))
_add(SERVE, "--workers")
_add(("ingest", "dump"), "--settle", ("0",))
_add(("ingest", "dump"), "--wait", ("0",))
_add(("watch", "dump"), "--settle", ("0",))
_add(("watch", "dump"), "--give-up", ("0",))
_add(("sample", "out"), "--duration")
_add(("sample", "out"), "--seed", ("0",))
_add(("demo",), "--duration")
_add(("demo",), "--threads", ("0",))
_add(("prune",), "--keep", ("0",))
_add(("prune",), "--older-than", ("0",))

CASES = [
    pytest.param(command, option, value, id=f"{command[0]} {option} {value!r}")
    for command, option, valid in OPTIONS
    for value in BAD_NUMBERS
    if value not in valid
]


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_bad_numbers_are_a_usage_error(
    command: tuple[str, ...], option: str, value: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, [*command, option, value], env={"COLUMNS": "200", "MTBSYNC_DB": str(tmp_path / "c.duckdb")}
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output
    named = [line for line in result.output.splitlines() if "Invalid value" in line]
    assert len(named) == 1 and f"'{option}'" in named[0], result.output
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


@pytest.mark.parametrize("value", ["nan", "inf", "0", "1e309", "", "abc", "12.5"])
def test_export_frame_rate_is_one_red_line(value: str, tmp_path: Path) -> None:
    markers = tmp_path / "new_markers.csv"
    markers.write_text("name,t_ref,t_new,confidence,needs_review,colour,comment\ngap,1,2,0.9,false,,\n")
    result = CliRunner().invoke(
        app,
        ["export", "edl", "-m", str(markers), "-o", str(tmp_path / "m.edl"), "--fps", value, "--db", "none"],
    )
    assert result.exit_code == EXIT_USER_ERROR, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "frame rate" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "m.edl").exists()


def _numeric_options() -> dict[str, list[tuple[str, object]]]:
    """Every float or int option of every command: option -> [(command, its parser)]."""
    import typing

    from typer.models import OptionInfo

    from mtbsync.cli._common import app as root

    found: dict[str, list[tuple[str, object]]] = {}
    infos = [*root.registered_commands]
    for group in root.registered_groups:
        infos += group.typer_instance.registered_commands
    for info in infos:
        hints = typing.get_type_hints(info.callback, include_extras=True)
        for pname, hint in hints.items():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, *extras = typing.get_args(hint)
            option = next((e for e in extras if isinstance(e, OptionInfo)), None)
            kinds = {a for a in (typing.get_args(base) or (base,)) if a is not type(None)}
            if option is None or not kinds & {float, int} or bool in kinds:
                continue
            # In an Annotated option the first name is Typer's ``default``.
            decls = (
                (option.default, *option.param_decls)
                if isinstance(option.default, str)
                else option.param_decls
            )
            name = next((d for d in decls if d.startswith("--")), "--" + pname.replace("_", "-"))
            found.setdefault(name, []).append((info.name or info.callback.__name__, option.parser))
    return found


# Float options of other commands, not yet under a shared rule (typer's own min/max: nan and inf pass).
NOT_YET_SHARED = {"--sql-timeout", "--timeout"}


def test_one_rule_per_option_shared_by_every_command_that_has_it() -> None:
    from mtbsync.cli._common import NumberRule

    options = _numeric_options()
    assert {"--fps", "--review-threshold", "--settle", "--threads", "--track-offset"} <= set(options)
    for name, uses in options.items():
        parsers = {id(parser) for _, parser in uses}
        if name in ("--duration",):  # the demo needs a longer pair than `sample` (a rule per minimum)
            assert all(isinstance(p, NumberRule) for _, p in uses), uses
            continue
        if name in ("--port", "--workers", "--max-rows") or name in NOT_YET_SHARED:
            continue  # whole numbers checked by typer's own range (nan, inf and 1e309 are not ints)
        assert len(parsers) == 1 and isinstance(uses[0][1], NumberRule), (name, uses)
