"""From probability to lesion mask, and lesion statistics (26-connectivity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.metrics import label_lesions

__all__ = ["LesionStats", "MirrorPairs", "binarize", "label_lesions", "lesion_stats", "mirror_pairs",
           "remove_mirror_pairs"]

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
class MirrorPairs:
    """Limits of a left-right mirror pair of lesions (see :func:`mirror_pairs`).

    Attributes
    ----------
    max_distance_mm : float
        Largest distance between one lesion's centre mirrored across the midline and the other's.
    min_offset_mm : float
        Both centres at least this far from the brain's midline (midline structures are not pairs).
    max_volume_ratio : float
        Largest ratio of the two volumes.
    min_ml : float
        Smallest volume of the two together.
    restricted_adc : float
        With an ADC (x10^-6 mm^2/s), a pair is removed only when the median ADC of both lesions is at least this
        (RAPID's 620): a pair with restricted diffusion may be bilateral infarcts and is kept.
    """

    max_distance_mm: float = 18.0
    min_offset_mm: float = 15.0
    max_volume_ratio: float = 4.0
    min_ml: float = 0.3
    restricted_adc: float = 620.0


def mirror_pairs(mask: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                 limits: MirrorPairs | None = None) -> tuple[np.ndarray, list[tuple[int, int, float, float]]]:
    """Lesions that come in left-right mirror pairs (canonical RAS+ grid).

    A pair is a lesion on each side, both centred at least ``min_offset_mm`` from the brain's midline, at most
    ``max_volume_ratio`` apart in volume, together at least ``min_ml``, whose centres are at most ``max_distance_mm``
    apart once one is mirrored across the midline. Each lesion is in at most one pair (its nearest).

    Returns
    -------
    labels : numpy.ndarray
        The lesion labels (26-connectivity).
    pairs : list of tuple
        ``(left label, right label, left mL, right mL)`` per pair, nearest pairs first.
    """
    from scipy import ndimage as ndi

    lim = limits or MirrorPairs()
    lab, n = label_lesions(mask > 0)
    if n < 2:
        return lab, []
    sp = np.asarray(spacing, dtype=float)
    xs = np.nonzero(brain)[0]
    centre = float(xs.mean()) if xs.size else (mask.shape[0] - 1) / 2
    idx = np.arange(1, n + 1)
    volumes = ndi.sum_labels(np.ones(mask.shape), lab, idx) * float(np.prod(sp)) / 1000.0
    centres = (np.array(ndi.center_of_mass(np.ones(mask.shape), lab, idx)) - [centre, 0.0, 0.0]) * sp
    lateral = np.abs(centres[:, 0]) >= lim.min_offset_mm
    candidates = []
    for i in np.nonzero(lateral & (centres[:, 0] < 0))[0]:
        for j in np.nonzero(lateral & (centres[:, 0] > 0))[0]:
            dist = float(np.linalg.norm(centres[i] * [-1.0, 1.0, 1.0] - centres[j]))
            ratio = max(volumes[i], volumes[j]) / min(volumes[i], volumes[j])
            if dist <= lim.max_distance_mm and ratio <= lim.max_volume_ratio and volumes[i] + volumes[j] >= lim.min_ml:
                candidates.append((dist, int(i), int(j)))
    pairs, used = [], set()
    for _, i, j in sorted(candidates):
        if i not in used and j not in used:
            used |= {i, j}
            pairs.append((i + 1, j + 1, round(float(volumes[i]), 2), round(float(volumes[j]), 2)))
    return lab, pairs


def remove_mirror_pairs(mask: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                        adc: np.ndarray | None = None, limits: MirrorPairs | None = None
                        ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Remove the left-right mirror pairs of lesions that susceptibility artefacts leave at the skull base.

    The bright rims of the temporal poles and of the posterior fossa come in symmetric pairs; infarcts almost never
    do (a unilateral cerebellar or brainstem infarct has no twin and is kept). With an ADC, a pair is removed only
    when neither lesion has restricted diffusion (median ADC >= ``restricted_adc``), so bilateral infarcts stay.

    Parameters
    ----------
    mask : numpy.ndarray
        Binary lesion mask on the canonical grid.
    brain : numpy.ndarray
        Boolean brain mask (its centre is the midline).
    spacing : tuple of float
        Voxel size in mm.
    adc : numpy.ndarray, optional
        ADC in x10^-6 mm^2/s on the same grid.
    limits : MirrorPairs, optional
        What counts as a pair.

    Returns
    -------
    mask : numpy.ndarray
        The mask without the removed pairs (same dtype).
    removed : list of tuple
        ``(left mL, right mL)`` of each removed pair.
    """
    lim = limits or MirrorPairs()
    lab, pairs = mirror_pairs(mask, brain, spacing, lim)
    drop, removed = [], []
    for left, right, v_left, v_right in pairs:
        if adc is not None and min(float(np.median(adc[lab == k])) for k in (left, right)) < lim.restricted_adc:
            continue
        drop += [left, right]
        removed.append((v_left, v_right))
    if not drop:
        return mask, []
    out = mask.copy()
    out[np.isin(lab, drop)] = 0
    return out, removed


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
