"""The QC picture: which slices, the crop, the outlines and the title."""

from __future__ import annotations

import io

import numpy as np
import pytest

from infarctsam.outputs.qc import FN_RGB, FP_RGB, OUTLINE_RGB, TP_RGB, qc_summary_line, render_montage
from infarctsam.outputs.qc_layout import brain_range, choose_slices, crop_box


def _brain(shape=(60, 70, 40)):
    brain = np.zeros(shape, dtype=bool)
    brain[15:45, 10:60, 5:35] = True
    return brain


def test_every_lesion_and_the_largest_extent_are_shown():
    brain = _brain()
    lesion = np.zeros(brain.shape, dtype=bool)
    lesion[20:30, 20:30, 10:22] = True  # largest: slices 10..21
    lesion[40, 50, 6] = True  # one-voxel lesions far from it
    lesion[18, 15, 33] = True
    ref = np.zeros(brain.shape, dtype=bool)
    ref[35, 30, 27] = True  # a lesion only in the reference
    zs = choose_slices(brain, lesion, n=20, extra=ref)
    assert len(zs) <= 20 and zs == sorted(set(zs))
    assert {6, 27, 33} <= set(zs)
    assert 10 in zs and 21 in zs and len([z for z in zs if 10 <= z <= 21]) >= 8
    assert all(5 <= z <= 34 for z in zs)  # context stays inside the brain


def test_small_budget_still_covers_each_lesion_with_shared_slices():
    brain = _brain()
    lesion = np.zeros(brain.shape, dtype=bool)
    for k, z in enumerate(range(8, 32, 3)):  # 8 lesions, each 3 slices thick, ranges overlapping in pairs
        lesion[16 + 3 * k, 20, z:z + 3] = True
    zs = choose_slices(brain, lesion, n=8, context=0)
    from infarctsam.metrics import label_lesions

    labels, n = label_lesions(lesion)
    for i in range(1, n + 1):
        assert set(np.flatnonzero(labels == i) % brain.shape[2]) & set(zs), i


def test_no_lesion_spreads_over_the_brain():
    brain = _brain()
    zs = choose_slices(brain, np.zeros(brain.shape, bool), n=10)
    lo, hi = brain_range(brain)
    assert len(zs) == 10 and zs[0] == lo and zs[-1] == hi


def test_crop_is_the_brain_box_with_a_margin():
    bx, by = crop_box(_brain(), margin=3)
    assert (bx.start, bx.stop, by.start, by.stop) == (12, 48, 7, 63)
    full = crop_box(np.zeros((5, 6, 2), bool))
    assert (full[0].stop, full[1].stop) == (5, 6)


def test_summary_line_gives_volumes_counts_and_dice():
    pred = np.zeros((10, 10, 10), bool)
    ref = np.zeros_like(pred)
    pred[2:4, 2:4, 2:4] = True  # 8 voxels
    ref[2:4, 2:4, 3:5] = True  # 8 voxels, 4 shared
    ref[8, 8, 8] = True
    line = qc_summary_line(pred, (2.0, 2.0, 2.5), ref)  # 10 mm^3 voxels
    assert line == ("prediction 0.08 mL (1 lesion(s))  |  reference 0.09 mL (2 lesion(s))  |  "
                    f"Dice {2 * 4 / 17:.3f}")
    assert qc_summary_line(pred, (1.0, 1.0, 1.0)) == "prediction 0.01 mL (1 lesion(s))"


def _image(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _has_colour(img: np.ndarray, rgb) -> bool:
    target = np.round(np.asarray(rgb) * 255).astype(int)
    return bool((np.abs(img - target).sum(axis=2) < 40).any())


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    brain = _brain()
    dwi = np.where(brain, 1.0 + 0.05 * rng.random(brain.shape), 0.0).astype(np.float32)
    pred = np.zeros(brain.shape, bool)
    pred[20:26, 30:38, 12:16] = True
    ref = np.zeros(brain.shape, bool)
    ref[22:28, 30:38, 13:17] = True
    return dwi, brain, pred, ref


def test_reference_picture_draws_tp_fp_fn_outlines_and_warnings(case):
    dwi, brain, pred, ref = case
    png = render_montage(dwi, pred, (2.0, 2.0, 4.0), brain=brain, reference=ref, title="case (engine x)",
                         warnings=["lesion volume is implausible"])
    img = _image(png)
    for rgb in (TP_RGB, FP_RGB, FN_RGB):
        assert _has_colour(img, rgb), rgb
    from infarctsam.outputs.qc import WARNING_RGB

    assert _has_colour(img, WARNING_RGB)
    # outlines, not filled patches: few pixels are green compared with the lesion's area on screen
    green = (np.abs(img - np.round(np.asarray(TP_RGB) * 255)).sum(axis=2) < 40).sum()
    assert 0 < green < 0.05 * img.shape[0] * img.shape[1]


def test_plain_picture_is_cropped_and_outlined_in_yellow(case):
    dwi, brain, pred, _ = case
    img = _image(render_montage(dwi, pred, (2.0, 2.0, 4.0), brain=brain, title="case"))
    assert _has_colour(img, OUTLINE_RGB) and not _has_colour(img, TP_RGB)
    # cropped to the brain: one panel's brain spans most of the panel's width (uncropped it would be about half)
    from scipy import ndimage as ndi

    labels, n = ndi.label(img.mean(axis=2) > 150)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    cols = np.flatnonzero((labels == largest).any(axis=0))
    panel_width = img.shape[1] / min(5, len(choose_slices(brain, pred)))
    assert (cols[-1] - cols[0] + 1) > 0.7 * panel_width
