"""Help a reader can use: plain-word argument names, listed choices, one output option name, fast startup."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from infarctsam.cli import app

runner = CliRunner()
COMMANDS = (["segment"], ["evaluate"], ["train"], ["fit-fusion"], ["synth"], ["weights", "inspect"])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_types_in_plain_words(command):
    res = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    text = res.stdout
    # no type tags such as <bool>, <str>, <path>, <list[Path]>, <int range>, nor {dwi} in the usage line
    tags = re.findall(r"<([^>]*)>", text)
    assert all("|" in t for t in tags), tags  # only choice lists such as <auto|threshold|sam>
    assert "{" not in text
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: infarctsam") and usage == usage.rstrip()


def test_choices_and_output_option():
    seg = runner.invoke(app, ["segment", "--help"], terminal_width=100).stdout
    assert "<auto|threshold|sam>" in seg and "<cpu|cuda>" in seg and "-o, --output FOLDER" in seg
    assert "Usage: infarctsam segment [OPTIONS] DWI" in seg
    ev = runner.invoke(app, ["evaluate", "--help"], terminal_width=100).stdout
    assert "-o, --output FOLDER" in ev and "--outdir" not in ev and "<none|log|cbrt>" in ev
    assert "--output" in runner.invoke(app, ["train", "--help"]).stdout


def test_paragraphs_wrap_at_word_boundaries():
    text = runner.invoke(app, ["segment", "--help"], terminal_width=80).stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    description = text.split("\n\n")[1:3]  # the two paragraphs after the usage line
    for paragraph in description:
        lines = paragraph.splitlines()
        # re-flowed to the width: only a paragraph's last line may be short (no break in mid-sentence)
        assert all(len(line) > 45 for line in lines[:-1]), lines
    assert "the engine is loaded once, a failed case is recorded" in " ".join(" ".join(description).split())


def test_bad_choice_is_a_one_line_usage_error(tmp_path):
    res = runner.invoke(app, ["segment", str(tmp_path / "x.nii.gz"), "--engine", "fast", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "fast" in res.stderr and "auto" in res.stderr
    assert not (tmp_path / "o").exists()


def test_root_help_lists_short_command_descriptions():
    text = runner.invoke(app, ["--help"]).stdout
    for name in ("segment", "evaluate", "train", "synth", "weights"):
        assert re.search(rf"^  {name}\s+\S", text, re.M), name
    commands = text.split("Commands:")[1]
    assert "..." not in commands  # short descriptions are not cut


def test_help_starts_without_heavy_imports():
    code = ("import sys, io, contextlib; from infarctsam.cli import main; sys.argv = ['infarctsam', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = {'torch', 'numpy', 'scipy', 'matplotlib', 'pandas', 'nibabel', 'dask'} & set(sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
