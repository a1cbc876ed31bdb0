"""User-facing error types.

Every error the user can cause (bad input, missing weights, unwritable output) is raised as a subclass of
:class:`InfarctsamError` whose message is one line. The CLI prints that line to stderr and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations


class InfarctsamError(Exception):
    """Base class of every error caused by the user's input, files or configuration."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(InfarctsamError):
    """An input image, mask, table or folder cannot be used."""


class WeightsError(InfarctsamError):
    """Model weights are missing, corrupt, mis-shaped or fail their checksum."""


class OutputError(InfarctsamError):
    """An output cannot be written (folder not writable, would escape the output folder, ...)."""


class ConfigError(InfarctsamError):
    """A configuration file or option is invalid."""
