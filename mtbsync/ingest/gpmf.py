"""A small GPMF (GoPro Metadata Format) parser: KLV walking, stream metadata and the GPS streams.

GPMF is a Key-Length-Value format: a FourCC key, a one-byte type char, a one-byte struct size and a
16-bit repeat count, then ``size * repeat`` bytes padded to 32 bits. Type 0 means the value is itself
a list of KLVs (DEVC devices hold STRM streams). Inside a STRM, "sticky" metadata (SCAL, TYPE, STNM,
UNIT, TSMP, STMP, ...) precedes the data KLV it describes (GPS5, GPS9, ACCL, ...).

Every size is checked against the bytes that remain before anything is read or allocated, so any
byte string yields parsed data or a `TelemetryError`, never a hang, a crash or a huge allocation.
Only the streams mtbsync needs are decoded into numbers (the GPS family); other streams are kept
as raw KLVs with their sample counts.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np

from mtbsync.errors import TelemetryError

# Bytes per element of each GPMF type char (0 = nested KLVs, '?' = complex, described by TYPE).
_TYPE_SIZES = {
    "b": 1, "B": 1, "c": 1, "d": 8, "f": 4, "F": 4, "G": 16, "j": 8, "J": 8,
    "l": 4, "L": 4, "q": 4, "Q": 8, "s": 2, "S": 2, "U": 16,
}  # fmt: skip
_NUMPY = {
    "b": ">i1", "B": ">u1", "d": ">f8", "f": ">f4", "j": ">i8", "J": ">u8",
    "l": ">i4", "L": ">u4", "q": ">i4", "Q": ">i8", "s": ">i2", "S": ">u2",
}  # fmt: skip
_FIXED_POINT = {"q": 65536.0, "Q": 4294967296.0}  # Q15.16 and Q31.32
_MAX_DEPTH = 8  # real files nest 2-3 deep (DEVC > STRM > value); deeper is garbage
_KEY_RE = re.compile(rb"[A-Za-z0-9 _]{4}")
_KEYS: dict[bytes, str] = {}  # validated keys (the regex is the parser's hottest line otherwise)
_GPS_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # GPS9 counts days from here (UTC, leap seconds applied)
_STICKY_KEYS = frozenset(
    {"SCAL", "TYPE", "STNM", "UNIT", "SIUN", "TSMP", "STMP", "TIMO", "EMPT", "ORIN", "ORIO", "MTRX",
     "GPSF", "GPSP", "GPSU", "GPSA", "TMPC", "DVID", "DVNM", "TICK", "TOCK", "RMRK", "QUAN"}
)  # fmt: skip


class Klv(NamedTuple):
    """One GPMF key-length-value item (a NamedTuple: payloads hold hundreds, built in the hot loop).

    Attributes:
        key: FourCC, e.g. "DEVC", "GPS5".
        type: Type char ("" for nested KLVs).
        size: Bytes per struct (one sample).
        repeat: Number of structs.
        data: The ``size * repeat`` value bytes (without padding).
        children: The nested KLVs when ``type`` is "".
        offset: Byte offset of the KLV header in the parsed buffer.
    """

    key: str
    type: str
    size: int
    repeat: int
    data: bytes
    children: tuple[Klv, ...] = ()
    offset: int = 0


@dataclass(frozen=True)
class GpsBlock:
    """The GPS samples of one payload (one stream KLV), scaled to real units.

    Attributes:
        kind: "GPS5" or "GPS9".
        values: float64 array (n, 5) lat, lon, alt, speed2d, speed3d for GPS5; (n, 9) adding days since
            2000, seconds of day, DOP and fix for GPS9.
        fix: GPSF of the payload (GPS5), None when absent.
        dop: GPSP / 100 of the payload (GPS5), None when absent.
        utc: GPSU of the payload (GPS5), None when absent or unreadable.
        tsmp: Total samples of this stream before and including this payload, None when absent.
        stmp: Microsecond time stamp of the payload's first sample, None when absent.
        device: DVNM of the device.
    """

    kind: str
    values: np.ndarray
    fix: int | None = None
    dop: float | None = None
    utc: datetime | None = None
    tsmp: int | None = None
    stmp: int | None = None
    device: str | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class GpmfPayload:
    """What one payload (one MET sample) holds.

    Attributes:
        devices: Device names (DVNM) in order.
        gps: GPS blocks (GPS5 and/or GPS9), in stream order.
        sample_counts: Samples per stream key (e.g. {"ACCL": 200, "GPS5": 18}).
        problems: One line per stream that could not be decoded (the rest of the payload still is).
    """

    devices: tuple[str, ...]
    gps: tuple[GpsBlock, ...]
    sample_counts: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def parse_klv(data: bytes, *, depth: int = 0, base: int = 0) -> list[Klv]:
    """Parse a buffer of GPMF KLVs (recursively into nested ones).

    Trailing zero bytes (padding some cameras leave at the end of a payload) end the list.

    Args:
        data: GPMF bytes.
        depth: Nesting depth of ``data`` (internal).
        base: Offset of ``data`` in the outer buffer (for messages).

    Returns:
        The top-level KLVs, children filled.

    Raises:
        TelemetryError: A bad key, a size past the end of the buffer, or nesting that is too deep.
    """
    if depth > _MAX_DEPTH:
        raise TelemetryError(f"GPMF nesting deeper than {_MAX_DEPTH} at byte {base}")
    data = bytes(data)
    items: list[Klv] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            if any(data[pos:end]):
                raise TelemetryError(f"GPMF truncated: {end - pos} stray bytes at byte {base + pos}")
            break
        key_bytes = data[pos : pos + 4]
        if key_bytes == b"\0\0\0\0":
            break  # padding
        key = _KEYS.get(key_bytes)
        if key is None:
            if not _KEY_RE.fullmatch(key_bytes):
                raise TelemetryError(f"GPMF key {key_bytes!r} at byte {base + pos} is not a FourCC")
            key = key_bytes.decode("ascii")
            if len(_KEYS) < 4096:  # real files use a few dozen keys; garbage must not grow the cache
                _KEYS[key_bytes] = key
        type_byte, size = data[pos + 4], data[pos + 5]
        repeat = (data[pos + 6] << 8) | data[pos + 7]
        length = size * repeat
        padded = (length + 3) & ~3
        if padded > end - pos - 8:
            remain = end - pos - 8
            raise TelemetryError(
                f"GPMF {key_bytes.decode()} at byte {base + pos} claims {length} bytes, only {remain} remain"
            )
        value = data[pos + 8 : pos + 8 + length]
        if type_byte == 0:
            children = tuple(parse_klv(value, depth=depth + 1, base=base + pos + 8))
            items.append(Klv(key, "", size, repeat, b"", children, base + pos))
        else:
            type_char = chr(type_byte)
            if type_char != "?" and type_char not in _TYPE_SIZES:
                raise TelemetryError(f"GPMF {key} at byte {base + pos} has unknown type {type_byte:#04x}")
            items.append(Klv(key, type_char, size, repeat, value, (), base + pos))
        pos += 8 + padded
    return items


def expand_type(type_string: str) -> str:
    """Expand a TYPE string with counts ("f[3]L" -> "fffL").

    Raises:
        TelemetryError: Unknown type chars or a malformed count.
    """
    out: list[str] = []
    i = 0
    while i < len(type_string):
        char = type_string[i]
        if char == "\0":
            break
        if char not in _TYPE_SIZES:
            raise TelemetryError(f"GPMF TYPE {type_string!r} has unknown type {char!r}")
        count = 1
        if i + 1 < len(type_string) and type_string[i + 1] == "[":
            close = type_string.find("]", i + 2)
            if close < 0 or not type_string[i + 2 : close].isdigit():
                raise TelemetryError(f"GPMF TYPE {type_string!r} has a malformed count")
            count = int(type_string[i + 2 : close])
            i = close
        if count > 4096:
            raise TelemetryError(f"GPMF TYPE {type_string!r} has an implausible count")
        out.append(char * count)
        i += 1
    return "".join(out)


def decode_values(klv: Klv, type_string: str | None = None) -> np.ndarray:
    """Decode a numeric KLV into float64 (repeat, elements), fixed-point types converted.

    Args:
        klv: A KLV with a numeric type, or "?" with ``type_string`` (its TYPE).
        type_string: The stream's TYPE, needed for "?".

    Returns:
        float64 array of shape (repeat, elements per struct).

    Raises:
        TelemetryError: The struct size does not fit the type.
    """
    types = expand_type(type_string) if klv.type == "?" else None
    if types is None:
        if klv.type not in _NUMPY:
            raise TelemetryError(f"GPMF {klv.key} has non-numeric type {klv.type!r}")
        elem = _TYPE_SIZES[klv.type]
        if klv.size == 0 or klv.size % elem:
            raise TelemetryError(f"GPMF {klv.key} struct size {klv.size} does not fit type {klv.type!r}")
        types = klv.type * (klv.size // elem)
    if not types or any(t not in _NUMPY for t in types):
        raise TelemetryError(f"GPMF {klv.key} type {types!r} is not numeric")
    if sum(_TYPE_SIZES[t] for t in types) != klv.size:
        raise TelemetryError(f"GPMF {klv.key} struct size {klv.size} does not match TYPE {types!r}")
    if len(set(types)) == 1:
        raw = np.frombuffer(klv.data, dtype=_NUMPY[types[0]]).reshape(klv.repeat, len(types))
        out = raw.astype(np.float64)
        if types[0] in _FIXED_POINT:
            out /= _FIXED_POINT[types[0]]
        return out
    dtype = np.dtype([(f"f{i}", _NUMPY[t]) for i, t in enumerate(types)])
    raw = np.frombuffer(klv.data, dtype=dtype, count=klv.repeat)
    out = np.empty((klv.repeat, len(types)), dtype=np.float64)
    for i, t in enumerate(types):
        out[:, i] = raw[f"f{i}"]
        if t in _FIXED_POINT:
            out[:, i] /= _FIXED_POINT[t]
    return out


def decode_string(klv: Klv) -> str:
    """A 'c' (or 'U') KLV as text, NULs stripped."""
    return klv.data.split(b"\0", 1)[0].decode("latin-1").strip()


def _scalar(klv: Klv) -> float:
    values = decode_values(klv)
    if values.size == 0:
        raise TelemetryError(f"GPMF {klv.key} is empty")
    return float(values.flat[0])


def _scale(values: np.ndarray, scal: np.ndarray | None, key: str) -> np.ndarray:
    """Divide by SCAL: one divisor for all elements, or one per element."""
    if scal is None:
        return values
    divisors = scal.reshape(-1)
    if divisors.size not in (1, values.shape[1]):
        raise TelemetryError(f"GPMF {key} has {divisors.size} SCAL values for {values.shape[1]} elements")
    if np.any(divisors == 0):
        raise TelemetryError(f"GPMF {key} has a zero SCAL")
    return values / divisors


def parse_gpsu(text: str) -> datetime | None:
    """GPSU "yymmddhhmmss.sss" (UTC) as a datetime, None when unreadable."""
    text = text.strip()
    match = re.fullmatch(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?", text)
    if not match:
        return None
    yy, mo, dd, hh, mi, ss, frac = match.groups()
    try:
        stamp = datetime(2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), tzinfo=UTC)
    except ValueError:
        return None
    return stamp + timedelta(microseconds=round(float("0." + (frac or "0")) * 1e6))


def gps9_utc(days: float, seconds: float) -> datetime:
    """GPS9's own time (days since 2000-01-01 and seconds of the day) as a UTC datetime."""
    return _GPS_EPOCH + timedelta(days=float(days), seconds=float(seconds))


def _parse_gps5(klv: Klv, meta: dict[str, Klv]) -> np.ndarray:
    """GPS5: lat, lon, alt, 2D speed, 3D speed as signed 32-bit, each with its SCAL."""
    values = decode_values(klv)
    if values.shape[1] != 5:
        raise TelemetryError(f"GPMF GPS5 has {values.shape[1]} elements, expected 5")
    scal = decode_values(meta["SCAL"]) if "SCAL" in meta else None
    return _scale(values, scal, "GPS5")


def _parse_gps9(klv: Klv, meta: dict[str, Klv]) -> np.ndarray:
    """GPS9: lat, lon, alt, 2D speed, 3D speed, days since 2000, seconds, DOP, fix (complex, via TYPE).

    The seconds and DOP carry their scale in SCAL (1000 and 100) like the other elements.
    """
    type_string = decode_string(meta["TYPE"]) if "TYPE" in meta else None
    if klv.type == "?" and not type_string:
        raise TelemetryError("GPMF GPS9 has no TYPE")
    values = decode_values(klv, type_string)
    if values.shape[1] != 9:
        raise TelemetryError(f"GPMF GPS9 has {values.shape[1]} elements, expected 9")
    scal = decode_values(meta["SCAL"]) if "SCAL" in meta else None
    return _scale(values, scal, "GPS9")


_GPS_PARSERS = {"GPS5": _parse_gps5, "GPS9": _parse_gps9}


def parse_payload(data: bytes) -> GpmfPayload:
    """Parse one GPMF payload (one MET sample) and decode its GPS streams.

    A stream that cannot be decoded is reported in ``problems`` and the rest is kept; a payload whose
    KLV structure itself is broken raises.

    Args:
        data: The payload bytes.

    Returns:
        The devices, GPS blocks and per-stream sample counts.

    Raises:
        TelemetryError: The KLV structure is malformed or truncated.
    """
    top = parse_klv(data)
    devices: list[str] = []
    gps: list[GpsBlock] = []
    counts: dict[str, int] = {}
    problems: list[str] = []
    for devc in top:
        if devc.key != "DEVC" or devc.type:
            continue
        name = None
        for item in devc.children:
            if item.key == "DVNM" and item.type in ("c", "U"):
                name = decode_string(item)
                devices.append(name)
        for strm in devc.children:
            if strm.key != "STRM" or strm.type:
                continue
            meta: dict[str, Klv] = {}
            for item in strm.children:
                if item.key in _STICKY_KEYS:
                    meta[item.key] = item
                    continue
                if not item.type:
                    continue
                counts[item.key] = counts.get(item.key, 0) + item.repeat
                parser = _GPS_PARSERS.get(item.key)
                if parser is None:
                    continue
                try:
                    gps.append(_gps_block(item, meta, parser, name))
                except (TelemetryError, ValueError) as exc:
                    msg = exc.message if isinstance(exc, TelemetryError) else str(exc)
                    problems.append(f"{item.key} at byte {item.offset}: {msg}")
    return GpmfPayload(tuple(devices), tuple(gps), counts, tuple(problems))


def _gps_block(item: Klv, meta: dict[str, Klv], parser, device: str | None) -> GpsBlock:
    values = parser(item, meta)
    fix = dop = utc = tsmp = stmp = None
    if "GPSF" in meta:
        fix = int(_scalar(meta["GPSF"]))
    if "GPSP" in meta:
        dop = _scalar(meta["GPSP"]) / 100.0
    if "GPSU" in meta and meta["GPSU"].type in ("U", "c"):
        utc = parse_gpsu(decode_string(meta["GPSU"]))
    if "TSMP" in meta:
        tsmp = int(_scalar(meta["TSMP"]))
    if "STMP" in meta:
        stmp = int(_scalar(meta["STMP"]))
    return GpsBlock(item.key, values, fix, dop, utc, tsmp, stmp, device)


def split_track(data: bytes) -> list[bytes]:
    """Split a concatenated MET track (payloads back to back, no MP4) at its top-level KLVs.

    Each payload starts with the camera's DEVC; a following DEVC of another device (a BLE sensor,
    the Karma) belongs to the same payload.

    Raises:
        TelemetryError: The bytes are not a sequence of KLVs.
    """
    payloads: list[bytes] = []
    first_id: int | None = None
    for klv in parse_klv(data):
        end = klv.offset + 8 + ((klv.size * klv.repeat + 3) & ~3)
        dvid = next((c for c in klv.children if c.key == "DVID"), None)
        ident = struct.unpack(">I", dvid.data[:4])[0] if dvid is not None and dvid.type == "L" else None
        if first_id is None:
            first_id = ident
        chunk = data[klv.offset : end]
        if payloads and ident != first_id:
            payloads[-1] += chunk
        else:
            payloads.append(chunk)
    return payloads
