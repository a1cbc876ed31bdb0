"""Brain extraction on full-head DWI: large bright infarcts, rotated noisy fields of view, plausibility warnings,
and (where ../shared is present) agreement with the JHU ADS pipeline's brain masks of two real clinical scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from infarctsam.preprocess.brain import brain_mask, brain_plausibility, is_skull_stripped

from synthetic_cases import head_phantom


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def big_bright_infarct_head(spacing=(3.0, 3.0, 6.0)):
    """A full-head phantom whose infarct is large and 4x brighter than tissue (a second Otsu split fails on it)."""
    dwi, _, brain, _ = head_phantom(shape=(48, 52, 18), spacing=spacing, scalp=True, lesion=False)
    idx = np.indices(brain.shape).astype(float)
    c = [(s - 1) / 2 for s in brain.shape]
    les = brain & (((idx[0] - c[0] - 8) * 3.0) ** 2 + ((idx[1] - c[1]) * 3.0) ** 2 <= 22**2)
    dwi[les] = 400.0
    return dwi, brain, les


def test_full_head_with_large_bright_infarct_keeps_the_whole_brain():
    dwi, brain, les = big_bright_infarct_head()
    mask = brain_mask(dwi, (3.0, 3.0, 6.0))
    assert dice(mask, brain) > 0.93
    assert mask[les].all()  # the infarct is inside the brain, not the only "brain"


@pytest.mark.parametrize("angle", [0, 25, 40])
def test_rotated_noisy_field_of_view_is_not_taken_for_brain(angle):
    spacing = (3.0, 3.0, 6.0)
    dwi, brain, _ = big_bright_infarct_head(spacing)
    rng = np.random.default_rng(1)
    pad = [(8, 8), (8, 8), (0, 0)]
    dwi, brain = np.pad(dwi, pad), np.pad(brain, pad)
    noisy = np.hypot(dwi + rng.normal(0, 8.0, dwi.shape), rng.normal(0, 8.0, dwi.shape))  # Rician background
    rot = np.clip(ndi.rotate(noisy, angle, axes=(0, 1), reshape=False, order=1, cval=0.0), 0, None)
    ref = ndi.rotate(brain.astype(np.float32), angle, axes=(0, 1), reshape=False, order=1) > 0.5
    if angle:
        assert np.mean(rot == 0) > 0.05  # exact zeros outside the rotated field of view
    assert not is_skull_stripped(rot, spacing)
    mask = brain_mask(rot, spacing)
    assert dice(mask, ref) > 0.9


def test_skull_stripped_detection():
    dwi, _, _, _ = head_phantom(scalp=False)
    assert is_skull_stripped(dwi, (3.0, 3.0, 6.0))
    full, _, _, _ = head_phantom(scalp=True)
    assert not is_skull_stripped(full, (3.0, 3.0, 6.0))


def test_plausibility_of_whole_brain_and_slab_volumes():
    sp = (1.0, 1.0, 5.0)
    whole = np.zeros((120, 150, 30), bool)
    whole[10:110, 10:140, 2:26] = True  # 100 x 130 x 120 mm = 1,560 mL over 120 mm
    assert brain_plausibility(whole, sp) is None
    small = np.zeros_like(whole)
    small[40:80, 40:80, 2:26] = True  # 192 mL over 120 mm
    assert "outside the adult whole-brain range" in brain_plausibility(small, sp)
    huge = np.ones((200, 200, 30), bool)  # 6,000 mL
    assert "outside the adult whole-brain range" in brain_plausibility(huge, sp)
    slab = np.zeros_like(whole)
    slab[10:110, 10:140, 10:18] = True  # 520 mL over a 40 mm slab: plausible
    assert brain_plausibility(slab, sp) is None
    slab_huge = np.ones((220, 220, 8), bool)  # 1,936 mL in a 40 mm slab
    assert "exceeds a whole adult brain" in brain_plausibility(slab_huge, sp)
    slab_tiny = np.zeros_like(whole)
    slab_tiny[50:60, 50:60, 10:18] = True  # 4 mL over 40 mm
    assert "small for the" in brain_plausibility(slab_tiny, sp)


@pytest.mark.shared
@pytest.mark.parametrize("subject", ["01", "02"])
def test_real_clinical_full_head_scans_match_the_ads_brain_masks(shared_dir, subject):
    import nibabel as nib

    from infarctsam.io.dwi import load_dwi
    from infarctsam.preprocess.orient import Reorient

    folder = shared_dir / "data" / "unlabeled" / f"jhu-ads-subject{subject}"
    vol, _ = load_dwi(folder / f"Subject{subject}_DWI.nii.gz")
    ro = Reorient.from_affine(vol.affine, vol.shape)
    raw = np.clip(np.nan_to_num(ro.to_canonical(vol.data.astype(np.float32))), 0, None)
    ref = ro.to_canonical(np.asarray(nib.load(folder / f"Subject{subject}_Mask.nii.gz").dataobj) > 0.5)
    mask = brain_mask(raw, ro.canonical_spacing)
    assert not is_skull_stripped(raw, ro.canonical_spacing)
    assert dice(mask, ref) >= 0.93
    assert brain_plausibility(mask, ro.canonical_spacing) is None
