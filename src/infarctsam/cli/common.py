"""Shared CLI plumbing: one-line errors, no tracebacks for user errors, SIGTERM/SIGHUP handled like Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand

from infarctsam.errors import InfarctsamError

T = TypeVar("T")


@dataclass
class _State:
    debug: bool = False


STATE = _State()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (one line) to stderr and return the Exit to raise."""
    from infarctsam.io.text import plain_line

    typer.echo(f"error: {plain_line(message, limit=2000)}", err=True)
    return typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives, so it unwinds exactly like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_HANDLED = ("SIGTERM", "SIGHUP")


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGHUP (SLURM, Docker, ``timeout``, a closed terminal) raise
    :class:`Terminated`; the first signal (these or SIGINT) starts the clean-up and later ones are ignored so the
    clean-up (temporary files removed, a batch's ``run_end`` record written) is not cut short."""
    state = {"fired": False}

    def handler(signum: int, frame: Any) -> None:
        if state["fired"]:
            return
        state["fired"] = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous: dict[int, Any] = {}
    for name in (*_HANDLED, "SIGINT"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            if name == "SIGINT" and signal.getsignal(signum) is not signal.default_int_handler:
                continue  # SIGINT ignored or handled by someone else: leave it
            previous[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):  # not the main thread
            continue
    try:
        yield
    finally:
        for signum, old in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, old)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call an API function, turning every error into one line on stderr and a non-zero exit.

    User errors (:class:`InfarctsamError`) exit with their ``exit_code`` (2). Ctrl-C, SIGTERM and SIGHUP exit with
    128 + the signal number after the clean-up. Unexpected errors exit with 1 and one line naming the exception;
    ``infarctsam --debug`` shows the traceback instead. Python warnings raised by libraries are not printed (our
    own checks report real problems in one line); ``--debug`` shows them.
    """
    try:
        with signals_as_interrupt(), warnings.catch_warnings():
            if not STATE.debug:
                warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except InfarctsamError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except Terminated as exc:
        raise fail(f"interrupted ({signal.Signals(exc.signum).name})", 128 + exc.signum) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except MemoryError:
        raise fail("out of memory", 1) from None
    except RecursionError:
        raise fail("an input file is nested too deeply to be read", 2) from None
    except Exception as exc:
        if STATE.debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise fail(f"unexpected {type(exc).__name__}: {text} (run with --debug for details)", 1) from None


def naming_options(fn: Callable[..., T], options: dict[str, Any], argument: Any = None) -> Callable[..., T]:
    """``fn`` whose one-line user errors about a file given by an option start with that option, e.g.
    ``--adc README.md: unsupported image format`` (left as they are when the argument has the same file name)."""
    from pathlib import Path

    def named(message: str) -> str:
        taken = {Path(str(argument)).name} if argument is not None else set()
        for option, value in options.items():
            if value is None or message.startswith("--"):
                continue
            name = Path(str(value)).name
            if name in taken:
                continue
            if message.startswith(f"{name}:"):
                return f"{option} {message}"
            if str(value) in message:
                return f"{option}: {message}"
        return message

    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except InfarctsamError as exc:
            text = named(str(exc))
            if text == str(exc):
                raise
            renamed = type(exc).__new__(type(exc))
            InfarctsamError.__init__(renamed, text)
            raise renamed from None

    return wrapped


def echo_err(message: str) -> None:
    """Print an informational line to stderr."""
    print(message, file=sys.stderr, flush=True)


class PlainCommand(TyperCommand):
    """A command whose help names arguments in plain words (``DWI``), without type tags such as ``<path>``."""

    @staticmethod
    def _argument_name(param: Any) -> str:
        return str(param.metavar or param.name).upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] DWI``: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = self._argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The Arguments and Options sections."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((self._argument_name(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
