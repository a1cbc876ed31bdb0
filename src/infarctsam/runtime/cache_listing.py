"""What the model cache holds (``infarctsam cache``): its entries with size, version, weights key and state, and the
pruning of entries no current process will use (older graph versions, OpenVINO's own cache of earlier releases,
damaged entries, orphan sidecars, temporary files of dead writers).

Only files named the way infarctsam names its entries are ever removed; anything else in the folder is listed as
``foreign`` and left alone.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from infarctsam.runtime.cache_entries import LOCKS, SIDECAR, check_entry

_PART = r"ov-(?:encoder|single|step)-b\d+"
_PATTERNS = (
    ("export", re.compile(rf"^{_PART}-v(?P<v>\d+)-(?P<key>[0-9a-f]+)\.onnx$")),
    ("constants", re.compile(r"^ov-constants-v(?P<v>\d+)-(?P<key>[0-9a-f]+)\.npz$")),
    ("blob", re.compile(rf"^openvino/{_PART}-v(?P<v>\d+)-(?P<key>[0-9a-f]+)-(?:f32|bf16)-(?P<tag>[0-9a-f]+)\.blob$")),
    ("encoder export", re.compile(r"^tinyvit(?:-pre-neck)?-(?P<key>[0-9a-f]+)\.onnx$")),
    ("legacy blob", re.compile(r"^openvino/(?:fp32|bf16|f32)/[^/]+$")),
)
STALE_TEMP_S = 3600.0


@dataclass
class CacheEntry:
    """One file of the cache.

    Attributes
    ----------
    path : Path
        The file.
    kind : str
        ``export``, ``constants``, ``blob``, ``encoder export``, ``legacy blob``, ``sidecar`` (orphan), ``temporary``
        or ``foreign`` (not infarctsam's).
    version : str
        Graph version (``v5``), ``-`` where the name carries none.
    weights : str
        Weights key in the name (``-`` where none).
    size : int
        Bytes (with the sidecar).
    state : str
        ``current``, ``old version``, ``other CPU`` (a blob compiled elsewhere: kept for a shared cache), ``damaged
        (...)``, ``orphan``, ``stale`` / ``in progress`` (temporary files) or ``foreign``.
    """

    path: Path
    kind: str
    version: str
    weights: str
    size: int
    state: str

    @property
    def prunable(self) -> bool:
        """True when ``--prune`` removes it."""
        return self.kind != "foreign" and self.state not in ("current", "other CPU", "in progress")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def list_entries(cache: Path, graphs_version: int, blob_tag: str | None = None) -> list[CacheEntry]:
    """Every file under ``cache``, classified and (for entries) verified against its sha256.

    Parameters
    ----------
    cache : Path
        The cache folder.
    graphs_version : int
        The current graph version (:data:`~infarctsam.runtime.openvino_parts.GRAPHS_VERSION`).
    blob_tag : str, optional
        This machine's blob tag; blobs of other tags are ``other CPU``.
    """
    if not cache.is_dir():
        return []
    files = sorted(p for p in cache.rglob("*") if p.is_file() or p.is_symlink())
    names = {p.relative_to(cache).as_posix() for p in files}
    out = []
    for path in files:
        rel = path.relative_to(cache).as_posix()
        out.append(_classify(path, rel, names, graphs_version, blob_tag))
    return [e for e in out if e is not None]


def _classify(path: Path, rel: str, names: set[str], graphs_version: int, blob_tag: str | None) -> CacheEntry | None:
    if rel.startswith(f"{LOCKS}/") and rel.endswith(".lock"):
        return None  # an export lock (cache_entries.export_lock), not an entry
    if path.name.startswith(".") and ".tmp" in path.name:
        try:
            age = time.time() - path.lstat().st_mtime
        except OSError:
            return None
        return CacheEntry(path, "temporary", "-", "-", _size(path), "stale" if age > STALE_TEMP_S else "in progress")
    if rel.endswith(SIDECAR):
        base = rel[: -len(SIDECAR)]
        if base in names and any(p.match(base) for _, p in _PATTERNS):
            return None  # listed with its entry
        known = any(p.match(base) for _, p in _PATTERNS)
        return CacheEntry(path, "sidecar" if known else "foreign", "-", "-", _size(path),
                          "orphan" if known else "foreign")
    for kind, pattern in _PATTERNS:
        match = pattern.match(rel)
        if match is None:
            continue
        groups = match.groupdict()
        version = f"v{groups['v']}" if groups.get("v") else "-"
        weights = groups.get("key") or "-"
        if kind == "legacy blob":
            return CacheEntry(path, kind, "-", "-", _size(path), "old version")
        size = _size(path) + _size(path.with_name(path.name + SIDECAR))
        if groups.get("v") and int(groups["v"]) != graphs_version:
            return CacheEntry(path, kind, version, weights, size, "old version")
        data, state = check_entry(path)
        if data is None:
            state = f"damaged ({state})"
        elif kind == "blob" and blob_tag is not None and groups.get("tag") != blob_tag:
            state = "other CPU"
        else:
            state = "current"
        return CacheEntry(path, kind, version, weights, size, state)
    return CacheEntry(path, "foreign", "-", "-", _size(path), "foreign")


def prune(cache: Path, entries: list[CacheEntry]) -> list[CacheEntry]:
    """Remove the prunable entries of ``cache`` (with their sidecars), and sub-folders left empty; return the
    entries removed."""
    removed = []
    for entry in entries:
        if not entry.prunable:
            continue
        with contextlib.suppress(OSError):
            entry.path.unlink()
            removed.append(entry)
            entry.path.with_name(entry.path.name + SIDECAR).unlink(missing_ok=True)
    for folder in sorted({e.path.parent for e in removed}, key=lambda p: len(p.parts), reverse=True):
        if folder == cache:
            continue
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty (OpenVINO's old per-precision folders)
    return removed
