"""What the location stage loads once per process, loaded in a background thread while the network runs.

The registration template (built from nilearn's 1 mm MNI152 files: gzip decompression and block means, mostly
outside the GIL), the territory atlas and SimpleITK take 0.3-0.8 s the first time; :func:`start` (called by
:func:`~infarctsam.api.predict_case` when the case's location will be reported) begins loading them as the engine
starts, and :func:`wait` (called by :func:`~infarctsam.location.case.case_location` before it registers)
joins the thread, so the first case of a process no longer waits for them in its location stage. Later cases find
them cached. A failure in the thread is not reported there: the location stage loads again and reports it.
"""

from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _load() -> None:
    with contextlib.suppress(Exception):  # reported by the location stage, which loads them again
        import SimpleITK  # noqa: F401

        from infarctsam.location.atlas import load_atlas
        from infarctsam.location.template import registration_template

        registration_template()
        load_atlas()


def start() -> None:
    """Start loading the template and atlas in a background thread (once per process; a no-op afterwards)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_load, name="infarctsam-location-prefetch", daemon=True)
            _thread.start()


def wait() -> None:
    """Wait for :func:`start`'s thread, if one was started."""
    thread = _thread
    if thread is not None:
        thread.join()
