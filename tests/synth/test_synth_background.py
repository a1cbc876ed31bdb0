"""Painting library infarcts into a given (real) DWI: alignment, tissue restriction, contrast, units."""

from __future__ import annotations

import numpy as np
import pytest

from infarctsam.io.volume import Volume, read_volume
from infarctsam.synth import PhantomConfig, make_phantom
from infarctsam.synth.background import adc_scale_to_1e6, derive_brain_mask, fit_mni_affine
from infarctsam.synth.template import load_template


@pytest.fixture(scope="module")
def stroke_free_case():
    """A lesion-free template phantom on an oblique, flipped grid, standing in for a real scan."""
    cfg = PhantomConfig(shape=(60, 72, 30), inplane_mm=(3.0, 3.0), slice_mm=(5.0, 5.0), p_empty=1.0,
                        skull_strip_prob=1.0, max_oblique_deg=8.0, head_tilt_deg=0.0, p_flip=1.0,
                        adc_units=("1e-3 mm2/s",), p_artifact=0.0, p_old_infarct=0.0, fov_shift_mm=0.0,
                        coverage_mm=(150.0, 150.0))
    return make_phantom(100, cfg)


def test_lesion_painted_into_background(stroke_free_case):
    bg = stroke_free_case
    cfg = PhantomConfig(p_empty=0.0, n_lesions=(1, 1), p_shower=0.0, lesion_volume_ml=(10.0, 120.0),
                        p_pseudonormal=0.0, adc_ratio=(0.45, 0.7))
    ph = make_phantom(3, cfg, background=bg.dwi, background_adc=bg.adc, background_brain=bg.brain)
    les = ph.lesion.data > 0
    assert les.sum() > 5 and ph.meta["mode"] == "background"
    assert ph.meta["lesion_volume_ml"] == pytest.approx(les.sum() * bg.dwi.voxel_volume_ml)
    assert ph.dwi.same_grid(bg.dwi) and ph.lesion.same_grid(bg.dwi)
    assert np.all(bg.brain.data[les] == 1)
    adc_bg = bg.adc.data * 1000.0
    assert np.all(adc_bg[les] <= 1500.0)  # never in CSF
    assert ph.dwi.data[les].mean() > 1.2 * bg.dwi.data[les].mean()
    assert ph.adc.data[les].mean() < 0.9 * bg.adc.data[les].mean()
    assert ph.meta["adc_unit"] == "1e-3 mm2/s" and not ph.meta["adc_synthetic"]
    untouched = ~les & (ph.dwi.data == bg.dwi.data)
    assert untouched.sum() > 0.9 * (~les).sum()


def test_dwi_only_background_gets_a_synthetic_adc(stroke_free_case):
    bg = stroke_free_case
    cfg = PhantomConfig(p_empty=0.0, lesion_volume_ml=(10.0, 120.0), adc_units=("1e-6 mm2/s",))
    ph = make_phantom(4, cfg, background=bg.dwi)
    brain = ph.brain.data > 0
    assert ph.meta["adc_synthetic"] and ph.meta["adc_unit"] == "1e-6 mm2/s"
    assert 500.0 < np.median(ph.adc.data[brain & (ph.lesion.data == 0)]) < 1500.0
    assert np.all(ph.adc.data[~brain] == 0)


def test_alignment_of_the_template_onto_itself():
    tpl = load_template()
    brain = tpl.brain[::2, ::2, ::2]
    affine = tpl.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    w2m, _ = fit_mni_affine(brain, affine, tpl)
    assert np.allclose(np.diag(w2m)[:3], 1.0, atol=0.03) and np.allclose(w2m[:3, 3], 0.0, atol=2.0)
    # A scaled, flipped copy: world = 0.9 * MNI, stored with reversed i and j.
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [brain.shape[0] - 1, brain.shape[1] - 1, 0]
    scaled = np.diag([0.9, 0.9, 0.9, 1.0]) @ affine @ flip
    w2m, fit = fit_mni_affine(brain[::-1, ::-1], scaled, tpl)
    assert np.allclose(np.diag(w2m)[:3], 1 / 0.9, atol=0.04)
    assert fit["cut_axes"] == [False, False, True]  # the template brain stem reaches the bottom of its grid


def test_brain_mask_and_unit_helpers():
    shape = (40, 40, 20)
    idx = np.indices(shape)
    ball = ((idx[0] - 20) / 14.0) ** 2 + ((idx[1] - 20) / 16.0) ** 2 + ((idx[2] - 10) / 8.0) ** 2 <= 1
    dwi = np.where(ball, 100.0, 2.0) + np.random.default_rng(0).random(shape)
    mask = derive_brain_mask(dwi)
    assert (mask ^ ball).sum() < 0.05 * ball.sum()
    assert adc_scale_to_1e6(np.where(ball, 0.0008, 0), ball) == 1e6
    assert adc_scale_to_1e6(np.where(ball, 0.8, 0), ball) == 1e3
    assert adc_scale_to_1e6(np.where(ball, 800.0, 0), ball) == 1.0


@pytest.mark.shared
def test_real_background_from_shared(shared_dir):
    folder = shared_dir / "data" / "unlabeled" / "jhu-ads-subject02"
    if not folder.is_dir():
        pytest.skip("jhu-ads-subject02 is not in ../shared")
    dwi = read_volume(folder / "Subject02_DWI.nii.gz")
    adc = read_volume(folder / "Subject02_ADC.nii.gz")
    brain = read_volume(folder / "Subject02_Mask.nii.gz")
    ph = make_phantom(1, PhantomConfig(p_empty=0.0, lesion_volume_ml=(5.0, 80.0)), background=dwi,
                      background_adc=adc, background_brain=brain)
    les = ph.lesion.data > 0
    assert les.sum() > 0 and ph.meta["adc_unit"] == "mm2/s"
    assert ph.dwi.data[les].mean() > dwi.data[les].mean()
    assert isinstance(ph.dwi, Volume) and ph.dwi.header is dwi.header
