"""The plausibility guard: lesion share of the brain, symmetric bilateral patterns, lesions without DWI signal."""

from __future__ import annotations

import numpy as np

from infarctsam.plausibility import mirrored_pairs, plausibility_warnings, symmetric_fraction

SP = (2.0, 2.0, 2.0)


def brain_and_dwi(shape=(60, 70, 60)):
    idx = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    r = sum(((idx[i] - c[i]) / (0.45 * shape[i])) ** 2 for i in range(3))
    brain = r <= 1.0  # about 1,100 mL at 2 mm
    dwi = np.where(brain, 1.0, 0.0).astype(np.float32)
    return brain, dwi, idx


def test_a_bright_unilateral_infarct_gets_no_warning():
    brain, dwi, idx = brain_and_dwi()
    les = brain & ((idx[0] - 18) ** 2 + (idx[1] - 35) ** 2 + (idx[2] - 30) ** 2 <= 36)
    dwi[les] = 2.5
    assert plausibility_warnings(les, dwi, brain, SP) == []


def test_symmetric_bilateral_pattern_is_flagged():
    brain, dwi, idx = brain_and_dwi()
    centre = (brain.shape[0] - 1) / 2
    left = brain & ((idx[0] - (centre - 15)) ** 2 + (idx[1] - 20) ** 2 + (idx[2] - 10) ** 2 <= 16)
    right = brain & ((idx[0] - (centre + 15)) ** 2 + (idx[1] - 20) ** 2 + (idx[2] - 10) ** 2 <= 16)
    mask = left | right
    dwi[mask] = 2.5
    assert symmetric_fraction(mask, brain) > 0.9
    assert symmetric_fraction(left, brain) == 0.0
    warnings = plausibility_warnings(mask, dwi, brain, SP)
    assert any("symmetric bilateral" in w for w in warnings)


def test_lesion_too_large_for_the_brain_is_flagged():
    brain, dwi, idx = brain_and_dwi()
    half = brain & (idx[0] < brain.shape[0] * 0.5)  # a whole hemisphere: ~50% of the brain
    dwi[half] = 2.0
    warnings = plausibility_warnings(half, dwi, brain, SP)
    assert any("of the brain" in w and "implausible" in w for w in warnings)


def test_lesion_without_dwi_hyperintensity_is_flagged():
    brain, dwi, idx = brain_and_dwi()
    les = brain & ((idx[0] - 18) ** 2 + (idx[1] - 35) ** 2 + (idx[2] - 30) ** 2 <= 36)  # DWI left at 1.0
    warnings = plausibility_warnings(les, dwi, brain, SP)
    assert any("not hyperintense on DWI" in w for w in warnings)


def test_implausible_brain_volume_is_reported():
    brain, dwi, _ = brain_and_dwi((20, 20, 70))  # a narrow 126 mm tall column: far too small for a brain
    warnings = plausibility_warnings(np.zeros_like(brain), dwi, brain, SP)
    assert any("adult whole-brain range" in w for w in warnings)


def _ball(idx, centre, radius):
    return sum((idx[i] - centre[i]) ** 2 for i in range(3)) <= radius ** 2


def test_skull_base_rims_as_mirror_pairs_are_flagged_beside_an_infarct():
    """A unilateral infarct plus two spot pairs at mirrored places, a few mm off (as the rims of real scans are):
    the pairs are flagged, the infarct is not part of any pair."""
    brain, dwi, idx = brain_and_dwi()
    cx = brain.shape[0] // 2
    infarct = brain & _ball(idx, (cx + 12, 45, 35), 6)  # 24 mm right of the midline, ~7 mL
    rims = [brain & _ball(idx, (cx - 14, 25, 18), 3), brain & _ball(idx, (cx + 16, 27, 19), 3),
            brain & _ball(idx, (cx - 13, 46, 20), 2), brain & _ball(idx, (cx + 12, 44, 21), 2)]
    assert all(r.sum() >= 33 for r in rims)  # whole balls, inside the brain
    mask = infarct | np.any(rims, axis=0)
    dwi[mask] = 2.2
    pairs = mirrored_pairs(mask, brain, SP)
    rim_ml = sorted(round(float(r.sum()) * 0.008, 2) for r in rims)
    assert len(pairs) == 2 and sorted(v for p in pairs for v in p) == rim_ml
    warnings = plausibility_warnings(mask, dwi, brain, SP)
    assert any("2 left-right mirror pairs" in w for w in warnings), warnings


def test_unilateral_infarct_with_a_far_or_tiny_contralateral_spot_is_not_a_pair():
    brain, dwi, idx = brain_and_dwi()
    cx = brain.shape[0] // 2
    infarct = brain & _ball(idx, (cx + 12, 40, 30), 7)
    speck = brain & _ball(idx, (cx - 12, 40, 30), 1.5)  # mirrors onto the infarct but is > 4x smaller
    far = brain & _ball(idx, (cx - 16, 10, 50), 3)  # similar in size to nothing, far from any mirror image
    mask = infarct | speck | far
    dwi[mask] = 2.2
    assert mirrored_pairs(mask, brain, SP) == []
    assert not any("mirror pair" in w for w in plausibility_warnings(mask, dwi, brain, SP))
