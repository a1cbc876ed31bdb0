"""Progress feedback on stderr: named stages with the elapsed time, and a bar for counted steps.

Shown only when stderr is a terminal and ``--quiet`` is not given, so logs and pipes stay clean. The object is the
``progress`` callback of the API functions: ``progress(stage, done, total)``, ``total`` 0 for a stage without steps.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR = 24


class StageProgress:
    """Print ``[  1.2 s] stage`` lines, and ``stage |#####    | 12/40`` bars redrawn in place.

    Parameters
    ----------
    enabled : bool
        Print anything at all.
    stream : file, optional
        Where to print (default: ``sys.stderr``).
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._open_bar = False

    @classmethod
    def for_terminal(cls, quiet: bool) -> StageProgress:
        """Enabled when stderr is a terminal and ``quiet`` is False."""
        isatty = getattr(sys.stderr, "isatty", None)
        return cls(enabled=not quiet and bool(isatty and isatty()))

    def elapsed(self) -> float:
        """Seconds since this object was made."""
        return time.perf_counter() - self.t0

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        """Report a stage (``total`` 0) or step ``done`` of ``total`` within it."""
        if not self.enabled:
            return
        head = f"[{self.elapsed():6.1f} s] {stage}"
        if total > 0:
            filled = round(_BAR * min(done, total) / total)
            self.stream.write(f"\r{head} |{'#' * filled}{' ' * (_BAR - filled)}| {done}/{total}")
            self._open_bar = done < total
            if not self._open_bar:
                self.stream.write("\n")
        else:
            if self._open_bar:
                self.stream.write("\n")
                self._open_bar = False
            self.stream.write(head + "\n")
        self.stream.flush()

    def finish(self, message: str = "done") -> None:
        """Close an open bar and print the final elapsed time."""
        self(message)
