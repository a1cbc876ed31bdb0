"""Preprocessing invertibility (orientation, slice stacks), brain mask, normalisation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from infarctsam.errors import InputError
from infarctsam.io.volume import Volume
from infarctsam.preprocess import Reorient, SliceGrid, preprocess
from infarctsam.preprocess.brain import brain_mask

from synthetic_cases import head_phantom, oblique_affine

ORIENTATIONS = list(itertools.product([True, False], repeat=3))


@pytest.mark.parametrize("flip", ORIENTATIONS)
@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_reorientation_is_exactly_invertible(flip, perm):
    base = oblique_affine(spacing=(1.1, 0.9, 4.8), angle_deg=14, flip=flip)
    aff = base.copy()
    aff[:3, :3] = base[:3, :3][:, list(perm)]
    shape = (7, 6, 5)
    data = np.random.default_rng(0).random(shape)
    ro = Reorient.from_affine(aff, shape)
    can = ro.to_canonical(data)
    assert np.array_equal(ro.to_input(can), data)
    # canonical voxel centres are the same world points as the input's
    idx_in = np.array([2, 3, 1])
    world = aff @ np.r_[idx_in, 1]
    value = data[tuple(idx_in)]
    hit = np.argwhere(can == value)[0]
    np.testing.assert_allclose(ro.canonical_affine @ np.r_[hit, 1], world, atol=1e-6)
    # axes now point (closest to) R, A, S
    assert np.all(np.diag(ro.canonical_affine[:3, :3] @ np.diag(1 / np.array(ro.canonical_spacing))) > 0.8)


@pytest.mark.parametrize("shape,spacing,size", [((112, 90, 4), (2.0, 2.5), 256), ((256, 200, 3), (0.9, 1.0), 128),
                                                 ((40, 64, 2), (3.0, 1.8), 64)])
def test_slice_grid_round_trip(shape, spacing, size):
    x, y, _ = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    field = np.sin(2.5 * x) + np.cos(1.5 * y)
    grid = SliceGrid(shape[:2], spacing, size)
    stack = grid.to_stack(field)
    assert stack.shape == (shape[2], size, size)
    back = grid.to_volume(stack)
    assert back.shape == shape
    tol = 0.01 if grid.mm_per_pixel <= min(spacing) else 0.08  # downsampling loses detail
    assert np.abs(back - field)[2:-2, 2:-2].max() < tol


def test_slice_grid_keeps_physical_scale_and_mask_volume():
    # a 40 mm disc must stay 40 mm wide in the stack and round-trip with the same area
    shape, spacing = (100, 80, 1), (1.2, 1.5)
    idx = np.indices(shape[:2]).astype(float)
    disc = (((idx[0] - 50) * 1.2) ** 2 + ((idx[1] - 40) * 1.5) ** 2 <= 20**2)[..., None].astype(float)
    grid = SliceGrid(shape[:2], spacing, 128)
    stack = grid.to_stack(disc)
    area_mm2 = (stack[0] > 0.5).sum() * grid.mm_per_pixel**2
    assert abs(area_mm2 - np.pi * 400) / (np.pi * 400) < 0.03
    back = grid.to_volume(stack) > 0.5
    assert abs(int(back.sum()) - int(disc.sum())) / disc.sum() < 0.03


@pytest.mark.parametrize("scalp", [False, True])
def test_brain_mask_with_and_without_skull(scalp):
    spacing = (3.0, 3.0, 6.0)
    dwi, _, brain, _ = head_phantom(spacing=spacing, scalp=scalp)
    mask = brain_mask(dwi, spacing)
    dice = 2 * (mask & brain).sum() / (mask.sum() + brain.sum())
    assert dice > 0.9
    if scalp:  # nothing of the scalp shell, which lies well outside the brain, is kept
        from scipy import ndimage as ndi

        assert (mask & ~ndi.binary_dilation(brain, iterations=2)).sum() == 0


def test_preprocess_normalises_and_inverts(affine):
    sp = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    dwi, adc, brain, les = head_phantom(spacing=sp, scalp=False)
    pre = preprocess(Volume(dwi, affine), Volume(adc, affine))
    assert abs(np.median(pre.dwi[pre.brain]) - 1.0) < 1e-6
    assert pre.dwi.shape == pre.reorient.canonical_shape
    np.testing.assert_array_equal(pre.to_input(pre.reorient.to_canonical(les)), les)
    assert pre.adc is not None and pre.adc.max() <= 5000


def test_empty_brain_is_refused():
    data = np.zeros((20, 20, 10), np.float32)
    data[10, 10, 5] = 5.0  # one bright voxel: no brain
    with pytest.raises(InputError, match="no brain"):
        preprocess(Volume(data, np.eye(4)))
