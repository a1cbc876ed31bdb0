"""The weight-free threshold engine on a phantom and on the bundled real ISLES'22 case."""

from __future__ import annotations

import numpy as np
import pytest

from infarctsam.engines import load_engine
from infarctsam.engines.threshold import ThresholdEngine
from infarctsam.io.volume import Volume
from infarctsam.postprocess import binarize, lesion_stats
from infarctsam.preprocess import preprocess
from infarctsam.preprocess.contrast import mirror_x

from synthetic_cases import EXAMPLE_STEM, head_phantom


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.mark.parametrize("with_adc", [True, False])
def test_finds_bright_low_adc_lesion(affine, with_adc):
    sp = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    dwi, adc, _, les = head_phantom(spacing=sp, scalp=False)
    pre = preprocess(Volume(dwi, affine), Volume(adc, affine) if with_adc else None)
    eng = ThresholdEngine()
    prob = eng.predict(pre)
    assert prob.shape == pre.dwi.shape and prob.min() >= 0 and prob.max() <= 1
    mask = binarize(prob, pre.brain, eng.threshold, eng.min_lesion_ml, pre.voxel_ml)
    truth = pre.reorient.to_canonical(les)
    assert _dice(mask > 0, truth) > 0.8


def test_adc_gate_rejects_t2_shine_through(affine):
    sp = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    dwi, adc, _, les = head_phantom(spacing=sp, scalp=False)
    adc[les] = 1400.0  # bright on DWI but high ADC: not an infarct
    pre = preprocess(Volume(dwi, affine), Volume(adc, affine))
    eng = ThresholdEngine()
    mask = binarize(eng.predict(pre), pre.brain, eng.threshold, eng.min_lesion_ml, pre.voxel_ml)
    assert mask.sum() == 0


def test_symmetric_brightness_is_not_called_a_lesion():
    dwi, _, brain, _ = head_phantom(shape=(40, 44, 16), spacing=(3.0, 3.0, 6.0), scalp=False, lesion=False)
    idx = np.indices(dwi.shape)
    for cx in (12, 27):  # mirror-image pair of bright blobs (as normal bright structures are)
        blob = ((idx[0] - cx) ** 2 + (idx[1] - 22) ** 2 + (idx[2] - 8) ** 2 <= 9) & brain
        dwi[blob] = 200.0
    pre = preprocess(Volume(dwi, np.diag([3.0, 3.0, 6.0, 1.0])))
    eng = ThresholdEngine()
    mask = binarize(eng.predict(pre), pre.brain, eng.threshold, eng.min_lesion_ml, pre.voxel_ml)
    assert mask.sum() == 0


def test_mirror_is_a_reflection():
    a = np.zeros((9, 3, 2))
    a[1, 1, 1] = 1.0
    assert mirror_x(a, 4.0)[7, 1, 1] == 1.0


def test_engine_registry():
    assert load_engine("threshold").info.name == "threshold"
    with pytest.raises(Exception, match="unknown engine"):
        load_engine("nope")


def test_real_sample_case_baseline():
    from infarctsam.io.dwi import load_adc, load_dwi
    from infarctsam.io.volume import read_volume

    dwi, _ = load_dwi(f"{EXAMPLE_STEM}_dwi.nii.gz")
    adc = load_adc(f"{EXAMPLE_STEM}_adc.nii.gz", dwi)
    ref = read_volume(f"{EXAMPLE_STEM}_msk.nii.gz").data > 0
    pre = preprocess(dwi, adc)
    eng = ThresholdEngine()
    mask = pre.to_input(binarize(eng.predict(pre), pre.brain, eng.threshold, eng.min_lesion_ml, pre.voxel_ml))
    stats = lesion_stats(mask, dwi.voxel_volume_ml)
    # A weak but real baseline: it finds part of the 4.18 mL infarct without flooding the brain.
    assert _dice(mask > 0, ref) > 0.35
    assert 1.0 < stats.volume_ml < 8.0
