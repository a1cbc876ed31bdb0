"""Inputs that must belong together: an ADC from another patient or shifted against the DWI is refused (one line
naming the ADC and the figure), the own ADC on another grid is accepted; a reference mask must mark DWI-bright
tissue."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.api import segment
from infarctsam.cli import app
from infarctsam.errors import InputError
from infarctsam.io.dwi import load_adc, load_dwi, resample_to_grid
from infarctsam.preprocess import preprocess
from infarctsam.preprocess.consistency import MAX_ADC_CORRELATION, adc_agreement, reference_warning

from synthetic_cases import EXAMPLE_STEM, oblique_affine, save_nifti

SHAPE, SPACING = (40, 44, 16), (3.0, 2.5, 6.0)
AFFINE = oblique_affine(spacing=SPACING, angle_deg=10.0, flip=(True, False, True), origin=(60, -55, 45))


def textured_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 'patient': ellipsoid brain with its own pattern of CSF spaces (dark on DWI, bright on ADC) and a lesion
    (bright on DWI, dark on ADC); another seed is another patient."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    idx = np.indices(SHAPE).astype(float)
    c = [(s - 1) / 2 for s in SHAPE]
    brain = sum(((idx[i] - c[i]) / (0.42 * SHAPE[i])) ** 2 for i in range(3)) <= 1.0
    field = ndi.gaussian_filter(rng.normal(size=SHAPE), sigma=(2.0, 2.0, 1.0))
    csf = brain & (field > np.quantile(field[brain], 0.8))
    lesion = brain & ~csf & (sum(((idx[i] - c[i] - off) / r) ** 2
                                 for i, off, r in zip(range(3), (8, -4, 1), (4, 4, 2), strict=True)) <= 1)
    dwi = np.where(brain, 100.0, 0.0) + np.where(csf, -65.0, 0.0) + np.where(lesion, 110.0, 0.0)
    adc = np.where(brain, 800.0, 0.0) + np.where(csf, 2200.0, 0.0) + np.where(lesion, -350.0, 0.0)
    dwi = np.where(brain, np.abs(dwi + rng.normal(0, 4.0, SHAPE)), 0.0)
    adc = np.where(brain, np.abs(adc + rng.normal(0, 40.0, SHAPE)), 0.0)
    return dwi.astype(np.float32), adc.astype(np.float32), lesion


def grid_around(affine: np.ndarray, shape: tuple[int, ...], new_shape: tuple[int, int, int],
                spacing: tuple[float, float, float], angle_deg: float, flip: tuple[bool, bool, bool]) -> np.ndarray:
    """Another voxel grid (spacing, orientation) centred on the centre of the grid ``affine``/``shape``."""
    centre = affine[:3, :3] @ ((np.asarray(shape[:3]) - 1) / 2) + affine[:3, 3]
    grid = oblique_affine(spacing=spacing, angle_deg=angle_deg, flip=flip, origin=(0, 0, 0))
    grid[:3, 3] = centre - grid[:3, :3] @ ((np.asarray(new_shape) - 1) / 2)
    return grid


def shifted(affine: np.ndarray, mm: float) -> np.ndarray:
    out = affine.copy()
    out[0, 3] += mm
    return out


@pytest.fixture
def case_files(tmp_path):
    dwi, adc, lesion = textured_case(1)
    _, other_adc, _ = textured_case(2)
    folder = tmp_path / "in"
    folder.mkdir()
    # the own ADC on another grid: 2 x 2 x 4 mm, another orientation and origin, resampled from the DWI's
    fine_shape = (72, 72, 30)
    grid = grid_around(AFFINE, SHAPE, fine_shape, (2.0, 2.0, 4.0), -5.0, (False, True, False))
    moved, _ = resample_to_grid(adc, AFFINE, fine_shape, grid)
    return {
        "dwi": save_nifti(folder / "p1_dwi.nii.gz", dwi, AFFINE),
        "adc": save_nifti(folder / "p1_adc.nii.gz", adc, AFFINE),
        "regridded": save_nifti(folder / "p1_adc_regridded.nii.gz", moved.astype(np.float32), grid),
        "shifted": save_nifti(folder / "p1_adc_shifted.nii.gz", adc, shifted(AFFINE, 20.0)),
        "other": save_nifti(folder / "p2_adc.nii.gz", other_adc, AFFINE),
        "mask": save_nifti(folder / "p1_msk.nii.gz", lesion.astype(np.uint8), AFFINE),
        "mirrored_mask": save_nifti(folder / "p1_msk_flipped.nii.gz", lesion[::-1].astype(np.uint8), AFFINE),
    }


def _agreement(files, which):
    dwi, _ = load_dwi(files["dwi"])
    pre = preprocess(dwi, load_adc(files[which], dwi))
    return adc_agreement(pre.dwi, pre.adc, pre.brain, pre.spacing)


@pytest.mark.parametrize("which,matches", [("adc", True), ("regridded", True), ("shifted", False),
                                           ("other", False)])
def test_adc_agreement_tells_own_from_foreign(case_files, which, matches):
    agreement = _agreement(case_files, which)
    assert agreement.correlation is not None and agreement.matches is matches, agreement
    assert (agreement.correlation < MAX_ADC_CORRELATION - 0.1) if matches else (agreement.correlation > -0.2)


@pytest.mark.parametrize("which", ["shifted", "other"])
def test_mismatched_adc_is_refused_in_one_line_naming_the_adc(case_files, tmp_path, which):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["segment", str(case_files["dwi"]), "--adc", str(case_files[which]), "-o",
                                   str(out), "--engine", "threshold", "--no-qc"])
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --adc {case_files[which].name}: "), res.stderr
    assert "correlation" in lines[0] and "--allow-mismatched-adc" in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_own_adc_on_another_grid_is_accepted_and_its_figure_recorded(case_files, tmp_path):
    result = segment(case_files["dwi"], tmp_path / "out", adc=case_files["regridded"], engine="threshold", qc=False)
    record = result.summary["inputs"]["adc"]
    assert record["resampled_to_dwi"] is True and record["adc_dwi_correlation"] < MAX_ADC_CORRELATION
    assert not any("ADC" in w for w in result.summary["warnings"])


def test_allowed_mismatch_is_a_warning_and_strict_fails_on_it(case_files, tmp_path):
    args = ["segment", str(case_files["dwi"]), "--adc", str(case_files["other"]), "--engine", "threshold",
            "--no-qc", "--allow-mismatched-adc"]
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    summary = json.loads(next((tmp_path / "a").glob("*.json")).read_text(encoding="utf-8"))
    assert any("does not match the DWI's anatomy" in w for w in summary["warnings"])
    n = len(summary["warnings"])
    assert f"{n} warning{'s' if n > 1 else ''} (see the JSON)" in res.stdout.splitlines()[-1]
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b"), "--strict", "-q"])
    assert res.exit_code == 3 and res.stderr.splitlines() == [f"error: --strict: the result carries {n} warning"
                                                              f"{'s' if n > 1 else ''} (outputs written)"]
    assert len(res.stdout.splitlines()) == 1 and (tmp_path / "b").is_dir()


def test_with_api_a_mismatch_raises_input_error(case_files, tmp_path):
    with pytest.raises(InputError, match="p1_adc_shifted.nii.gz: the ADC does not match"):
        segment(case_files["dwi"], tmp_path / "out", adc=case_files["shifted"], engine="threshold", qc=False)


def test_reference_mask_must_mark_bright_dwi(case_files):
    dwi, _ = load_dwi(case_files["dwi"])
    pre = preprocess(dwi)
    own = nib.load(case_files["mask"]).get_fdata() > 0
    assert reference_warning(pre.dwi, pre.brain, pre.reorient.to_canonical(own), "m.nii.gz") is None
    note = reference_warning(pre.dwi, pre.brain, pre.reorient.to_canonical(own[::-1]), "m.nii.gz")
    assert note is not None and note.startswith("m.nii.gz: ") and "drawn on another scan" in note


def _example_agreement(tmp_path, adc_path):
    dwi, _ = load_dwi(f"{EXAMPLE_STEM}_dwi.nii.gz")
    pre = preprocess(dwi, load_adc(adc_path, dwi))
    return adc_agreement(pre.dwi, pre.adc, pre.brain, pre.spacing)


def test_real_case_own_adc_regridded_passes_and_shifted_fails(tmp_path):
    img = nib.load(f"{EXAMPLE_STEM}_adc.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float32)
    moved = save_nifti(tmp_path / "adc_shifted.nii.gz", data, shifted(img.affine, 20.0))
    grid = grid_around(img.affine, data.shape, (80, 80, 50), (3.0, 3.0, 3.0), 8.0, (True, False, False))
    regridded, _ = resample_to_grid(data, img.affine, (80, 80, 50), grid)
    other_grid = save_nifti(tmp_path / "adc_3mm.nii.gz", regridded.astype(np.float32), grid)
    assert _example_agreement(tmp_path, f"{EXAMPLE_STEM}_adc.nii.gz").matches
    assert _example_agreement(tmp_path, other_grid).matches
    assert not _example_agreement(tmp_path, moved).matches


def test_real_swapped_patient_fails(shared_dir, tmp_path):
    other = shared_dir / "data" / "unlabeled" / "jhu-ads-subject02" / "Subject02_ADC.nii.gz"
    if not other.is_file():
        pytest.skip("jhu-ads-subject02 is not in ../shared")
    agreement = _example_agreement(tmp_path, other)
    assert not agreement.matches and abs(agreement.correlation) < 0.15


@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_equal_scipy_rankdata_with_ties(seed):
    """The NumPy ranks of the ADC check equal scipy's average ranks (ties, negative values, one value)."""
    from scipy.stats import rankdata

    from infarctsam.preprocess.consistency import ranks

    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=500), 1)  # many ties
    np.testing.assert_array_equal(ranks(values), rankdata(values))
    np.testing.assert_array_equal(ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])
    assert ranks(np.array([5.0])).tolist() == [1.0] and ranks(np.zeros(0)).size == 0
