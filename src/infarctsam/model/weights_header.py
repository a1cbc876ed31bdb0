"""A ``.safetensors`` header checked before the safetensors library reads it.

The file starts with an 8-byte little-endian header length, then a JSON header naming each tensor's dtype, shape and
byte range in the data that follows. A damaged or hostile file can claim a header of gigabytes, byte ranges outside
the file, ranges that overlap, or a shape whose size does not match its range. :func:`check_safetensors_header` reads
at most :data:`MAX_HEADER_BYTES` and refuses any of these in one line, before a tensor is allocated or mapped.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from infarctsam.errors import WeightsError

MAX_HEADER_BYTES = 16 << 20  # infarctsam's own header (tensor table and model card) is under 100 KiB
MAX_TENSORS = 1_000_000
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _bad(path: Path, why: str) -> WeightsError:
    return WeightsError(f"weights file {path} is corrupt or truncated: {why}")


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed header and the size of the data section."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise _bad(path, f"its header claims {n} bytes (the limit is {MAX_HEADER_BYTES // 2**20} MiB)")
            if n > size - 8:
                raise _bad(path, f"its header claims {n} bytes but the file holds only {size - 8} after the length")
            raw = fh.read(n)
    except OSError as exc:
        raise WeightsError(f"weights file {path} cannot be read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _bad(path, "its header is nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
        raise _bad(path, f"its header is not UTF-8 JSON ({' '.join(str(exc).split())[:80]})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    return header, size - 8 - n


def _tensor_range(path: Path, key: str, entry: Any, data_bytes: int) -> tuple[int, int]:
    if not isinstance(entry, dict):
        raise _bad(path, f"entry {key[:80]!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise _bad(path, f"tensor {key[:80]!r} has an unknown dtype {str(dtype)[:20]!r}")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise _bad(path, f"tensor {key[:80]!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise _bad(path, f"tensor {key[:80]!r} has invalid data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise _bad(path, f"tensor {key[:80]!r} lies outside the file (bytes {begin}-{end} of {data_bytes})")
    if math.prod(shape) * DTYPE_BYTES[dtype] != end - begin:
        raise _bad(path, f"tensor {key[:80]!r}: shape {shape} of {dtype} needs "
                         f"{math.prod(shape) * DTYPE_BYTES[dtype]} bytes, its range holds {end - begin}")
    return begin, end


def check_safetensors_header(path: str | Path) -> dict[str, str]:
    """Check a ``.safetensors`` file's header against the file, reading nothing but the header.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict
        The header's ``__metadata__`` (string to string).

    Raises
    ------
    WeightsError
        One line: a header length over :data:`MAX_HEADER_BYTES` or beyond the file, a header that is not a JSON
        object, an unknown dtype, a byte range outside the data, overlapping or gapped ranges, or a shape whose byte
        count differs from its range.
    """
    path = Path(path)
    header, data_bytes = _read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "its __metadata__ is not a map of strings")
    if len(header) > MAX_TENSORS:
        raise _bad(path, f"it lists {len(header)} tensors")
    ranges = sorted(_tensor_range(path, str(k), v, data_bytes) for k, v in header.items())
    at = 0
    for begin, end in ranges:
        if begin != at:
            what = "overlap" if begin < at else "leave a gap"
            raise _bad(path, f"tensor byte ranges {what} at byte {min(at, begin)}")
        at = end
    if at != data_bytes:
        raise _bad(path, f"its tensors cover {at} of the {data_bytes} data bytes")
    return metadata
