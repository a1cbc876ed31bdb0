"""``pip install`` for the Makefile: through uv where it is installed, else through pip; the same packages either way.

uv (https://docs.astral.sh/uv/) downloads and unpacks in parallel: the test environment (PyTorch, OpenVINO, the
extras) installs in about 20 s instead of about 3 minutes with pip on the 2-core development machine. uv does not read
pip's configuration, so it is given the sources pip is configured with (``pip config list``, including ``PIP_*``
variables): index, extra indexes, find-links, constraints, certificate and timeout, and pip's rule of taking the best
version across all indexes. Where uv is missing or fails, pip runs the same install.

Usage: ``python tools/installer.py PIP-INSTALL-ARGUMENTS`` (e.g. ``-e '.[dicom]'``, ``--no-deps NAME==VERSION``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

# pip options given to uv, by pip's configuration key (their values: one, or a whitespace-separated list)
LIST_OPTIONS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links"}
SINGLE_OPTIONS = {"index-url": "--index-url", "constraint": "--constraint"}


def parse_pip_config(text: str) -> dict[str, str]:
    """pip's effective settings from the output of ``pip config list`` (``section.key='value'`` lines).

    ``install.key`` overrides ``global.key`` and a ``PIP_*`` variable (``:env:.key``) overrides both, as in pip.
    """
    rank = {"global": 0, "install": 1, ":env:": 2}
    best: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        section, dot, key = name.strip().rpartition(".")
        if not sep or not dot or section not in rank:
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip()]
        value = words[0] if words else ""
        if key not in best or rank[section] >= best[key][0]:
            best[key] = (rank[section], value)
    return {key: value for key, (_, value) in best.items()}


def uv_sources(settings: dict[str, str], arguments: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """uv options and environment variables that give uv pip's sources; an option the caller passes itself (e.g.
    ``--index-url``) is not added again."""
    options: list[str] = ["--index-strategy", "unsafe-best-match"]  # pip: the best version from any index
    for key, flag in SINGLE_OPTIONS.items():
        if key in settings and flag not in arguments:
            options += [flag, settings[key]]
    for key, flag in LIST_OPTIONS.items():
        for value in settings.get(key, "").split():
            options += [flag, value]
    env: dict[str, str] = {}
    if "cert" in settings:
        env["SSL_CERT_FILE"] = settings["cert"]
    if "default-timeout" in settings:
        env["UV_HTTP_TIMEOUT"] = settings["default-timeout"]
    return options, env


def uv_available() -> bool:
    """True when ``python -m uv`` runs in this interpreter's environment."""
    try:
        done = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def pip_settings() -> dict[str, str]:
    """pip's effective configuration in this interpreter (empty when pip cannot say)."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    return parse_pip_config(done.stdout) if done.returncode == 0 else {}


def install(arguments: Sequence[str], quiet: bool = False, use_uv: bool | None = None) -> int:
    """Run ``pip install -q ARGUMENTS`` in this interpreter's environment, through uv when it is there.

    Parameters
    ----------
    arguments : sequence of str
        pip install arguments.
    quiet : bool
        Show the installer's messages only when it fails.
    use_uv : bool, optional
        Force (True) or forbid (False) uv; default: uv when it is installed.

    Returns
    -------
    int
        The exit status of the install (pip's, when uv was tried and failed).
    """
    if use_uv is None:
        use_uv = uv_available()
    if use_uv:
        options, env = uv_sources(pip_settings(), arguments)
        # --compile-bytecode: the .pyc files pip writes too; without them every process compiles the modules it
        # imports again where PYTHONDONTWRITEBYTECODE is set (containers, CI): about 2 s of each segmentation
        command = [sys.executable, "-m", "uv", "pip", "install", "-q", "--compile-bytecode", "--python",
                   sys.executable, *options, *arguments]
        status = _run(command, {**os.environ, **env}, quiet)
        if status == 0:
            return 0
        print(f"uv could not install {' '.join(arguments)} (exit {status}); trying pip", file=sys.stderr)
    return _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *arguments],
                dict(os.environ), quiet)


def planned_packages(requirement: str, use_uv: bool | None = None) -> list[str] | None:
    """Names (lower case) of the packages that installing ``requirement`` into an empty environment would bring, from
    the configured sources (a dry run); None when the dry run fails."""
    import json
    import tempfile
    from pathlib import Path

    if use_uv is None:
        use_uv = uv_available()
    if use_uv:
        options, env = uv_sources(pip_settings(), [requirement])
        done = subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--dry-run", "--reinstall", "--python",
                               sys.executable, *options, requirement], capture_output=True, text=True,
                              env={**os.environ, **env})
        if done.returncode == 0:
            lines = (done.stdout + done.stderr).splitlines()
            return [line[3:].split("==")[0].strip().lower() for line in lines if line.startswith(" + ")]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "plan.json"
        if _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--dry-run",
                 "--ignore-installed", "--report", str(report), requirement], dict(os.environ), True) != 0:
            return None
        plan = json.loads(report.read_text(encoding="utf-8"))
    return [item["metadata"]["name"].lower() for item in plan.get("install", [])]


def _run(command: list[str], env: dict[str, str], quiet: bool) -> int:
    if not quiet:
        return subprocess.call(command, env=env)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print("\n".join((done.stdout + done.stderr).splitlines()[-15:]), file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(install(sys.argv[1:]))
