"""Capturing what third-party libraries print, so the user sees one line of ours instead.

ITK, GDCM and MetaIO write warnings and errors straight to the process's stderr (file descriptor 2), bypassing
Python. :func:`captured_stderr` points descriptor 2 at a temporary file while a library call runs and hands the
text back; Python warnings (numpy overflow, ...) raised meanwhile are collected too. The caller turns the text into
its one-line error, or into a warning recorded in the case's JSON when the read succeeds.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

_LOCK = threading.Lock()  # descriptor 2 is shared by every thread of the process
_NOISE = re.compile(r"^(WARNING|ERROR|Warning|Error): In .*, line \d+$|^\s*$")
_ADDRESS = re.compile(r"\s*\(0x[0-9a-fA-F]+\)")


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Run the body with stderr (descriptor 2) and Python warnings captured; yield the list the lines go into.

    The list is filled when the body ends (also when it raises): one entry per meaningful line, without ITK's
    "ERROR: In file, line N" location lines and object addresses.
    """
    lines: list[str] = []
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing to capture
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield lines
                finally:
                    lines.extend(_clean(str(w.message)) for w in caught)
            return
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read(1 << 20).decode("utf-8", errors="replace")
                lines.extend(_clean(x) for x in text.splitlines() if not _NOISE.match(x))
                lines.extend(_clean(str(w.message)) for w in caught)
                lines[:] = [x for x in dict.fromkeys(lines) if x]


def _clean(line: str) -> str:
    from infarctsam.io.text import plain_line

    return plain_line(_ADDRESS.sub("", line), limit=1000)


def summary(lines: list[str], limit: int = 200) -> str:
    """The captured lines as one short line (empty when nothing was captured)."""
    text = "; ".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."
