"""Header promises checked against the file before any voxel is allocated.

An image header says how many voxels follow (NIfTI ``dim``, MetaImage ``DimSize``, DICOM ``Rows`` x ``Columns``).
A hostile or damaged header can promise terabytes in a file of a few bytes; a reader that trusts it allocates the
whole array first and dies (or is killed) before noticing the file is short. These checks compare the promised byte
count with what the file can hold: at most its size when stored raw, at most :data:`MAX_DEFLATE_RATIO` times its
size when deflate-compressed (gzip, zlib), and never more than :data:`MAX_VOXEL_BYTES`. A MetaImage's data file must
also be a regular file (a FIFO or a device behind ``ElementDataFile`` is refused before anything opens it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from infarctsam.errors import InputError
from infarctsam.io.safety import MAX_TEXT_BYTES, check_input_path

MAX_VOXEL_BYTES = 64 << 30  # decoded voxels of one image (a 4D DWI of 256x256x80x100 float32 is 2 GiB)
MAX_DEFLATE_RATIO = 1032  # deflate cannot expand data more than 1032-fold
_SLACK = 1 << 16  # gzip/zlib headers, trailers and stored blocks
MAX_DATA_FILES = 100_000  # files of a MetaImage ``ElementDataFile = LIST`` or a file-name pattern

_RAW_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
_DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"
_MET_SIZES = {"CHAR": 1, "UCHAR": 1, "SHORT": 2, "USHORT": 2, "INT": 4, "UINT": 4, "LONG": 4, "ULONG": 4,
              "LONG_LONG": 8, "ULONG_LONG": 8, "FLOAT": 4, "DOUBLE": 8}


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n:.0f} bytes"


def check_promise(name: str, shape: Sequence[int], itemsize: int, available: int, *, compressed: bool) -> None:
    """Refuse a header whose voxels cannot fit in the bytes that hold them.

    Parameters
    ----------
    name : str
        File name, for the message.
    shape : sequence of int
        Voxel counts per dimension (every component and volume included).
    itemsize : int
        Bytes per value.
    available : int
        Bytes that hold the voxels (file size less the header).
    compressed : bool
        The bytes are deflate-compressed (gzip, zlib): they may decode to :data:`MAX_DEFLATE_RATIO` times as much.

    Raises
    ------
    InputError
        A negative size, more than :data:`MAX_VOXEL_BYTES`, or more than the file can hold.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InputError(f"{name}: the header gives a negative image size {tuple(dims)}")
    promised = math.prod(dims) * max(int(itemsize), 1)
    if promised > MAX_VOXEL_BYTES:
        raise InputError(f"{name}: the header promises {_gib(promised)} of voxels {tuple(dims)}; the limit is "
                         f"{_gib(MAX_VOXEL_BYTES)} (a damaged or hostile header?)")
    bound = max(available, 0) * MAX_DEFLATE_RATIO + _SLACK if compressed else max(available, 0)
    if promised > bound:
        raise InputError(f"{name}: the header promises {_gib(promised)} of voxels {tuple(dims)} but the file holds "
                         f"only {_gib(max(available, 0))}{' compressed' if compressed else ''} (truncated, or a "
                         "damaged header)")


def check_nifti_promise(path: Path, header: object) -> None:
    """Check a NIfTI header (as nibabel read it, before the data) against the file's size."""
    shape = header.get_data_shape()  # type: ignore[attr-defined]
    itemsize = header.get_data_dtype().itemsize  # type: ignore[attr-defined]
    offset = int(header.get_data_offset())  # type: ignore[attr-defined]
    size = path.stat().st_size
    gz = path.name.lower().endswith(".gz")
    check_promise(path.name, shape, itemsize, size if gz else size - offset, compressed=gz)


def _metaimage_header(path: Path) -> tuple[dict[str, str], list[str], int]:
    """MetaImage fields (keys upper-cased), the lines after ``ElementDataFile`` and the header's length in bytes."""
    with path.open("rb") as fh:
        head = fh.read(MAX_TEXT_BYTES)
    fields: dict[str, str] = {}
    pos = 0
    lines = head.split(b"\n")
    for n, raw in enumerate(lines):
        pos += len(raw) + 1
        key, sep, value = raw.decode("latin-1").partition("=")
        if not sep:
            continue
        fields[key.strip().upper()] = value.strip()
        if key.strip().upper() == "ELEMENTDATAFILE":
            rest = [x.decode("latin-1").strip() for x in lines[n + 1:]]
            return fields, rest, pos
    raise InputError(f"{path.name}: not a MetaImage header (no ElementDataFile line in its first "
                     f"{MAX_TEXT_BYTES // 1024} KiB)")


def _data_files(path: Path, value: str, rest: list[str]) -> list[Path]:
    """The data files a MetaImage header names (one file, a ``LIST`` or a ``name%03d.raw first last step``)."""
    folder = path.parent
    words = value.split()
    if words and words[0].upper() == "LIST":
        names = [x for x in rest if x][:MAX_DATA_FILES + 1]
    elif len(words) >= 3 and "%" in words[0]:
        try:
            first, last = int(words[1]), int(words[2])
            step = int(words[3]) if len(words) > 3 else 1
            indices = range(first, last + (1 if step > 0 else -1), step)
            if len(indices) > MAX_DATA_FILES:
                raise ValueError
            names = [words[0] % i for i in indices]
        except (ValueError, TypeError, ZeroDivisionError):
            raise InputError(f"{path.name}: ElementDataFile pattern {value!r} is not usable") from None
    else:
        names = [value]
    if not names or len(names) > MAX_DATA_FILES:
        raise InputError(f"{path.name}: ElementDataFile lists {'no' if not names else 'too many'} data files")
    return [folder / n for n in names]


def check_metaimage(path: Path) -> None:
    """Check a MetaImage (``.mha``/``.mhd``) before ITK reads it: its data files are regular files of sane size and
    hold the voxels its header promises.

    Raises
    ------
    InputError
        A FIFO, device, socket or missing file behind ``ElementDataFile``, or a header promising more voxels than
        the data can hold.
    """
    fields, rest, header_bytes = _metaimage_header(path)
    value = fields.get("ELEMENTDATAFILE", "")
    compressed = fields.get("COMPRESSEDDATA", "false").lower() == "true"
    if value.upper() == "LOCAL":
        available = path.stat().st_size - header_bytes
    else:
        files = [check_input_path(p, f"{path.name}: data file")
                 for p in _data_files(path, value, rest)]
        available = sum(p.stat().st_size for p in files)
    try:
        dims = [int(x) for x in fields.get("DIMSIZE", "").split()]
        channels = int(fields.get("ELEMENTNUMBEROFCHANNELS", "1"))
    except ValueError:
        raise InputError(f"{path.name}: DimSize or ElementNumberOfChannels is not a list of integers") from None
    etype = re.sub(r"^MET_|_ARRAY$", "", fields.get("ELEMENTTYPE", "").upper())
    check_promise(path.name, [*dims, channels], _MET_SIZES.get(etype, 1), available, compressed=compressed)


def _tag(reader: object, key: str, default: str) -> str:
    has = reader.HasMetaDataKey(key)  # type: ignore[attr-defined]
    return str(reader.GetMetaData(key)).strip(" \0") if has else default  # type: ignore[attr-defined]


def check_dicom_promise(files: Sequence[str]) -> None:
    """Check each DICOM image's Rows x Columns x frames against its file before the series is decoded.

    Uncompressed transfer syntaxes must hold every promised byte; deflated ones at most
    :data:`MAX_DEFLATE_RATIO` times the file; the whole series never more than :data:`MAX_VOXEL_BYTES`.

    Raises
    ------
    InputError
        An image promising more pixels than its file holds, or a series over the limit.
    """
    import SimpleITK as sitk

    from infarctsam.io.capture import captured_stderr

    total = 0
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(name))
        with captured_stderr():
            try:
                reader.ReadImageInformation()
            except RuntimeError:
                continue  # the series reader reports unreadable files in one line
        try:
            dims = [int(_tag(reader, k, d) or d) for k, d in (("0028|0010", "1"), ("0028|0011", "1"),
                                                               ("0028|0008", "1"), ("0028|0002", "1"))]
            bits = int(_tag(reader, "0028|0100", "8") or 8)
        except ValueError:
            raise InputError(f"{Path(name).name}: Rows, Columns, NumberOfFrames or BitsAllocated is not a number"
                             ) from None
        syntax = _tag(reader, "0002|0010", "1.2.840.10008.1.2")
        size = Path(name).stat().st_size
        if syntax in _RAW_SYNTAXES or syntax == _DEFLATED_SYNTAX:
            check_promise(Path(name).name, dims, max(bits // 8, 1), size, compressed=syntax == _DEFLATED_SYNTAX)
        total += math.prod(max(d, 0) for d in dims) * max(bits // 8, 1)
        if total > MAX_VOXEL_BYTES:
            raise InputError(f"{Path(name).parent.name}: the DICOM series promises more than "
                             f"{_gib(MAX_VOXEL_BYTES)} of pixels (a damaged or hostile header?)")
