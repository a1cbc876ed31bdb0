"""Removal of left-right mirror pairs of lesions (skull-base susceptibility artefacts)."""

from __future__ import annotations

import numpy as np

from infarctsam.postprocess import MirrorPairs, mirror_pairs, remove_mirror_pairs

SPACING = (2.0, 2.0, 4.0)


def _case() -> tuple[np.ndarray, np.ndarray]:
    """A 60x50x20 box of brain centred at x = 29.5, a mirror pair at x = 14-17 / 42-45 (30 mm off the midline) and
    a unilateral lesion at x = 40-45 in other slices."""
    brain = np.zeros((60, 50, 20), bool)
    brain[5:55, 5:45, 2:18] = True
    mask = np.zeros(brain.shape, np.uint8)
    mask[14:18, 20:24, 4:7] = 1  # left of the midline (x < centre), 48 voxels = 0.768 mL
    mask[42:46, 21:25, 4:7] = 1  # its mirror image, 1 voxel off in y
    mask[40:46, 30:38, 12:15] = 1  # unilateral: no twin
    return mask, brain


def test_mirror_pair_found_and_removed_without_adc_unilateral_lesion_kept():
    mask, brain = _case()
    lab, pairs = mirror_pairs(mask, brain, SPACING)
    assert len(pairs) == 1
    left, right, v_left, v_right = pairs[0]
    assert v_left == v_right == round(48 * 16 / 1000, 2)
    assert lab[15, 21, 5] == left and lab[43, 22, 5] == right
    out, removed = remove_mirror_pairs(mask, brain, SPACING)
    assert removed == [(v_left, v_right)]
    assert out.dtype == mask.dtype and mask.sum() == 96 + 144  # the input is not modified
    assert out.sum() == 144 and out[42, 33, 13] == 1  # only the unilateral lesion is left


def test_pair_with_restricted_diffusion_is_kept_as_possible_bilateral_infarcts():
    mask, brain = _case()
    adc = np.full(mask.shape, 800.0, np.float32)
    out, removed = remove_mirror_pairs(mask, brain, SPACING, adc)
    assert removed and out.sum() == 144  # normal ADC on both sides: artefact
    adc[42:46, 21:25, 4:7] = 450.0  # one side restricted
    out, removed = remove_mirror_pairs(mask, brain, SPACING, adc)
    assert removed == [] and out is mask


def test_limits_of_a_pair():
    mask, brain = _case()
    assert mirror_pairs(mask, brain, SPACING, MirrorPairs(min_offset_mm=31.0))[1] == []  # too close to the midline
    assert mirror_pairs(mask, brain, SPACING, MirrorPairs(min_ml=2.0))[1] == []  # too small together
    shifted = mask.copy()
    shifted[42:46, 21:25, 4:7] = 0
    shifted[42:46, 21:25, 10:13] = 1  # 24 mm away once mirrored
    assert mirror_pairs(shifted, brain, SPACING)[1] == []
