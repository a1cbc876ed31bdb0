"""Helpers of the input-safety tests: a digest of every file under a folder, to prove inputs are never modified."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` (links and special files by their kind and target)."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[rel] = f"link -> {p.readlink()}"
        elif stat.S_ISREG(mode):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif not stat.S_ISDIR(mode):
            out[rel] = "special"
    return out
