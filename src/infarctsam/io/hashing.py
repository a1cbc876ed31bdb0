"""File hashing: the sha256 recorded for inputs and weights, so outputs say exactly what they came from."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Full hexadecimal sha256 of a file, or of the sorted files of a folder (a DICOM series).

    Parameters
    ----------
    path : str or Path
        A file, or a folder whose files (recursively, in sorted order) are hashed together with their relative
        names, so renaming or moving a slice changes the digest.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
