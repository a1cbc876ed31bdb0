"""Augmentation, losses, case splitting and slice preparation, checked on small hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infarctsam.io.volume import Volume
from infarctsam.model.config import ModelConfig
from infarctsam.train.augment import augment_case
from infarctsam.train.config import AugmentConfig
from infarctsam.train.data import CaseSpec, case_slices, split_cases
from infarctsam.train.losses import dice_loss, focal_loss, segmentation_loss

from synthetic_cases import head_phantom


def _phantom():
    sp = (3.0, 3.0, 6.0)
    dwi, _, _, les = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    return Volume(dwi, np.diag([*sp, 1.0])), les


def test_augmentation_is_seeded_and_moves_mask_with_image():
    vol, les = _phantom()
    cfg = AugmentConfig(p=1.0, p_flip=1.0, p_affine=0.0, p_noise=0.0, p_thick_slices=0.0, bias_amplitude=0.0,
                        gamma=(1.0, 1.0), intensity_scale=(1.0, 1.0))
    out, m = augment_case(np.random.default_rng(0), vol, les, cfg)
    np.testing.assert_array_equal(m, les[::-1])
    np.testing.assert_allclose(out.data, vol.data[::-1], rtol=1e-5)
    a1, _ = augment_case(np.random.default_rng(7), vol, les, AugmentConfig(p=1.0))
    a2, _ = augment_case(np.random.default_rng(7), vol, les, AugmentConfig(p=1.0))
    np.testing.assert_array_equal(a1.data, a2.data)


def test_thick_slice_simulation_changes_the_grid():
    dwi, _, _, les = head_phantom(shape=(30, 34, 12), spacing=(3.0, 3.0, 3.0), scalp=False)
    vol = Volume(dwi, np.diag([3.0, 3.0, 3.0, 1.0]))
    cfg = AugmentConfig(p=1.0, p_flip=0.0, p_affine=0.0, p_noise=0.0, p_thick_slices=1.0, thick_factor=(2, 2))
    out, m = augment_case(np.random.default_rng(1), vol, les, cfg)
    assert out.shape == (30, 34, 6) and m.shape == out.shape
    np.testing.assert_allclose(out.spacing, (3.0, 3.0, 6.0))
    # a slab of two slices sits between their centres
    np.testing.assert_allclose(out.affine[2, 3], 1.5)
    assert 0.5 * les.sum() <= 2 * int(m.sum()) <= 1.5 * les.sum()  # lesion volume kept up to partial volume


def test_losses_on_hand_made_cases():
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2, :2] = 1
    perfect = torch.where(target > 0, 20.0, -20.0)
    assert float(dice_loss(perfect, target)[0]) < 1e-3
    assert float(focal_loss(perfect, target).max()) < 1e-6
    half = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere, target 1: ce = ln 2, (1-p_t)^2 = 1/4, alpha 0.25
    assert float(focal_loss(half, torch.ones(1, 1, 2, 2))) == pytest.approx(0.25 * 0.25 * np.log(2), rel=1e-5)
    iou = torch.tensor([[1.0], [0.0]])
    obj = torch.tensor([[20.0], [-20.0]])
    total, parts = segmentation_loss(perfect, iou, obj, target)
    assert parts["dice"] < 1e-3 and parts["iou"] < 1e-6 and parts["obj"] < 1e-6 and float(total) < 0.01
    _, wrong = segmentation_loss(-perfect, iou, -obj, target)
    assert wrong["dice"] > 0.9 and wrong["obj"] > 10


def test_split_is_by_patient_and_repeatable():
    cases = [CaseSpec(f"c{i}", f"p{i // 2}", "synth", i, source=0) for i in range(20)]
    tr, va = split_cases(cases, 0.3, seed=1)
    assert len(tr) + len(va) == 20 and len(va) == 6
    assert not {c.patient for c in tr} & {c.patient for c in va}
    assert split_cases(cases, 0.3, seed=1) == (tr, va)


def test_case_slices_follow_the_lesion():
    vol, les = _phantom()
    sl = case_slices(vol, les, ModelConfig(image_size=32), margin=1, rng=np.random.default_rng(0))
    assert sl.images.shape[1:] == (3, 32, 32) and sl.images.dtype == np.float16
    assert sl.masks.shape == (len(sl.z), 32, 32)
    lesion_z = np.flatnonzero(les.sum(axis=(0, 1)))
    assert sl.z.min() == lesion_z.min() - 1 and sl.z.max() == lesion_z.max() + 1
    assert sl.masks.sum() > 0 and 0.0 <= float(sl.images.min()) and float(sl.images.max()) <= 1.0


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_in_a_training_config_are_refused(tmp_path, value):
    from infarctsam.errors import ConfigError
    from infarctsam.train.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\noutput: run\ndata: [{{kind: synth, n: 2}}]\nstage1: {{steps: 2, lr: {value}}}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="lr"):
        load_config(cfg)


def test_lesion_recall_term_counts_lesions_not_voxels():
    from infarctsam.train.losses import LossWeights, component_labels, lesion_recall_loss

    target = torch.zeros(2, 1, 6, 6)
    target[0, 0, 0:3, 0:3] = 1  # a 9-voxel lesion
    target[0, 0, 5, 5] = 1  # a 1-voxel lesion, not touching the first (8-connectivity)
    target[1, 0, 2, 2] = 1  # one more single voxel in the second slice
    labels = component_labels(target)
    assert labels.shape == target.shape and int(labels.max()) == 3
    # probability 0.5 everywhere (logit 0): each lesion's soft recall is 0.5, so the term is 0.5
    assert lesion_recall_loss(torch.zeros_like(target), target).item() == pytest.approx(0.5)
    # the large lesion found (p ~ 1), the two dots missed (p ~ 0): recall 1, 0, 0 -> term 2/3, although 9 of the
    # 11 lesion voxels are found (voxel recall 0.82)
    logits = torch.full_like(target, -30.0)
    logits[0, 0, 0:3, 0:3] = 30.0
    assert lesion_recall_loss(logits, target).item() == pytest.approx(2 / 3, abs=1e-6)
    # no lesion: 0, with a gradient path
    empty = torch.zeros(1, 1, 4, 4)
    assert lesion_recall_loss(torch.zeros_like(empty, requires_grad=True), empty).item() == 0.0
    # off by default; on, it adds its weighted value and reports it
    iou, obj = torch.zeros(2, 1), torch.zeros(2, 1)
    base, parts = segmentation_loss(logits, iou, obj, target)
    assert "lesion" not in parts
    total, parts = segmentation_loss(logits, iou, obj, target, LossWeights(lesion=2.0))
    assert parts["lesion"] == pytest.approx(2 / 3, abs=1e-6)
    assert total.item() == pytest.approx(base.item() + 2 * 2 / 3, abs=1e-4)
