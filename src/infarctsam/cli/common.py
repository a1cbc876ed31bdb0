"""Shared CLI plumbing: one-line errors, no tracebacks for user errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
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
