"""Optional extras: a missing one stops with one line naming it."""

from __future__ import annotations

import importlib.util

import pytest

from infarctsam.errors import ConfigError
from infarctsam.extras import EXTRAS, require_extra


def test_installed_extras_pass():
    for extra, modules in EXTRAS.items():
        if all(importlib.util.find_spec(m) is not None for m in modules):
            require_extra(extra, "test")


def test_missing_extra_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name))
    with pytest.raises(ConfigError) as info:
        require_extra("train", "infarctsam train")
    message = str(info.value)
    assert "pip install 'infarctsam[train]'" in message and "tensorboard" in message and "\n" not in message


def test_pyproject_keeps_extras_out_of_the_core():
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"])
    assert "tensorboard" not in core and "dask" not in core
    assert project["optional-dependencies"]["train"] and project["optional-dependencies"]["dask"]


def test_core_commands_run_without_the_extras(tmp_path):
    import subprocess
    import sys

    from synthetic_cases import EXAMPLE_STEM

    code = (
        "import sys\n"
        "for name in ('dask', 'distributed', 'tensorboard'):\n"
        "    sys.modules[name] = None  # as if not installed: importing them raises ImportError\n"
        "from infarctsam.cli import main\n"
        f"sys.argv = ['infarctsam', 'segment', r'{EXAMPLE_STEM}_dwi.nii.gz', '--engine', 'threshold', '--no-qc',\n"
        f"            '-o', r'{tmp_path / 'out'}']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "mL" in proc.stdout and any((tmp_path / "out").glob("*_mask.nii.gz"))
