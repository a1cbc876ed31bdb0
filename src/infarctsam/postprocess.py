"""From probability to lesion mask, and lesion statistics (26-connectivity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.metrics import label_lesions

__all__ = ["LesionStats", "binarize", "label_lesions", "lesion_stats"]

def binarize(
    prob: np.ndarray, brain: np.ndarray, threshold: float, min_lesion_ml: float, voxel_ml: float
) -> np.ndarray:
    """Threshold a probability map inside the brain and drop components smaller than ``min_lesion_ml``.

    Returns a uint8 mask with values 0/1.
    """
    from scipy import ndimage as ndi

    mask = (prob >= threshold) & brain
    lab, n = label_lesions(mask)
    if n:
        sizes = ndi.sum_labels(mask, lab, index=np.arange(1, n + 1)) * voxel_ml
        keep = np.flatnonzero(sizes >= min_lesion_ml) + 1
        mask = np.isin(lab, keep)
    return mask.astype(np.uint8)


@dataclass(frozen=True)
class LesionStats:
    """Volume figures of a lesion mask.

    Attributes
    ----------
    volume_ml : float
        Total lesion volume in mL.
    voxel_count : int
        Number of lesion voxels.
    voxel_volume_ml : float
        Volume of one voxel in mL.
    lesion_count : int
        Connected components (26-connectivity).
    largest_lesion_ml : float
        Volume of the largest component.
    """

    volume_ml: float
    voxel_count: int
    voxel_volume_ml: float
    lesion_count: int
    largest_lesion_ml: float


def lesion_stats(mask: np.ndarray, voxel_ml: float) -> LesionStats:
    """Volume, voxel count, lesion count and largest lesion of a binary mask."""
    from scipy import ndimage as ndi

    m = mask > 0
    lab, n = label_lesions(m)
    largest = float(ndi.sum_labels(m, lab, index=np.arange(1, n + 1)).max()) if n else 0.0
    count = int(m.sum())
    return LesionStats(
        volume_ml=count * voxel_ml,
        voxel_count=count,
        voxel_volume_ml=voxel_ml,
        lesion_count=n,
        largest_lesion_ml=largest * voxel_ml,
    )
