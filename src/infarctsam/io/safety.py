"""Input safety: regular files only, size limits, bounded text reads, and outputs that never land on an input.

A FIFO, a device (``/dev/zero``) or a socket given where a file is expected would block a reader forever or fill
memory; they are refused before anything opens them. Text inputs (b-values, sidecars, case lists) are read with a
size limit. :func:`check_not_inputs` refuses an output path that equals an input, one of its sidecars, or the same
file under another name (symbolic or hard link).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infarctsam.errors import InputError, OutputError

MAX_IMAGE_BYTES = 16 << 30  # one image file (a 4D DWI of 256x256x80x100 float32 is 2 GiB)
MAX_TEXT_BYTES = 1 << 20  # a .bval file or a JSON sidecar
MAX_LIST_BYTES = 64 << 20  # a case list
SIDECAR_SUFFIXES = (".json", ".bval", ".bvec")


def check_input_path(path: str | Path, what: str, *, folder_ok: bool = False,
                     max_bytes: int = MAX_IMAGE_BYTES) -> Path:
    """Make sure an input exists and is a regular file (or a folder, when ``folder_ok``) of a sane size.

    Parameters
    ----------
    path : str or Path
        The input.
    what : str
        What it is, for the message (``DWI``, ``ADC``, ``--bval``, ...).
    folder_ok : bool
        Accept a folder (a DICOM series).
    max_bytes : int
        Largest accepted file size.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        Missing, not a regular file (FIFO, device, socket), unreadable, or larger than ``max_bytes``.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except PermissionError:
        raise InputError(f"{what} {path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return path
        raise InputError(f"{what} {path}: expected a file, got a folder")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {path}: not a regular file (a FIFO, device or socket cannot be read as an input)")
    if st.st_size > max_bytes:
        raise InputError(f"{what} {path}: file too large ({st.st_size / 2**20:.0f} MiB; the limit is "
                         f"{max_bytes / 2**20:.0f} MiB)")
    return path


def read_text_limited(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a small UTF-8 text input, refusing non-regular files and files over ``max_bytes``."""
    path = check_input_path(path, what, max_bytes=max_bytes)
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{what} {path.name}: cannot be read ({exc.strerror or exc})") from exc
    if len(raw) > max_bytes:
        raise InputError(f"{what} {path.name}: file too large (the limit is {max_bytes // 1024} KiB)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path.name}: not UTF-8 text") from exc


def read_json_limited(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Parse a small JSON input; invalid, too large or too deeply nested JSON is one :class:`InputError`."""
    text = read_text_limited(path, what, max_bytes)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{what} {Path(path).name}: JSON nested too deeply") from None
    except ValueError as exc:
        raise InputError(f"{what} {Path(path).name}: not valid JSON ({exc})") from None


def companions(path: str | Path) -> list[Path]:
    """An input and the files read with it: its sidecars (``.json``, ``.bval``, ``.bvec``), a MetaImage's data
    file, or every file of a DICOM folder. Only existing paths are returned."""
    path = Path(path)
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    out = [path]
    lower = path.name.lower()
    cut = next((len(s) for s in (".nii.gz", ".nii", ".mha", ".mhd") if lower.endswith(s)), 0)
    stem = path.name[: len(path.name) - cut]
    out += [path.with_name(stem + s) for s in SIDECAR_SUFFIXES]
    if path.name.lower().endswith(".mhd"):
        out += [path.with_name(stem + s) for s in (".raw", ".zraw", ".raw.gz")]
    return [p for p in out if p.exists()]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class InputGuard:
    """The inputs of a run (and the files read with them), to check outputs against.

    Parameters
    ----------
    inputs : iterable of path or None
        Every input (``None`` entries are skipped); their companions (see :func:`companions`) are protected too.
    """

    def __init__(self, inputs: Iterable[str | Path | None]) -> None:
        self._paths: dict[Path, Path] = {}
        self._ids: dict[tuple[int, int], Path] = {}
        self._folders: list[Path] = []
        for item in inputs:
            if item is None:
                continue
            src = Path(item)
            if src.is_dir():
                self._folders.append(src.resolve())
            for p in companions(src):
                self._paths[p.resolve()] = src
                ident = _identity(p)
                if ident is not None:
                    self._ids[ident] = src

    def check(self, outputs: Iterable[Path]) -> None:
        """Refuse when an output path would replace an input, a file read with it (also through a symbolic or hard
        link), or lie inside an input folder (a DICOM series).

        Raises
        ------
        OutputError
            Naming the output and the input, before anything is written.
        """
        for out in outputs:
            real = Path(out).resolve()
            src = self._paths.get(real)
            ident = _identity(Path(out))
            if src is None and ident is not None:
                src = self._ids.get(ident)
            if src is not None:
                raise OutputError(f"output {out} would overwrite the input {src.name} (or a file read with it); "
                                  "choose another --output folder or --case-id")
            for folder in self._folders:
                if folder == real or folder in real.parents:
                    raise OutputError(f"output {out} would be written inside the input folder {folder}; choose "
                                      "another --output folder")


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[str | Path | None]) -> None:
    """Refuse outputs that would land on inputs (see :class:`InputGuard`)."""
    InputGuard(inputs).check(outputs)
