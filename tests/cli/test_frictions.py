"""Small frictions of a first user: -q prints only the result line, errors name their option, evaluate takes single
files (one case: no SD or ICC), the model's first-run export is announced."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.cli import app

from synthetic_cases import EXAMPLE_STEM

runner = CliRunner()
DWI = f"{EXAMPLE_STEM}_dwi.nii.gz"


def test_quiet_prints_only_the_result_line(tmp_path):
    res = runner.invoke(app, ["segment", DWI, "--adc", f"{EXAMPLE_STEM}_adc.nii.gz", "-o", str(tmp_path / "o"),
                              "--engine", "threshold", "--no-qc", "-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and len(res.stdout.splitlines()) == 1
    assert res.stdout.startswith("sub-strokecase0009_ses-0001: ") and " mL, " in res.stdout


@pytest.mark.parametrize("option", ["--adc", "--reference", "--bval"])
def test_a_bad_file_error_names_its_option(tmp_path, option):
    bad = tmp_path / "README.md"
    bad.write_text("not an image\n")
    res = runner.invoke(app, ["segment", DWI, option, str(bad), "-o", str(tmp_path / "o"), "--engine", "threshold"])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {option} README.md: ") and len(res.stderr.splitlines()) == 1


def test_evaluate_takes_single_files_and_says_what_one_case_cannot_give(tmp_path):
    from scipy import ndimage as ndi

    img = nib.load(f"{EXAMPLE_STEM}_msk.nii.gz")
    grown = ndi.binary_dilation(np.asarray(img.dataobj) > 0).astype(np.uint8)
    pred = tmp_path / "my_prediction.nii.gz"
    nib.save(nib.Nifti1Image(grown, img.affine), str(pred))
    res = runner.invoke(app, ["evaluate", "--gt", f"{EXAMPLE_STEM}_msk.nii.gz", "--pred", str(pred), "-o",
                              str(tmp_path / "report"), "--no-figures"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "evaluated 1 case"
    assert lines[1].startswith("my_prediction: Dice ") and "(SD and ICC(A,1) n/a: one case)" in lines[1]
    assert "nan" not in res.stdout.lower()


def test_first_run_export_is_detected_from_the_cache(tmp_path):
    pytest.importorskip("openvino", reason="the compiled parts need openvino")
    from infarctsam.engines import default_weights_path
    from infarctsam.engines.sam import export_pending
    from infarctsam.model.weights_format import load_weights_numpy, network_sha256
    from infarctsam.runtime.openvino_parts import GRAPHS_VERSION, PARTS, part_stem

    weights = default_weights_path()
    if weights is None:
        pytest.skip("no default model installed")
    cache = tmp_path / "cache"
    assert export_pending(None, cache) is True
    assert export_pending(None, cache, device="cuda") is False
    key = f"v{GRAPHS_VERSION}-{network_sha256(*load_weights_numpy(weights))[:24]}"  # the network, not its fusion head
    cache.mkdir()
    for name, batch in PARTS:
        (cache / f"{part_stem(name, batch)}-{key}.onnx").write_bytes(b"x")
    (cache / f"ov-constants-{key}.npz").write_bytes(b"x")
    assert export_pending(None, cache) is False
