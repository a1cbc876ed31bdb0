"""Verified cache entries: every file of the model cache carries the sha256 of its content, checked before use.

An entry ``NAME`` (an ONNX export, the memory constants, an OpenVINO compiled blob) is stored with a sidecar
``NAME.sha256`` holding the hex digest of its bytes. A reader uses the bytes it verified, never the file again, so an
entry damaged in a way that still parses, or replaced in a cache folder shared on a cluster, cannot change a result:
it is made again (and replaced, or kept in memory where the folder is read-only) with one warning line on stderr.

Writers that start at once on an empty folder (a SLURM array) do not step on each other: the content is linked into
place only when no entry exists yet (the first writer wins), then its sidecar is renamed beside it; a reader that
finds the content a moment before its sidecar waits for it briefly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SIDECAR = ".sha256"
LOCKS = "locks"  # subfolder of the cache holding the export locks (empty files, never listed as entries)
LOCK_WAIT_S = 900.0  # how long a process waits for another one exporting the same weights before exporting itself
SIDECAR_WAIT_S = 2.0  # how long a reader waits for the sidecar of content another process has just linked
_WARNED: set[str] = set()


def sidecar_path(path: Path) -> Path:
    """``NAME.sha256`` beside ``NAME``."""
    return path.with_name(path.name + SIDECAR)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def warn_once(path: Path, reason: str) -> None:
    """One line on stderr per damaged entry and process (the CLI hides Python warnings, this must be seen)."""
    key = str(path)
    if key in _WARNED:
        return
    _WARNED.add(key)
    print(f"warning: model cache entry {path} {reason}; it is made again (results are unchanged)",
          file=sys.stderr, flush=True)


def read_digest(path: Path, wait_s: float = 0.0) -> str | None:
    """The digest recorded for ``path`` (None when there is no readable sidecar, after waiting up to ``wait_s``)."""
    side = sidecar_path(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = side.read_text(encoding="ascii").strip()
            return text if len(text) == 64 else ""
        except (OSError, UnicodeDecodeError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def check_entry(path: Path, wait_s: float = 0.0) -> tuple[bytes | None, str]:
    """Read and verify an entry: ``(bytes, "ok")``, ``(None, "missing")`` or ``(None, reason)`` when damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    digest = read_digest(path, wait_s)
    if digest is None:
        return None, "has no sha256 sidecar"
    if digest != sha256_hex(data):
        return None, "does not match its sha256"
    return data, "ok"


def load_verified(path: Path | None) -> bytes | None:
    """The verified bytes of an entry, or None when it is missing or damaged (damage is reported once)."""
    if path is None:
        return None
    data, state = check_entry(path, SIDECAR_WAIT_S)
    if data is None and state != "missing":
        warn_once(path, state)
    return data


def store_entry(path: Path, data: bytes, replace: bool = False) -> bool:
    """Store ``data`` at ``path`` with its sidecar; True when the entry is in place (stored by us or by a writer
    that came first). ``replace`` removes a damaged entry first. A read-only folder returns False."""
    side = sidecar_path(path)
    tmp_data = tmp_side = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_data = _write_tmp(path, data)
        tmp_side = _write_tmp(side, (sha256_hex(data) + "\n").encode("ascii"))
        if replace:  # only once the new entry is written: a read-only folder keeps what it has
            side.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        try:
            os.link(tmp_data, path)  # never replaces: the first complete writer wins
        except FileExistsError:
            return True
        except OSError:  # a file system without hard links
            if path.exists():
                return True
            os.replace(tmp_data, path)
            tmp_data = None
        os.replace(tmp_side, side)
        tmp_side = None
        return True
    except OSError:  # read-only or full cache folder: the entry lives in memory only
        return False
    finally:
        for tmp in (tmp_data, tmp_side):
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _write_tmp(path: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(name, 0o644)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def cached_bytes(path: Path | None, produce: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The verified bytes of the entry at ``path``, produced (``produce()``) and stored when missing or damaged.

    Returns the bytes and whether the entry is in the cache (False: in memory only: no cache, or a read-only one).
    """
    if path is None:
        return produce(), False
    data, state = check_entry(path, SIDECAR_WAIT_S)
    if data is not None:
        return data, True
    if state != "missing":
        warn_once(path, state)
    data = produce()
    return data, store_entry(path, data, replace=state != "missing")


@contextlib.contextmanager
def export_lock(cache: Path | None, key: str, wait_s: float = LOCK_WAIT_S):
    """Hold the cache's export lock of ``key`` (``locks/KEY.lock``, an advisory ``flock``) while exporting.

    Processes that start at once on a cold cache (a SLURM array) then export a model once: the others wait, then read
    the first one's entries, instead of each exporting it (tens of seconds of CPU each). Where no lock can be taken (no
    or a read-only cache, no ``fcntl``) or the wait exceeds ``wait_s``, the caller goes on without it: the entries are
    written atomically either way, so a lock only saves work.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield False
        return
    handle = None
    if cache is not None:
        try:
            (cache / LOCKS).mkdir(parents=True, exist_ok=True)
            handle = open(cache / LOCKS / f"{key}.lock", "a+b")  # held for the whole block
        except OSError:
            handle = None
    locked = False
    try:
        deadline = time.monotonic() + wait_s
        while handle is not None and not locked:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        yield locked
    finally:
        if handle is not None:
            if locked:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
