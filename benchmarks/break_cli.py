"""Try to break the CLI with bad input, as a careless or hostile user would.

Every case runs ``python -m mtbsync ...`` in a subprocess inside a scratch folder that holds a
generated sample pair, a finished sync and its exports. After each case the script checks:

- no Python traceback was printed (the CLI answers bad input with one line and an exit code),
- no input file was modified, replaced or deleted (a hash of every file that existed before),
- the process did not hang (a generous per-case limit),
- a refused case exits non-zero.

Run:  .venv/bin/python benchmarks/break_cli.py [--keep DIR] [--only SUBSTRING]
Prints one line per failing case and a summary: cases, tracebacks, inputs modified, hangs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PER_CASE_LIMIT_S = 180.0
BAD_NUMBERS = ("nan", "inf", "-inf", "0", "-1", "1e309", "", "abc")


@dataclass(frozen=True)
class Case:
    """One bad invocation: the arguments and whether it must be refused (non-zero exit)."""

    name: str
    args: tuple[str, ...]
    must_fail: bool = True
    may_change: tuple[str, ...] = ()  # files the case may rewrite (its own earlier outputs)


def _cases() -> list[Case]:
    ref, new = "s/ref.mp4", "s/new.mp4"
    refm = "s/ref_markers.csv"
    out: list[Case] = []
    # Numbers that are not numbers, for every numeric option that takes one.
    for value in BAD_NUMBERS:
        out.append(
            Case(f"sync --fps {value!r}", ("sync", "-r", ref, "-n", new, "--out", "OUT", "--fps", value))
        )
        out.append(
            Case(
                f"sync --track-offset {value!r}",
                (
                    "sync",
                    "-r",
                    ref,
                    "-n",
                    new,
                    "--out",
                    "OUT",
                    "--track-offset",
                    value,
                    "--new-track",
                    "t.gpx",
                ),
                must_fail=value not in ("0", "-1"),
            )
        )
        out.append(Case(f"index --fps {value!r}", ("index", "-r", ref, "--out", "OUT.npz", "--fps", value)))
        out.append(
            Case(
                f"transfer --review-threshold {value!r}",
                (
                    "transfer",
                    "--reference-markers",
                    refm,
                    "--warp",
                    "ok/warp.npz",
                    "--out",
                    "OUT.csv",
                    "--review-threshold",
                    value,
                ),
                must_fail=value != "0",
            )
        )
        out.append(
            Case(
                f"warp --new-duration {value!r}",
                ("warp", "--pairs", "ok/pairs.csv", "--out", "OUT.npz", "--new-duration", value),
            )
        )
        out.append(
            Case(
                f"export --fps {value!r}",
                ("export", "csv", "--markers", "ok/new_markers.csv", "--out", "OUT.csv", "--fps", value),
            )
        )
        out.append(Case(f"sample --duration {value!r}", ("sample", "OUT", "--duration", value)))
        out.append(
            Case(
                f"sync --warp-max-p90 {value!r}",
                ("sync", "-r", ref, "-n", new, "--out", "OUT", "--warp-max-p90", value),
                must_fail=value != "0",
            )
        )
    # Files that are not what they claim to be.
    for name, path in (
        ("missing", "nope.mp4"),
        ("empty", "bad/empty.mp4"),
        ("text", "bad/text.mp4"),
        ("truncated", "bad/truncated.mp4"),
        ("folder", "bad"),
        ("csv-as-video", refm),
    ):
        out.append(Case(f"sync --new {name}", ("sync", "-r", ref, "-n", path, "--out", "OUT")))
        out.append(Case(f"index {name}", ("index", "-r", path, "--out", "OUT.npz")))
    for name, path in (
        ("missing", "nope.csv"),
        ("empty", "bad/empty.csv"),
        ("binary", "bad/empty.mp4"),
        ("no-header", "bad/noheader.csv"),
        ("bad-times", "bad/badtimes.csv"),
        ("folder", "bad"),
    ):
        out.append(
            Case(
                f"transfer --reference-markers {name}",
                ("transfer", "--reference-markers", path, "--warp", "ok/warp.npz", "--out", "OUT.csv"),
                must_fail=name != "no-header",
            )
        )
        out.append(Case(f"export --markers {name}", ("export", "edl", "--markers", path, "--out", "OUT.edl")))
    for name, path in (("missing", "nope.npz"), ("text", "bad/text.mp4"), ("csv", refm)):
        out.append(
            Case(
                f"transfer --warp {name}",
                ("transfer", "--reference-markers", refm, "--warp", path, "--out", "OUT.csv"),
            )
        )
    # Writing over inputs and over files the command did not write.
    out += [
        Case(
            "sync --out over its reference markers' folder",
            ("sync", "-r", ref, "-n", new, "--reference-markers", "ok/new_markers.csv", "--out", "ok"),
        ),
        Case("sync --out is the new video", ("sync", "-r", ref, "-n", new, "--out", new)),
        Case(
            "export csv over the reference markers",
            ("export", "csv", "--markers", "ok/new_markers.csv", "--out", refm),
        ),
        Case(
            "export over its own input",
            ("export", "csv", "--markers", "ok/new_markers.csv", "--out", "ok/new_markers.csv"),
        ),
        Case(
            "transfer over the pairs file",
            ("transfer", "--reference-markers", refm, "--warp", "ok/warp.npz", "--out", "ok/pairs.csv"),
        ),
        Case(
            "transfer over the reference markers",
            ("transfer", "--reference-markers", refm, "--warp", "ok/warp.npz", "--out", refm),
        ),
        Case("index over the reference video", ("index", "-r", ref, "--out", ref)),
        Case("warp over its pairs", ("warp", "--pairs", "ok/pairs.csv", "--out", "ok/pairs.csv")),
        Case("plot over a video", ("plot", "--pairs", "ok/pairs.csv", "--warp", "ok/warp.npz", "--out", new)),
        Case(
            "sql --out over the truth",
            ("sql", "SELECT 1", "--db", "cat.duckdb", "--format", "csv", "--out", "s/truth.csv"),
        ),
        Case(
            "sample again into its own folder",
            ("sample", "s", "--duration", "4"),
            must_fail=False,
            may_change=("s/",),
        ),
        *(
            [Case("sync --out unwritable", ("sync", "-r", ref, "-n", new, "--out", "ro/sub"))]
            if os.geteuid() != 0
            else []
        ),
        Case("sync --out under a file", ("sync", "-r", ref, "-n", new, "--out", "s/truth.csv/sub")),
        Case("sample over a rider's own markers", ("sample", "user", "--duration", "4")),
    ]
    # Options with the wrong words.
    out += [
        Case("sync --device tpu", ("sync", "-r", ref, "-n", new, "--out", "OUT", "--device", "tpu")),
        Case("sync --preset turbo", ("sync", "-r", ref, "-n", new, "--out", "OUT", "--preset", "turbo")),
        Case("sync --features sift", ("sync", "-r", ref, "-n", new, "--out", "OUT", "--features", "sift")),
        Case(
            "sync --dense-warp maybe", ("sync", "-r", ref, "-n", new, "--out", "OUT", "--dense-warp", "maybe")
        ),
        Case("sync same video twice", ("sync", "-r", ref, "-n", ref, "--out", "OUT"), must_fail=False),
        Case("export unknown format", ("export", "avi", "--markers", "ok/new_markers.csv")),
        Case(
            "export --start-tc 99:99",
            (
                "export",
                "edl",
                "--markers",
                "ok/new_markers.csv",
                "--out",
                "OUT.edl",
                "--start-tc",
                "99:99:99:99",
            ),
        ),
        Case(
            "export --reel with spaces",
            (
                "export",
                "edl",
                "--markers",
                "ok/new_markers.csv",
                "--out",
                "OUT.edl",
                "--reel",
                "a b c d e f g h",
            ),
        ),
        Case(
            "export --fps 1/0",
            ("export", "edl", "--markers", "ok/new_markers.csv", "--out", "OUT.edl", "--fps", "1/0"),
        ),
        Case("sql write refused", ("sql", "DELETE FROM runs", "--db", "cat.duckdb")),
        Case("sql nextval refused", ("sql", "SELECT nextval('runs_id_seq')", "--db", "cat.duckdb")),
        Case("sql syntax", ("sql", "SELEC 1", "--db", "cat.duckdb")),
        # The CLI runs as the user, who may read their own files through DuckDB (the API may not).
        Case(
            "sql file read",
            ("sql", "SELECT * FROM read_csv('s/truth.csv')", "--db", "cat.duckdb"),
            must_fail=False,
        ),
        Case("sql --format xml", ("sql", "SELECT 1", "--db", "cat.duckdb", "--format", "xml")),
        Case("runs --db is a video", ("runs", "--db", new)),
        Case("runs --db in a missing folder", ("runs", "--db", "missing/dir/cat.duckdb")),
        Case("markers list unknown run", ("markers", "list", "no-such-run", "--db", "cat.duckdb")),
        Case("trail set-reference unknown", ("trail", "set-reference", "nope", "nope", "--db", "cat.duckdb")),
        Case("ingest a file", ("ingest", new, "--db", "cat.duckdb")),
        Case("ingest missing", ("ingest", "nope", "--db", "cat.duckdb")),
        Case("ingest --settle nan", ("ingest", "s", "--db", "cat.duckdb", "--settle", "nan")),
    ]
    return out


def _prepare(work: Path, python: str) -> None:
    def run(*args: str) -> None:
        subprocess.run([python, "-m", "mtbsync", *args], cwd=work, check=True, capture_output=True)

    run("sample", "s", "--duration", "8")
    run(
        "sync",
        "-r",
        "s/ref.mp4",
        "-n",
        "s/new.mp4",
        "--reference-markers",
        "s/ref_markers.csv",
        "--out",
        "ok",
        "--db",
        "cat.duckdb",
        "--no-plot",
    )
    bad = work / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n")
    video = (work / "s" / "new.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(video[: int(len(video) * 0.99)])
    (bad / "empty.csv").write_text("")
    (bad / "noheader.csv").write_text("Drop,1.0\nJump,2.0\n")
    (bad / "badtimes.csv").write_text("name,t_ref\nDrop,nan\nJump,-inf\nRoot,abc\n")
    (work / "t.gpx").write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1">'
        "<trk><trkseg>"
        '<trkpt lat="46.0" lon="7.0"><time>2026-01-01T10:00:00Z</time></trkpt>'
        '<trkpt lat="46.0001" lon="7.0001"><time>2026-01-01T10:00:05Z</time></trkpt>'
        "</trkseg></trk></gpx>\n"
    )
    user = work / "user"
    user.mkdir()
    (user / "ref_markers.csv").write_text("name,t_ref\nMy drop,1.5\n")
    if os.geteuid() != 0:  # root writes anywhere; the case is only meaningful for a user
        ro = work / "ro"
        ro.mkdir()
        ro.chmod(0o555)


def _snapshot(work: Path) -> dict[str, str]:
    out = {}
    for path in work.rglob("*"):
        if path.is_file() and not path.name.endswith((".wal", ".tmp")) and path.name != ".mtbsync-files.json":
            out[str(path.relative_to(work))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the scratch folder here.")
    parser.add_argument("--only", default="", help="Run only cases whose name contains this.")
    args = parser.parse_args()
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="mtbsync-break-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MTBSYNC_DB": str(work / "cat.duckdb"), "COLUMNS": "120", "MTBSYNC_NO_GPU": "1"}
    try:
        _prepare(work, python)
        cases = [c for c in _cases() if args.only in c.name]
        tracebacks = modified = hangs = not_refused = 0
        started = time.perf_counter()
        for number, case in enumerate(cases):
            argv = [a.replace("OUT", f"out{number}") for a in case.args]
            before = _snapshot(work)
            try:
                proc = subprocess.run(
                    [python, "-m", "mtbsync", *argv],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=PER_CASE_LIMIT_S,
                )
            except subprocess.TimeoutExpired:
                hangs += 1
                print(f"HANG      {case.name}")
                continue
            text = proc.stdout + proc.stderr
            after = _snapshot(work)
            changed = [
                p
                for p, digest in before.items()
                if after.get(p) != digest
                and not p.endswith(".duckdb")
                and not p.startswith(case.may_change or "\0")
            ]
            problems = []
            if "Traceback" in text:
                tracebacks += 1
                problems.append("traceback")
            if changed:
                modified += 1
                problems.append(f"modified {', '.join(sorted(changed)[:3])}")
            if case.must_fail and proc.returncode == 0:
                not_refused += 1
                problems.append("exit 0")
            last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
            status = "FAIL" if problems else "ok"
            print(f"{status:9} {case.name}: rc={proc.returncode} {'; '.join(problems)} | {last[:110]}")
        elapsed = time.perf_counter() - started
        print(
            f"\n{len(cases)} bad-input cases in {elapsed:.0f} s: {tracebacks} tracebacks, "
            f"{modified} with inputs modified, {hangs} hangs, {not_refused} accepted that should be refused"
        )
        return 1 if tracebacks or modified or hangs else 0
    finally:
        (work / "ro").chmod(0o755) if (work / "ro").exists() else None
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
