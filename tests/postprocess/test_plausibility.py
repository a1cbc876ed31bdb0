"""The plausibility guard: lesion share of the brain, symmetric bilateral patterns, lesions without DWI signal."""

from __future__ import annotations

import numpy as np

from infarctsam.plausibility import plausibility_warnings, symmetric_fraction

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
