"""Training losses: focal + Dice on the masks, IoU-prediction and object-score terms (as SAM 2 trains), and an
optional lesion-wise recall term that counts lesions, not voxels (a 2-voxel embolus weighs as much as a territorial
infarct)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (SAM 2 uses 20 : 1 : 1 : 1 for focal, Dice, IoU and object score; ``lesion``, the
    lesion-wise recall term, is 0 unless a training configuration asks for it)."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    obj: float = 1.0
    lesion: float = 0.0


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Per-sample mean sigmoid focal loss, ``[B]``."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(1).mean(1)


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Per-sample soft Dice loss, ``[B]``."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    return 1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)


def component_labels(target: Tensor) -> Tensor:
    """8-connected lesion components of each ``[B, 1, S, S]`` 0/1 mask, numbered 1.. across the whole batch
    (0 = background), as an int64 tensor of the same shape on the target's device."""
    from scipy import ndimage as ndi

    masks = target.detach().cpu().numpy()[:, 0] > 0.5
    out = np.zeros(masks.shape, dtype=np.int64)
    offset = 0
    for i, m in enumerate(masks):
        lab, n = ndi.label(m, structure=np.ones((3, 3), dtype=bool))
        out[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return torch.from_numpy(out[:, None]).to(target.device)


def lesion_recall_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over the lesion components of the batch of ``1 - soft recall`` of each component (0 when none).

    Every component counts once whatever its size, so the few voxels of a small embolic lesion weigh as much as a
    large infarct; false positives are left to the focal and Dice terms.
    """
    labels = component_labels(target).flatten()
    n = int(labels.max())
    if n == 0:
        return logits.sum() * 0.0
    p = torch.sigmoid(logits).flatten()
    hit = torch.zeros(n + 1, device=logits.device, dtype=p.dtype).scatter_add_(0, labels, p)
    size = torch.bincount(labels, minlength=n + 1).to(p.dtype)
    return (1.0 - hit[1:] / size[1:]).mean()


def segmentation_loss(mask_logits: Tensor, iou_pred: Tensor, obj_logits: Tensor, target: Tensor,
                      weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, float]]:
    """Loss of one decoded batch of slices.

    The focal term applies to every slice (it also suppresses false positives on lesion-free slices); Dice and IoU
    terms only to slices holding lesion; the object score learns whether the slice holds lesion.

    Parameters
    ----------
    mask_logits : Tensor
        ``[B, 1, S, S]`` mask logits.
    iou_pred : Tensor
        ``[B, 1]`` predicted IoU.
    obj_logits : Tensor
        ``[B, 1]`` object-score logits.
    target : Tensor
        ``[B, 1, S, S]`` 0/1 masks.

    Returns
    -------
    (Tensor, dict)
        Total loss and its parts (floats, for logging).
    """
    present = (target.flatten(1).amax(1) > 0).float()
    logits = mask_logits.float().clamp(-50, 50)
    focal = focal_loss(logits, target).mean()
    n_present = present.sum().clamp(min=1.0)
    dice = (dice_loss(logits, target) * present).sum() / n_present
    with torch.no_grad():
        pred = (logits > 0).flatten(1).float()
        t = target.flatten(1)
        inter = (pred * t).sum(1)
        union = (pred + t).clamp(max=1).sum(1)
        actual_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    iou = ((iou_pred[:, 0].float() - actual_iou).abs() * present).sum() / n_present
    obj = F.binary_cross_entropy_with_logits(obj_logits[:, 0].float(), present)
    total = weights.focal * focal + weights.dice * dice + weights.iou * iou + weights.obj * obj
    named = [("focal", focal), ("dice", dice), ("iou", iou), ("obj", obj)]
    if weights.lesion > 0:
        lesion = lesion_recall_loss(logits, target)
        total = total + weights.lesion * lesion
        named.append(("lesion", lesion))
    parts = {k: float(v.detach()) for k, v in named}
    return total, parts
