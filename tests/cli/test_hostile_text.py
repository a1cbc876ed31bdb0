"""Hostile text by class (issue 18): names and strings built from file names or DICOM tags (patient name, series
description) never reach a path, a terminal or a drawing unescaped. Each class is checked where such text can go:
case identifiers and output paths, one-line errors and warnings, batch records, the QC picture."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.api import output_plan
from infarctsam.cli import app
from infarctsam.errors import InputError
from infarctsam.io.dataset import case_id_from_path, safe_id
from infarctsam.io.text import plain_line

from synthetic_cases import head_phantom, save_nifti

HOSTILE = [
    "../../etc/passwd", "a/b/c", "..", ".", "-rf", "x\0y", "line1\nline2", "sub-01\r\nerror: injected",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "A" * 5000, "\u202egnp.exe", "\u200b\ufeff",
    "\x1b[2J\x1b[31mred", "$x^{", "%2e%2e%2fup", "Müller^Jürgen", "脑卒中", "..\\..\\windows", "  ", "~root",
]
SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # an identifier and a suffix such as _mask.nii.gz


@pytest.mark.parametrize("text", HOSTILE)
def test_identifiers_and_output_paths_stay_safe(tmp_path, text):
    out = tmp_path / "out"
    ids = []
    try:
        ids.append(safe_id(text))
    except InputError as exc:
        assert "\n" not in str(exc) and "\0" not in str(exc)
    for name in (f"{text}_dwi.nii.gz", f"{text}.nii.gz"):
        dwi = tmp_path / "in" / name.replace("\0", "_")
        ids.append(case_id_from_path(dwi))
        case, paths = output_plan(dwi, out)
        for p in paths.all():
            assert p.resolve().parent == out.resolve(), p  # one file directly in the output folder
    for case in ids:
        assert SAFE.fullmatch(case) and ".." not in case, case


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_line_is_one_printable_line(text):
    line = plain_line(text + " tail", limit=200)
    assert len(line) <= 200 and line.isprintable() and "\n" not in line
    assert not any(ch in line for ch in ("\0", "\x1b", "\u202e", "\u200b", "\r"))


def test_case_id_option_with_hostile_text_writes_only_safe_names(tmp_path):
    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    (tmp_path / "in").mkdir()
    path = save_nifti(tmp_path / "in" / "case_dwi.nii.gz", dwi, np.diag([3.0, 3.0, 6.0, 1.0]))
    for n, text in enumerate(["../../evil<script>\n", "\u202egnp.exe", "A" * 5000]):
        out = tmp_path / f"out{n}"
        res = CliRunner().invoke(app, ["segment", str(path), "--engine", "threshold", "--case-id", text, "-o",
                                       str(out), "--no-qc"])
        assert res.exit_code == 0, res.output
        names = [p.name for p in out.rglob("*")]
        assert len(names) == 2 and all(SAFE_FILE.fullmatch(x) for x in names), names
        assert all(line.isprintable() for line in res.stderr.splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out0", "out1", "out2"]  # nothing outside


def test_errors_and_batch_records_are_one_printable_line(capsys):
    from infarctsam.cli.common import fail
    from infarctsam.scale.worker import error_line

    hostile = "bad\x1b[2J name\nerror: forged line \u202efdp.exe"
    fail(f"{hostile} cannot be read")
    err = capsys.readouterr().err
    assert err.startswith("error: bad") and err.endswith("\n") and err[:-1].isprintable()  # one line
    assert "\x1b" not in err and "\u202e" not in err and "\\u202e" in err
    for exc in (InputError(hostile), ValueError(hostile)):
        line = error_line(exc)
        assert line.isprintable() and "forged line" in line


def test_qc_picture_draws_hostile_warnings_as_plain_text():
    from infarctsam.outputs.qc import render_montage

    dwi, _, _, les = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    png = render_montage(dwi, les > 0, (3.0, 3.0, 6.0), title="case", warnings=[
        "DWI reader: SeriesDescription $x^{$ and $\\frac$", "\x1b[31m<script>\nnext", "\u202e" + "W" * 3000])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
