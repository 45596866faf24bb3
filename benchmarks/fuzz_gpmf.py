"""Fuzz the GPMF parser: every input gives parsed data or a `TelemetryError`, never a crash or a hang.

Usage: python benchmarks/fuzz_gpmf.py [--cases N] [--seed S] [--time-limit S] [--corpus DIR] [--case K]

Seeds are the real GPMF payloads in ``tests/data/gopro`` (HERO5 to HERO11, GPS5 and GPS9), each also cut
down to its GPS streams (small inputs reach the decoders in fewer bytes). Each case takes one seed and
applies 1-4 mutations: byte-level ones (bit flips, byte sets, insertions, deletions, truncations, splices
with another seed, type-char swaps, size / repeat / key edits in KLV headers) and structure-aware ones on
the KLV tree, re-serialized with consistent sizes so they get past the KLV checks into the decoders
(a ``?`` stream without TYPE, odd TYPE strings, SCAL of the wrong count / zeros / NaN / inf, implausible
positions, retyped and resized items, dropped / duplicated / reordered items, nesting too deep).

Each case runs `parse_payload` and `split_track` (a `TelemetryError` is the one allowed exception), and,
where the payload decodes to GPS, `telemetry_from_payloads` between two good payloads (which must not
raise at all). Decoded GPS must have 5 or 9 columns and positions in range (or NaN). A case longer than
``--time-limit`` is a hang (SIGALRM interrupts it); the address space is capped so a huge allocation
is a MemoryError, i.e. a crash. Case K is generated from (seed, K) alone, so ``--case K`` replays it.
Crashing and hanging inputs are shrunk and saved as ``crash-<sha1>.bin`` / ``hang-<sha1>.bin`` (a few per
distinct exception site) in ``--corpus``, which ``tests/ingest/test_gpmf_corpus.py`` parses in the
default test run. Exit status 1 when there was a crash or a hang.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import random
import resource
import signal
import struct
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtbsync.errors import TelemetryError
from mtbsync.ingest.gopro import MetPayload, telemetry_from_payloads
from mtbsync.ingest.gpmf import parse_klv, parse_payload, split_track

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gopro"
CORPUS = ROOT / "tests" / "data" / "gpmf_corpus"
SEED_FILES = (
    "hero5.raw", "hero6.raw", "hero6-ble.raw", "karma-payload.raw", "hero7-track.raw", "hero11.raw",
    "hero6-track.gpmf", "hero8-grass.gpmf", "hero7-consecutive1.raw",
)  # fmt: skip
GPS_KEYS = (b"GPS5", b"GPS9")
TYPE_CHARS = b"bBcdfFGjJlLqQsSU?\0"
ODD_TYPES = (
    b"", b"\0", b"lllllllSS", b"lllll", b"f[3]L", b"l[9]", b"l[5]", b"?", b"c", b"Z", b"f[", b"f[]", b"f[x]",
    b"f[99999]", b"l[\xb2]", b"\xb2", b"L[0]", b"l" * 300, b"l[4096]l[4096]", b"ll[", b"[3]", b"U",
    b"llllllldd",
)  # fmt: skip
FLOATS = (0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, math.inf, -math.inf, math.nan, 1e7)


class Hang(BaseException):
    """Raised by the SIGALRM handler: the case ran past its time limit."""


@dataclass
class Node:
    """A mutable KLV: ``children`` is None for a leaf (whose ``data`` holds the value bytes)."""

    key: bytes
    type: int
    size: int
    repeat: int
    data: bytes = b""
    children: list[Node] | None = None


@dataclass
class FuzzResult:
    """What a fuzz run did."""

    cases: int = 0
    crashes: int = 0
    hangs: int = 0
    parsed: int = 0  # cases parse_payload accepted
    with_gps: int = 0  # ... and decoded GPS from
    signatures: Counter = field(default_factory=Counter)
    saved: list[Path] = field(default_factory=list)
    seconds: float = 0.0


# --- seeds -------------------------------------------------------------------------------------------


def _to_nodes(klvs) -> list[Node]:
    return [
        Node(k.key.encode(), 0, k.size, k.repeat, children=_to_nodes(k.children))
        if not k.type
        else Node(k.key.encode(), ord(k.type), k.size, k.repeat, k.data)
        for k in klvs
    ]


def serialize(nodes: list[Node]) -> bytes:
    """KLV bytes of a tree; sizes made consistent except where a mutation asked for an overrun."""
    out = bytearray()
    for n in nodes:
        if n.children is not None:
            body = serialize(n.children)
            size, repeat = (1, len(body)) if len(body) <= 0xFFFF else (4, min(len(body) // 4, 0xFFFF))
            out += n.key + b"\0" + bytes([size]) + struct.pack(">H", repeat) + body
        else:
            length = n.size * n.repeat
            data = n.data
            if length <= len(data) + 65536:  # else: keep the claim and the short data (an overrun)
                data = data[:length].ljust(length, b"\0")
            out += n.key + bytes([n.type & 0xFF, n.size & 0xFF]) + struct.pack(">H", n.repeat & 0xFFFF)
            out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def load_seeds(data_dir: Path = DATA) -> list[bytes]:
    """Real payloads (a few per file) and the same payloads cut down to their GPS streams."""
    seeds: list[bytes] = []
    for name in SEED_FILES:
        path = data_dir / name
        if not path.exists():
            continue
        payloads = split_track(path.read_bytes())
        for payload in payloads[:: max(1, len(payloads) // 3)][:3]:
            seeds.append(payload)
            small: list[Node] = []
            for devc in _to_nodes(parse_klv(payload)):
                if devc.children is None:
                    continue
                keep = [
                    c
                    for c in devc.children
                    if c.children is None or any(g.key in GPS_KEYS for g in c.children)
                ]
                if any(c.children is not None for c in keep):
                    small.append(Node(devc.key, 0, 1, 0, children=keep))
            if small:
                seeds.append(serialize(small))
    if not seeds:
        raise SystemExit(f"no seed payloads found in {data_dir}")
    return seeds


# --- mutations ---------------------------------------------------------------------------------------


def _walk(nodes: list[Node], depth: int = 0):
    """(sibling list, index, depth) of every node."""
    for i, n in enumerate(nodes):
        yield nodes, i, depth
        if n.children is not None:
            yield from _walk(n.children, depth + 1)


def _streams(nodes: list[Node]) -> list[Node]:
    return [n for lst, i, _ in _walk(nodes) if (n := lst[i]).children is not None and n.key == b"STRM"]


def _leaf(key: bytes, type_char: bytes, size: int, values: bytes) -> Node:
    repeat = len(values) // size if size else 0
    return Node(key, type_char[0], size, repeat, values)


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def _float_block(rng: random.Random, fmt: str, n: int) -> bytes:
    values = [rng.choice(FLOATS) for _ in range(n)]
    if fmt == "f":  # float32 cannot hold 1e300: its infinity stands in
        values = [v if abs(v) < 3e38 or not math.isfinite(v) else math.copysign(math.inf, v) for v in values]
    return struct.pack(f">{n}{fmt}", *values)


def _special_leaf(rng: random.Random) -> Node:
    """An item a camera never writes but a damaged file may hold."""
    choice = rng.randrange(12)
    rows = rng.randint(0, 20)
    if choice == 0:  # the case: GPS5 typed '?' (its stream may well have no TYPE)
        return _leaf(b"GPS5", b"?", 20, _rand_bytes(rng, 20 * rows))
    if choice == 1:
        return _leaf(b"GPS9", b"?", 32, _rand_bytes(rng, 32 * rows))
    if choice == 2:  # float GPS with NaN / inf
        return _leaf(b"GPS5", b"f", 20, _float_block(rng, "f", 5 * rows))
    if choice == 3:
        return _leaf(b"GPS9", b"d", 72, _float_block(rng, "d", 9 * rows))
    if choice == 4:  # sticky scalars that are not integers
        key = rng.choice((b"GPSF", b"GPSP", b"TSMP", b"STMP"))
        fmt, size = rng.choice((("f", 4), ("d", 8)))
        return _leaf(key, fmt.encode(), size, _float_block(rng, fmt, rng.randint(0, 2)))
    if choice == 5:  # SCAL of any count, type and value
        fmt, size, tc = rng.choice((("i", 4, b"l"), ("f", 4, b"f"), ("d", 8, b"d"), ("h", 2, b"s")))
        n = rng.randint(0, 12)
        if tc in (b"f", b"d"):
            return _leaf(b"SCAL", tc, size, _float_block(rng, fmt, n))
        values = [rng.choice((0, 1, -1, 10_000_000, 2**31 - 1, -(2**31))) for _ in range(n)]
        if fmt == "h":
            values = [max(-32768, min(32767, v)) for v in values]
        return _leaf(b"SCAL", tc, size, struct.pack(f">{n}{fmt}", *values))
    if choice == 6:
        return _leaf(b"SCAL", b"?", rng.choice((4, 20, 36)), _rand_bytes(rng, 36))
    if choice == 7:
        return _leaf(b"TYPE", b"c", 1, rng.choice(ODD_TYPES) or b"\0")
    if choice == 8:  # positions out of range: raw degrees with SCAL 1, or huge values
        vals = [rng.choice((91, -91, 181, -181, 2**31 - 1, -(2**31), 0, 45)) for _ in range(5 * rows)]
        return _leaf(b"GPS5", b"l", 20, struct.pack(f">{len(vals)}i", *vals))
    if choice == 9:
        return _leaf(b"DVID", b"L", rng.choice((0, 1, 2, 4)), _rand_bytes(rng, 4))
    if choice == 10:
        return _leaf(b"GPSU", rng.choice((b"U", b"c")), 16, rng.choice((b"991399999999.000", b"\xb2" * 16)))
    return _leaf(rng.choice((b"GPS5", b"GPS9", b"SCAL", b"TYPE")), b"\0", 1, _rand_bytes(rng, 8 * rows))


def mutate_tree(rng: random.Random, nodes: list[Node]) -> None:
    """One structure-aware mutation in place."""
    spots = list(_walk(nodes))
    if not spots:
        return
    lst, i, _ = rng.choice(spots)
    node = lst[i]
    op = rng.randrange(12)
    if op == 0 and len(lst) > 0:
        del lst[i]
    elif op == 1:
        lst.insert(i, Node(node.key, node.type, node.size, node.repeat, node.data, node.children))
    elif op == 2 and len(lst) > 1:
        j = rng.randrange(len(lst))
        lst[i], lst[j] = lst[j], lst[i]
    elif op == 3 and node.children is None:  # retype: the bytes stay, their meaning changes
        node.type = rng.choice(TYPE_CHARS)
    elif op == 4 and node.children is None:  # resize: the same bytes cut into other structs
        node.size = rng.choice((0, 1, 2, 3, 4, 5, 8, 12, 16, 20, 24, 32, 36, 255, rng.randrange(256)))
        node.repeat = len(node.data) // node.size if node.size else rng.choice((0, 1, 0xFFFF))
    elif op == 5 and node.children is None:
        node.repeat = rng.choice((0, 1, 2, node.repeat + 1, max(0, node.repeat - 1), 0xFFFF))
    elif op == 6 and node.children is None:  # fresh random value bytes
        node.data = _rand_bytes(rng, len(node.data))
    elif op == 7:  # nest deeper than any camera does
        wrapped = node
        for _ in range(rng.randint(1, 12)):
            wrapped = Node(rng.choice((b"DEVC", b"STRM")), 0, 1, 0, children=[wrapped])
        lst[i] = wrapped
    else:
        streams = _streams(nodes)
        if not streams:
            nodes.append(Node(b"DEVC", 0, 1, 0, children=[Node(b"STRM", 0, 1, 0, children=[])]))
            streams = _streams(nodes)
        strm = rng.choice(streams)
        assert strm.children is not None
        if op == 8:  # drop the TYPE (and maybe SCAL) a complex stream needs
            drop = {b"TYPE"} if rng.random() < 0.7 else {b"TYPE", b"SCAL"}
            strm.children[:] = [c for c in strm.children if c.key not in drop]
        elif op == 9:  # replace the TYPE string
            strm.children[:] = [c for c in strm.children if c.key != b"TYPE"]
            strm.children.insert(0, _leaf(b"TYPE", b"c", 1, rng.choice(ODD_TYPES) or b"\0"))
        else:
            strm.children.insert(rng.randint(0, len(strm.children)), _special_leaf(rng))


def _header_offsets(data: bytes) -> list[int]:
    """Offsets of KLV headers, walked leniently (no checks: this only aims the header mutations)."""
    out: list[int] = []
    stack = [(0, len(data))]
    while stack and len(out) < 4096:
        pos, end = stack.pop()
        while pos + 8 <= end:
            out.append(pos)
            type_byte, size = data[pos + 4], data[pos + 5]
            length = size * ((data[pos + 6] << 8) | data[pos + 7])
            if type_byte == 0:
                stack.append((pos + 8, min(end, pos + 8 + length)))
            pos += 8 + ((length + 3) & ~3)
    return out


def mutate_bytes(rng: random.Random, data: bytearray, seeds: list[bytes]) -> bytearray:
    """One byte-level mutation (in place where it can)."""
    op = rng.randrange(10)
    n = len(data)
    if n == 0:
        return bytearray(rng.choice(seeds)[: rng.randint(0, 64)])
    if op == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == 1:
        data[rng.randrange(n)] = rng.randrange(256)
    elif op == 2:
        pos = rng.randrange(n + 1)
        data[pos:pos] = _rand_bytes(rng, rng.randint(1, 16))
    elif op == 3:
        pos = rng.randrange(n)
        del data[pos : pos + rng.randint(1, 64)]
    elif op == 4:
        del data[rng.randrange(n) :]
    elif op == 5:
        other = rng.choice(seeds)
        data = data[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
    else:
        headers = _header_offsets(bytes(data))
        if not headers:
            data[rng.randrange(n)] = rng.randrange(256)
            return data
        pos = rng.choice(headers)
        if op == 6:  # type char
            data[pos + 4] = rng.choice(TYPE_CHARS) if rng.random() < 0.8 else rng.randrange(256)
        elif op == 7:  # struct size
            data[pos + 5] = rng.choice((0, 1, 255, (data[pos + 5] + 1) & 0xFF, rng.randrange(256)))
        elif op == 8:  # repeat
            repeat = rng.choice((0, 1, 0xFFFF, rng.randrange(0x10000)))
            data[pos + 6 : pos + 8] = struct.pack(">H", repeat)
        else:  # key
            data[pos + rng.randrange(4)] = rng.choice((0, 0x20, 0x7F, 0xB2, ord("a"), rng.randrange(256)))
    return data


def make_case(seeds: list[bytes], seed: int, index: int) -> bytes:
    """Case ``index`` of run ``seed``: a function of these two numbers (and the seeds) alone."""
    rng = random.Random(seed * 1_000_003 + index)
    base = rng.choice(seeds)
    if rng.random() < 0.5:
        nodes = _to_nodes(parse_klv(base))
        for _ in range(rng.randint(1, 3)):
            mutate_tree(rng, nodes)
        data = bytearray(serialize(nodes))
        byte_ops = rng.choice((0, 0, 1))
    else:
        data = bytearray(base)
        byte_ops = rng.randint(1, 4)
    for _ in range(byte_ops):
        data = mutate_bytes(rng, data, seeds)
    return bytes(data)


# --- running -----------------------------------------------------------------------------------------


def check(data: bytes, good: bytes) -> str:
    """Run one input through the parser; raise on anything but a TelemetryError.

    Returns:
        "rejected" (a TelemetryError), "parsed" or "gps" (parsed, with decoded GPS).
    """
    try:
        payload = parse_payload(data)
    except TelemetryError as exc:
        if "\n" in str(exc):
            raise AssertionError("a multi-line TelemetryError") from None
        payload = None
    with contextlib.suppress(TelemetryError):
        split_track(data)
    if payload is None or not payload.gps:
        return "rejected" if payload is None else "parsed"
    for block in payload.gps:
        values = block.values
        if values.ndim != 2 or values.shape[1] != (5 if block.kind == "GPS5" else 9):
            raise AssertionError(f"{block.kind} values of shape {values.shape}")
        lat, lon = values[:, 0], values[:, 1]
        with np.errstate(invalid="ignore"):
            if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180) or np.any(np.isinf(values[:, :2])):
                raise AssertionError(f"{block.kind} position out of range kept as a number")
    # The whole telemetry path between two good payloads: it must never raise.
    telemetry_from_payloads(
        [MetPayload(good, 0.0, 1.0), MetPayload(data, 1.0, 1.0), MetPayload(good, 2.0, 1.0)]
    )
    return "gps"


def _signature(exc: BaseException) -> str:
    """Exception type and the innermost mtbsync frame (file:line): one crash site."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "mtbsync" in frame.filename and "benchmarks" not in frame.filename:
            where = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"{type(exc).__name__} at {where}"


def _on_alarm(signum, frame) -> None:
    raise Hang()


def run_one(data: bytes, good: bytes, time_limit_s: float) -> tuple[str, str | None]:
    """("rejected" | "parsed" | "gps" | "crash" | "hang", crash site or None)."""
    signal.setitimer(signal.ITIMER_REAL, time_limit_s)
    try:
        return check(data, good), None
    except Hang:
        return "hang", "hang"
    except Exception as exc:  # every other exception is a finding
        return "crash", _signature(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def shrink(data: bytes, still_fails: Callable[[bytes], bool], budget: int = 1500) -> bytes:
    """Smaller input with the same failure: drop chunks of halving sizes while it still fails."""
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and budget > 0:
        pos, changed = 0, False
        while pos < len(data) and budget > 0:
            candidate = data[:pos] + data[pos + chunk :]
            budget -= 1
            if still_fails(candidate):
                data, changed = candidate, True
            else:
                pos += chunk
        if not changed:
            chunk //= 2
    return data


def _cap_memory(extra_mb: int) -> None:
    """Cap the address space a little above what is mapped now: a huge allocation fails fast."""
    if extra_mb <= 0:
        return
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    limit = vm * 1024 + extra_mb * (1 << 20)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def fuzz(
    cases: int,
    seed: int = 0,
    *,
    time_limit_s: float = 2.0,
    corpus: Path | None = CORPUS,
    keep_per_site: int = 2,
    progress: Callable[[FuzzResult], None] | None = None,
) -> FuzzResult:
    """Run ``cases`` generated cases; save shrunk crashing / hanging inputs into ``corpus``.

    Args:
        cases: Number of cases.
        seed: Run seed (case k is a function of (seed, k)).
        time_limit_s: Per-case limit; longer is a hang.
        corpus: Folder for crash-*.bin / hang-*.bin (None: save nothing).
        keep_per_site: Inputs kept per distinct crash site.
        progress: Called every 10,000 cases.

    Returns:
        The counts.
    """
    seeds = load_seeds()
    good = _good_payload(seeds)
    result = FuzzResult()
    # An outer alarm (pytest-timeout's) is put back afterwards with the time it had left.
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow / invalid value: a finding too
            for index in range(cases):
                data = make_case(seeds, seed, index)
                status, sig = run_one(data, good, time_limit_s)
                result.cases += 1
                if status in ("rejected", "parsed", "gps"):
                    result.parsed += status != "rejected"
                    result.with_gps += status == "gps"
                else:
                    result.crashes += status == "crash"
                    result.hangs += status == "hang"
                    result.signatures[sig] += 1
                    if corpus is not None and result.signatures[sig] <= keep_per_site:
                        result.saved.append(_save(corpus, data, good, status, sig, time_limit_s))
                if progress is not None and result.cases % 10_000 == 0:
                    result.seconds = time.perf_counter() - start
                    progress(result)
    finally:
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:
            left = max(outer_left - (time.perf_counter() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
    result.seconds = time.perf_counter() - start
    return result


def _good_payload(seeds: list[bytes]) -> bytes:
    """The smallest seed with GPS: the neighbours of a mutated payload in the whole-telemetry check."""
    return min((d for d in seeds if parse_payload(d).gps), key=len)


def _save(corpus: Path, data: bytes, good: bytes, status: str, sig: str | None, limit: float) -> Path:
    if status == "crash":
        data = shrink(data, lambda d: run_one(d, good, limit) == (status, sig))
    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / f"{status}-{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds per case before it is a hang")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="where crashing inputs go")
    parser.add_argument("--no-save", action="store_true", help="count only, save nothing")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space above start (0: no cap)")
    parser.add_argument("--case", type=int, default=None, help="replay one case and show its traceback")
    args = parser.parse_args(argv)
    _cap_memory(args.memory_mb)
    if args.case is not None:
        warnings.simplefilter("error", RuntimeWarning)
        seeds = load_seeds()
        data = make_case(seeds, args.seed, args.case)
        print(f"case {args.case}: {len(data)} bytes, sha1 {hashlib.sha1(data).hexdigest()[:16]}")
        check(data, _good_payload(seeds))
        print("ok")
        return 0

    def report(r: FuzzResult) -> None:
        print(f"  {r.cases:>8} cases  {r.crashes} crashes  {r.hangs} hangs  {r.seconds:6.1f} s", flush=True)

    r = fuzz(
        args.cases,
        args.seed,
        time_limit_s=args.time_limit,
        corpus=None if args.no_save else args.corpus,
        progress=report,
    )
    print(
        f"{r.cases} cases (seed {args.seed}), {r.crashes} crashes, {r.hangs} hangs, "
        f"{r.parsed} accepted ({r.with_gps} with GPS), {r.seconds:.1f} s "
        f"({r.cases / max(r.seconds, 1e-9):.0f}/s)"
    )
    for sig, n in r.signatures.most_common():
        print(f"  {n:>6}  {sig}")
    for path in r.saved:
        print(f"  saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if r.crashes or r.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
