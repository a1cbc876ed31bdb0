"""Per-case metrics on tiny cases whose expected values are computed by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infarctsam import metrics as M


def vol(*voxels: tuple[int, int, int], shape: tuple[int, int, int] = (12, 12, 8)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for v in voxels:
        m[v] = True
    return m


def test_dice_hand_computed() -> None:
    gt = vol((1, 1, 1), (1, 2, 1), (1, 3, 1), (1, 4, 1))  # 4 voxels
    pred = vol((1, 1, 1), (5, 5, 5))  # 2 voxels, 1 shared
    assert M.dice(gt, pred) == pytest.approx(2 * 1 / (4 + 2))  # 1/3
    assert M.dice(gt, gt) == 1.0
    assert M.dice(vol(), vol()) == 1.0  # both empty: 1.0 as ISLES'22
    assert M.dice(gt, vol()) == 0.0


def test_volume_from_affine_determinant_flipped_anisotropic() -> None:
    affine = np.diag([-0.9, 1.1, -3.0, 1.0])  # |det| = 0.9 * 1.1 * 3.0 = 2.97 mm^3 = 0.00297 mL
    assert M.voxel_volume_ml(affine) == pytest.approx(0.00297)
    ten = vol(*[(i, 0, 0) for i in range(10)])
    assert M.volume_ml(ten, affine) == pytest.approx(0.0297)
    # Permuted, flipped axes: column norms give the spacing per array axis; det unchanged in magnitude.
    permuted = np.array([[0, 0, -3.0, 0], [1.1, 0, 0, 0], [0, -0.9, 0, 0], [0, 0, 0, 1.0]])
    assert M.spacing_from_affine(permuted) == pytest.approx((1.1, 0.9, 3.0))
    assert M.voxel_volume_ml(permuted) == pytest.approx(0.00297)


def test_lesion_wise_f1_26_connectivity() -> None:
    # Reference: L1 = two voxels touching only at a corner (one lesion with 26-connectivity), L2 and L3 elsewhere.
    gt = vol((1, 1, 1), (2, 2, 2), (6, 6, 6), (9, 9, 1), (9, 9, 2))
    # Prediction: P1 overlaps L1 at (2,2,2) (and extends diagonally to (3,3,3)); P2 is a false positive.
    pred = vol((2, 2, 2), (3, 3, 3), (6, 0, 0))
    c = M.lesion_counts(gt, pred)
    assert (c.n_gt, c.n_pred) == (3, 2)
    assert (c.tp, c.fp, c.fn) == (1, 1, 2)  # L1 detected; P2 FP; L2, L3 missed
    assert c.f1 == pytest.approx(1 / (1 + (1 + 2) / 2))  # 0.4
    assert c.count_diff == 1


def test_lesion_f1_one_prediction_covering_two_lesions_and_empty_cases() -> None:
    gt = vol((1, 1, 1), (1, 1, 4))  # two lesions (gap of two voxels)
    pred = vol((1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4))  # one lesion touching both
    c = M.lesion_counts(gt, pred)
    assert (c.tp, c.fp, c.fn, c.n_gt, c.n_pred) == (2, 0, 0, 2, 1)
    assert c.f1 == 1.0  # 2 / (2 + 0)
    assert M.lesion_counts(vol(), vol()).f1 == 1.0  # both empty
    assert M.lesion_counts(vol(), vol((3, 3, 3))).f1 == 0.0  # only a false positive
    assert M.lesion_counts(vol((3, 3, 3)), vol()).f1 == 0.0  # only a miss


def test_surface_is_boundary_voxels_and_image_border_counts() -> None:
    cube = np.zeros((5, 5, 5), dtype=bool)
    cube[1:4, 1:4, 1:4] = True
    s = M.surface(cube)
    assert s.sum() == 26 and not s[2, 2, 2]  # 27 voxels minus the one interior voxel
    full = np.ones((3, 3, 3), dtype=bool)
    assert M.surface(full).sum() == 26  # the centre voxel has all 6 face neighbours inside
    assert M.surface(np.ones((2, 3, 3), dtype=bool)).sum() == 18  # every voxel touches the image border


def test_hd95_assd_anisotropic_hand_computed() -> None:
    # A = two voxels along axis 0, B = the first one. Every voxel is surface.
    gt = vol((2, 2, 2), (3, 2, 2))
    pred = vol((2, 2, 2))
    # spacing 0.5 along axis 0: d(A->B) = [0, 0.5], d(B->A) = [0].
    # P95 of [0, 0.5] (linear) = 0.95 * 0.5 = 0.475; HD95 = max(0.475, 0) = 0.475; ASSD = (0 + 0.5 + 0) / 3.
    hd, assd = M.hd95_assd(gt, pred, (0.5, 1.0, 1.0))
    assert hd == pytest.approx(0.475)
    assert assd == pytest.approx(0.5 / 3)
    # Same geometry along the 3 mm axis: d(A->B) = [0, 3] -> HD95 2.85, ASSD 1.0.
    hd, assd = M.hd95_assd(vol((2, 2, 2), (2, 2, 3)), pred, (0.5, 1.0, 3.0))
    assert hd == pytest.approx(2.85)
    assert assd == pytest.approx(1.0)
    # Diagonal offset honours both spacings: sqrt(0.9^2 + (2*3)^2).
    hd, _ = M.hd95_assd(vol((1, 1, 1)), vol((2, 1, 3)), (0.9, 1.1, 3.0))
    assert hd == pytest.approx(math.hypot(0.9, 6.0))


def test_surface_distance_conventions_for_empty_masks() -> None:
    assert M.hd95_assd(vol(), vol(), (1, 1, 1)) == (0.0, 0.0)
    hd, assd = M.hd95_assd(vol((1, 1, 1)), vol(), (1, 1, 1))
    assert math.isnan(hd) and math.isnan(assd)
    hd, assd = M.hd95_assd(vol(), vol((1, 1, 1)), (1, 1, 1))
    assert math.isnan(hd) and math.isnan(assd)


def test_crop_does_not_change_distances_at_the_image_border() -> None:
    a = np.zeros((30, 4, 4), dtype=bool)
    a[0:3, :, :] = True  # touches the image border
    b = np.zeros_like(a)
    b[20:30, :, :] = True
    full = M.hd95_assd(a, b, (1.0, 2.0, 2.0))
    # Nearest surface of B to A's surface: A's far face (i=2) to B's near face (i=20) = 18 mm; A's border face
    # (i=0) is 20 mm from i=20; the interior of a 4x4 cross-section is all surface (image border).
    d_ab, d_ba = M.surface_distances(a, b, (1.0, 2.0, 2.0))
    assert d_ab.min() == pytest.approx(18.0) and d_ab.max() == pytest.approx(20.0)
    assert d_ba.max() == pytest.approx(27.0)  # B's face at i=29 to A's face at i=2
    assert full[0] == pytest.approx(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def test_sensitivity_precision() -> None:
    gt = vol((1, 1, 1), (1, 2, 1), (1, 3, 1), (1, 4, 1))
    pred = vol((1, 1, 1), (5, 5, 5))
    assert M.sensitivity_precision(gt, pred) == pytest.approx((0.25, 0.5))  # 1/4, 1/2
    sens, prec = M.sensitivity_precision(vol(), vol())
    assert math.isnan(sens) and math.isnan(prec)


def test_case_metrics_all_fields() -> None:
    affine = np.diag([-0.9, 1.1, -3.0, 1.0])
    gt = vol((4, 4, 4), (5, 4, 4), (6, 4, 4))  # 3 voxels = 0.00891 mL
    pred = vol((5, 4, 4), (6, 4, 4), (7, 4, 4), (0, 0, 0))  # 4 voxels, 2 shared, one far FP lesion
    m = M.case_metrics(gt, pred, affine)
    assert m.dice == pytest.approx(2 * 2 / 7)
    assert m.volume_gt_ml == pytest.approx(3 * 0.00297)
    assert m.volume_pred_ml == pytest.approx(4 * 0.00297)
    assert m.avd_ml == pytest.approx(0.00297)
    assert (m.n_lesions_gt, m.n_lesions_pred, m.lesion_count_diff) == (1, 2, 1)
    assert m.lesion_f1 == pytest.approx(1 / (1 + 0.5))  # TP 1, FP 1, FN 0
    assert m.sensitivity == pytest.approx(2 / 3) and m.precision == pytest.approx(0.5)
    assert list(m.as_dict()) == list(M.METRIC_COLUMNS)
    assert m.hd95_mm > 10  # the far false positive dominates the 95th percentile of d(pred->gt)
