"""Shared CLI plumbing: one-line errors, no tracebacks for user errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer

from infarctsam.errors import InfarctsamError

T = TypeVar("T")


@dataclass
class _State:
    debug: bool = False


STATE = _State()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (one line) to stderr and return the Exit to raise."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call an API function, turning every error into one line on stderr and a non-zero exit.

    User errors (:class:`InfarctsamError`) exit with their ``exit_code`` (2). Unexpected errors exit with 1 and one
    line naming the exception; ``infarctsam --debug`` shows the traceback instead.
    """
    try:
        return fn(*args, **kwargs)
    except InfarctsamError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except MemoryError:
        raise fail("out of memory", 1) from None
    except Exception as exc:
        if STATE.debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise fail(f"unexpected {type(exc).__name__}: {text} (run with --debug for details)", 1) from None


def echo_err(message: str) -> None:
    """Print an informational line to stderr."""
    print(message, file=sys.stderr, flush=True)
