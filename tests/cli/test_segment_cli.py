"""The ``infarctsam segment`` contract: outputs on the real sample case, one-line errors on every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from input_safety import tree_digest
from typer.testing import CliRunner

from infarctsam.cli import app

from bad_inputs import BAD_INPUTS
from synthetic_cases import EXAMPLE_STEM

runner = CliRunner()


def test_help_and_version_are_instant():
    for args in (["--help"], ["segment", "--help"], ["evaluate", "--help"], ["weights", "inspect", "--help"],
                 ["synth", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
        assert "Usage" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("infarctsam ")
    # --help must not import the heavy libraries
    code = ("import sys; from infarctsam.cli import app; "
            "assert not {'torch', 'matplotlib', 'dask', 'pandas'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_segment_real_sample_case(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", f"{EXAMPLE_STEM}_dwi.nii.gz", "--adc", f"{EXAMPLE_STEM}_adc.nii.gz",
                              "--engine", "threshold", "--reference", f"{EXAMPLE_STEM}_msk.nii.gz",
                              "--save-probability", "--no-location", "-o", str(out)])
    assert res.exit_code == 0, res.output
    masks = [p for p in out.iterdir() if "mask" in p.name and p.name.endswith(".nii.gz")]
    jsons = [p for p in out.iterdir() if p.suffix == ".json"]
    assert len(masks) == 1 and len(jsons) == 1
    summary = json.loads(jsons[0].read_text(encoding="utf-8"))
    src, got = nib.load(f"{EXAMPLE_STEM}_dwi.nii.gz"), nib.load(str(masks[0]))
    assert got.shape == src.shape and np.array_equal(got.affine, src.affine)
    assert got.header["qform_code"] == src.header["qform_code"] and got.header["sform_code"] == src.header["sform_code"]
    data = np.asanyarray(got.dataobj)
    assert got.get_data_dtype() == np.uint8 and set(np.unique(data)) <= {0, 1}
    assert summary["volume_ml"] == pytest.approx(data.sum() * summary["voxel_volume_ml"], rel=1e-3)
    assert summary["engine"] == "threshold" and summary["weights"] == "none"
    assert summary["inputs"]["dwi"]["b_value"] == 800 and len(summary["inputs"]["dwi"]["sha256"]) == 64
    assert summary["inputs"]["adc"]["unit_detected"] == "1e-3 mm2/s"
    assert 0.35 < summary["reference"]["dice"] <= 1
    assert (out / "sub-strokecase0009_ses-0001_qc.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "sub-strokecase0009_ses-0001_prob.nii.gz").exists()
    assert "mL" in res.stdout


def test_bids_derivative_naming(tmp_path):
    out = tmp_path / "deriv"
    res = runner.invoke(app, ["segment", f"{EXAMPLE_STEM}_dwi.nii.gz", "--engine", "threshold", "--bids",
                              "--no-qc", "--no-location", "-o", str(out)])
    assert res.exit_code == 0, res.output
    name = "sub-strokecase0009_ses-0001_space-orig_desc-infarct_mask.nii.gz"
    mask = out / "sub-strokecase0009" / "ses-0001" / "dwi" / name
    assert mask.exists() and mask.with_name(mask.name.replace(".nii.gz", ".json")).exists()
    assert json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))["DatasetType"] == "derivative"


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_no_output(tmp_path, kind):
    src = tmp_path / "in"
    src.mkdir()
    args = BAD_INPUTS[kind](src)
    before = tree_digest(src)
    out = tmp_path / "out"
    if "-o" not in args:
        args = [*args, "-o", str(out)]
    res = runner.invoke(app, ["segment", *args, "--engine", "threshold"])
    assert res.exit_code == 2, (kind, res.exit_code, res.output)
    err = res.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, (kind, err)
    assert "Traceback" not in res.output and "unexpected" not in err, (kind, err)
    assert not out.exists(), (kind, list(out.rglob("*")))  # not even an empty output folder
    assert tree_digest(src) == before, kind  # inputs untouched, nothing written beside them


def test_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "x_dwi.nii.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    proc = subprocess.run([sys.executable, "-m", "infarctsam", "segment", str(bad), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
