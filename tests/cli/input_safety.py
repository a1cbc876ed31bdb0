"""Helpers of the input-safety tests: a digest of every file under a folder, to prove inputs are never modified."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path


def _sha256(path: Path, whole_up_to: int = 1 << 30) -> str:
    """sha256 of a file; a file over ``whole_up_to`` (the corpus's sparse 17 GiB file) by its size, modification
    time and first and last MiB, so the test does not read gigabytes of zeros."""
    size = path.stat().st_size
    if size <= whole_up_to:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256(f"{size}:{path.stat().st_mtime_ns}".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        fh.seek(size - (1 << 20))
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` (links and special files by their kind and target)."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[rel] = f"link -> {p.readlink()}"
        elif stat.S_ISREG(mode):
            out[rel] = _sha256(p)
        elif not stat.S_ISDIR(mode):
            out[rel] = "special"
    return out
