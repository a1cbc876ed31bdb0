"""Atomic file writing: write under a temporary name in the target folder, then rename.

A reader (or a crashed run) never sees a half-written output: either the old file or the complete new one exists.
Temporary names carry the writer's process id (``.NAME.PID.<random>.tmpSUFFIX``), so that a rerun can remove what a
killed writer left (:func:`remove_stale_temps`) without touching the files of a writer that is still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from infarctsam.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary name keeps the final suffix (``.nii.gz``, ``.png``, ...) so writers that look at the extension
    choose the right format.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as exc:
        raise OutputError(f"output folder {folder} is not writable: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:  # from here on an interruption (Ctrl-C, SIGTERM) removes the temporary file
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual permissions
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temps(paths: Iterable[str | Path], max_age_s: float = 3600.0) -> list[Path]:
    """Remove the temporary files a killed writer left beside ``paths``; return what was removed.

    A temporary file is stale when the process named in it no longer runs on this machine, or when it is older
    than ``max_age_s`` (a writer on another machine of a cluster). Files of this process are kept.
    """
    removed: list[Path] = []
    now = time.time()
    for target in paths:
        target = Path(target)
        prefix = f".{target.name}."
        try:
            entries = list(target.parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix) or ".tmp" not in name[len(prefix):]:
                continue
            pid_text = name[len(prefix):].split(".", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else None
            if pid == os.getpid():
                continue
            try:
                old = now - entry.lstat().st_mtime > max_age_s
            except OSError:
                continue
            if old or pid is None or not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
