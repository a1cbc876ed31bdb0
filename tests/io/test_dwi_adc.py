"""b-value selection for 4D DWI, ADC unit detection, ADC resampling and overlap checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infarctsam.errors import InputError
from infarctsam.io.dwi import detect_adc_unit, load_adc, load_dwi

from synthetic_cases import oblique_affine, save_nifti


def _dwi4d(tmp_path, bvals, name="sub-01_dwi"):
    rng = np.random.default_rng(1)
    base = rng.uniform(50, 150, (6, 7, 5))
    vols = [base * np.exp(-b * 1e-3 * (0.7 + 0.1 * i)) + 1 for i, b in enumerate(bvals)]
    path = save_nifti(tmp_path / f"{name}.nii.gz", np.stack(vols, -1).astype(np.float32), oblique_affine())
    return path, np.stack(vols, -1)


def test_4d_picks_closest_to_1000_and_takes_geometric_mean(tmp_path):
    bvals = [0, 500, 1000, 1000, 1000, 2000]
    path, vols = _dwi4d(tmp_path, bvals)
    (tmp_path / "sub-01_dwi.bval").write_text(" ".join(map(str, bvals)) + "\n", encoding="utf-8")
    vol, info = load_dwi(path)
    assert info.b_value == 1000 and info.used_volumes == (2, 3, 4) and info.n_volumes == 6
    expected = np.exp(np.log(vols[..., 2:5]).mean(-1))
    np.testing.assert_allclose(vol.data, expected, rtol=1e-5)
    assert vol.data.ndim == 3 and "1000" in info.describe()


def test_4d_b_values_from_json_sidecar_closest(tmp_path):
    path, vols = _dwi4d(tmp_path, [0, 800])
    (tmp_path / "sub-01_dwi.json").write_text(json.dumps({"DiffusionBValue": [0, 800]}), encoding="utf-8")
    vol, info = load_dwi(path)
    assert info.b_value == 800 and info.used_volumes == (1,) and info.b_source == "json sidecar"
    np.testing.assert_allclose(vol.data, vols[..., 1], rtol=1e-6)


def test_4d_without_bvals_is_refused(tmp_path):
    path, _ = _dwi4d(tmp_path, [0, 1000])
    with pytest.raises(InputError, match="no b-values"):
        load_dwi(path)


def test_4d_trailing_singleton_and_3d_sidecar_b(tmp_path):
    data = np.random.default_rng(0).uniform(1, 2, (5, 5, 4, 1)).astype(np.float32)
    path = save_nifti(tmp_path / "x_dwi.nii.gz", data, np.eye(4))
    (tmp_path / "x_dwi.json").write_text(json.dumps({"DiffusionBValue": 1000}), encoding="utf-8")
    vol, info = load_dwi(path)
    assert vol.shape == (5, 5, 4) and info.b_value == 1000 and info.n_volumes == 1


@pytest.mark.parametrize("fill,needle", [(0.0, "all zero"), (np.nan, "no finite"), (7.0, "constant")])
def test_degenerate_intensities(tmp_path, fill, needle):
    path = save_nifti(tmp_path / "d.nii.gz", np.full((5, 5, 5), fill, np.float32), np.eye(4))
    with pytest.raises(InputError, match=needle):
        load_dwi(path)


@pytest.mark.parametrize("scale,unit", [(1e-9, "m2/s"), (1e-3, "mm2/s"), (1.0, "1e-3 mm2/s"),
                                        (1e2, "1e-5 mm2/s"), (1e3, "1e-6 mm2/s")])
def test_adc_units_are_detected_and_converted(tmp_path, scale, unit):
    aff = oblique_affine()
    dwi = save_nifti(tmp_path / "dwi.nii.gz", np.random.default_rng(0).uniform(1, 2, (8, 8, 5)), aff)
    adc_x1e6 = np.random.default_rng(1).uniform(600, 1000, (8, 8, 5))
    adc = save_nifti(tmp_path / "adc.nii.gz", (adc_x1e6 * scale * 1e-3).astype(np.float32), aff)
    vol, _ = load_dwi(dwi)
    out = load_adc(adc, vol)
    assert out.meta["adc_unit"] == unit and out.meta["adc_resampled"] is False
    np.testing.assert_allclose(out.data, adc_x1e6, rtol=1e-4)
    assert detect_adc_unit(adc_x1e6) == "1e-6 mm2/s"


def test_adc_on_other_grid_is_resampled_through_world_coordinates(tmp_path):
    # DWI on an oblique grid; ADC a linear field in world x sampled on a plain 1 mm grid covering it
    dwi_aff = oblique_affine(spacing=(2.0, 2.0, 3.0), angle_deg=10, origin=(-8, -8, -6))
    dwi = save_nifti(tmp_path / "dwi.nii.gz", np.random.default_rng(0).uniform(1, 2, (8, 8, 5)), dwi_aff)
    adc_aff = np.eye(4)
    adc_aff[:3, 3] = (-30, -30, -30)
    ijk = np.indices((60, 60, 60)).astype(float)
    world_x = ijk[0] - 30
    adc = save_nifti(tmp_path / "adc.nii.gz", (800 + 5 * world_x).astype(np.float32), adc_aff)
    vol, _ = load_dwi(dwi)
    out = load_adc(adc, vol)
    assert out.meta["adc_resampled"] is True and out.shape == vol.shape
    centres = dwi_aff @ np.vstack([np.indices(vol.shape).reshape(3, -1), np.ones(vol.data.size)])
    np.testing.assert_allclose(out.data.ravel(), 800 + 5 * centres[0], atol=1e-3)


def test_adc_not_overlapping_is_refused(tmp_path):
    dwi = save_nifti(tmp_path / "dwi.nii.gz", np.random.default_rng(0).uniform(1, 2, (8, 8, 5)), np.eye(4))
    far = np.eye(4)
    far[:3, 3] = (500, 500, 500)
    adc = save_nifti(tmp_path / "adc.nii.gz", np.full((8, 8, 5), 800, np.float32) + np.arange(5), far)
    vol, _ = load_dwi(dwi)
    with pytest.raises(InputError, match="does not overlap"):
        load_adc(adc, vol)
