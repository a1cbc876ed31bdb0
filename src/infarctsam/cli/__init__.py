"""The ``infarctsam`` command line: a thin layer over :mod:`infarctsam.api`.

Each command lives in its own module and imports heavy libraries only when it runs, so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from infarctsam._version import __version__
from infarctsam.cli import common

app = typer.Typer(
    name="infarctsam",
    help="Prompt-free follow-up infarct volume (FIV) on diffusion-weighted MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infarctsam {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for unexpected errors."),
) -> None:
    """Prompt-free follow-up infarct volume (FIV) on diffusion-weighted MRI."""
    import logging

    common.STATE.debug = debug
    # nibabel logs header repairs as warnings; our own checks report real problems in one line.
    logging.getLogger("nibabel").setLevel(logging.ERROR)


def _register() -> None:
    from infarctsam.cli import cache, evaluate, fusion, locate, review, segment, synth, train, weights

    for module in (segment, locate, evaluate, review, train, fusion, weights, synth, cache):
        module.register(app)


_register()


def main() -> None:
    """Console entry point."""
    import sys

    # Under a non-UTF-8 locale (LANG=C), print "?" for characters the terminal cannot show instead of failing.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
        app()
    except SystemExit as done:
        _finish(done.code)
    _finish(0)


def _finish(code: object) -> None:
    """End the process once the command is done: flush, then skip the interpreter's teardown (garbage-collecting
    the model, unloading OpenVINO and NumPy: about half a second after a case) when nothing else is running.

    Every output is written atomically and closed before the command returns, so there is nothing left to do; with a
    child process or another Python thread still alive the normal exit runs instead.
    """
    import logging
    import os
    import sys
    import threading

    status = code if isinstance(code, int) else (0 if code is None else 1)
    if not isinstance(code, int | type(None)):
        print(code, file=sys.stderr)  # what SystemExit("message") prints
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    children = sys.modules.get("multiprocessing")
    if threading.active_count() > 1 or (children is not None and children.active_children()):
        sys.exit(status)
    os._exit(status)
