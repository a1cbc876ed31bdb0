"""Plausibility guard on a finished lesion mask (part of the postprocess stage).

A reader must check every automatic result; these checks say which ones to check first. Each returns a sentence
that goes into the case JSON (``warnings``), onto the QC picture, to stderr and into the batch summary:

* the brain mask's volume is not that of an adult brain (:func:`infarctsam.preprocess.brain.brain_plausibility`);
* the lesion volume is an implausible share of the brain (more than ``max_brain_share``; even malignant MCA
  infarcts rarely exceed a third of the brain);
* the lesion pattern is mostly symmetric across the midline (``symmetric_share`` of the lesion volume mirrors onto
  lesion): typical of susceptibility artefacts at the skull base, rare for infarcts;
* lesions come in left-right mirror pairs (:func:`mirrored_pairs`: away from the midline, similar in size, the one's
  mirrored centre within ``pair_distance_mm`` of the other's): the bilateral rims and temporal-pole spots that
  susceptibility artefacts leave at the skull base. On the default engine's masks of the real scans this flags the
  posterior-fossa rims of ISLES'22 case 0034 (pairs at 15-16 mm) and the temporal poles of the native-resolution
  example (10 mm), and none of the unilateral infarcts (0034's cerebellar infarct pairs at best at 22 mm with a
  five times smaller spot; the native example's 60 mL and JHU subject 01's 183 mL infarct have no partner);
* a lesion is not hyperintense on the DWI: its median DWI is below ``min_dwi_ratio`` times the normal-tissue level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.metrics import label_lesions
from infarctsam.preprocess.brain import brain_plausibility
from infarctsam.preprocess.contrast import mirror_x, tissue_ratio


@dataclass(frozen=True)
class GuardConfig:
    """Limits of the plausibility guard (see the module docstring)."""

    max_brain_share: float = 0.35
    symmetric_share: float = 0.5
    symmetric_min_ml: float = 1.0
    pair_distance_mm: float = 18.0
    pair_min_offset_mm: float = 15.0
    pair_max_volume_ratio: float = 4.0
    pair_min_ml: float = 0.3
    min_dwi_ratio: float = 1.15
    min_lesion_ml_checked: float = 0.05


def symmetric_fraction(mask: np.ndarray, brain: np.ndarray) -> float:
    """Share of the lesion voxels whose mirror image across the brain's midline (+- 1 voxel) is lesion too."""
    from scipy import ndimage as ndi

    if not mask.any():
        return 0.0
    xs = np.nonzero(brain)[0]
    centre = float(xs.mean()) if xs.size else (mask.shape[0] - 1) / 2
    mirrored = mirror_x(mask.astype(np.float32), centre) > 0.5
    mirrored = ndi.binary_dilation(mirrored, iterations=1)
    return float((mask & mirrored).sum() / mask.sum())


def mirrored_pairs(mask: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                   config: GuardConfig | None = None) -> list[tuple[float, float]]:
    """Lesions that come in left-right mirror pairs, as ``(left mL, right mL)`` per pair (canonical RAS+ grid); the
    limits are ``pair_*`` of ``config`` (see :func:`infarctsam.postprocess.mirror_pairs`)."""
    from infarctsam.postprocess import MirrorPairs, mirror_pairs

    cfg = config or GuardConfig()
    limits = MirrorPairs(max_distance_mm=cfg.pair_distance_mm, min_offset_mm=cfg.pair_min_offset_mm,
                         max_volume_ratio=cfg.pair_max_volume_ratio, min_ml=cfg.pair_min_ml)
    return [(left_ml, right_ml) for _, _, left_ml, right_ml in mirror_pairs(mask > 0, brain, spacing, limits)[1]]


def plausibility_warnings(mask: np.ndarray, dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                          config: GuardConfig | None = None) -> list[str]:
    """All warnings for one case, on the canonical grid.

    Parameters
    ----------
    mask : numpy.ndarray
        Binary lesion mask.
    dwi : numpy.ndarray
        Normalised DWI (normal tissue ~1).
    brain : numpy.ndarray
        Boolean brain mask.
    spacing : tuple of float
        Voxel size in mm.
    config : GuardConfig, optional
        Limits.

    Returns
    -------
    list of str
        One sentence per finding; empty when the result looks plausible.
    """
    from scipy import ndimage as ndi

    cfg = config or GuardConfig()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out: list[str] = []
    brain_warning = brain_plausibility(brain, spacing)
    if brain_warning:
        out.append(brain_warning)
    m = mask > 0
    lesion_ml = float(m.sum()) * voxel_ml
    brain_ml = float(brain.sum()) * voxel_ml
    if brain_ml > 0 and lesion_ml > cfg.max_brain_share * brain_ml:
        out.append(f"lesion volume {lesion_ml:.1f} mL is {100 * lesion_ml / brain_ml:.0f}% of the brain "
                   f"(more than {100 * cfg.max_brain_share:.0f}%): implausible for an infarct")
    if lesion_ml >= cfg.symmetric_min_ml:
        sym = symmetric_fraction(m, brain)
        if sym >= cfg.symmetric_share:
            out.append(f"{100 * sym:.0f}% of the lesion volume is mirrored on the other hemisphere: a symmetric "
                       "bilateral pattern, more typical of artefacts than of infarcts")
    pairs = mirrored_pairs(m, brain, spacing, cfg)
    if pairs:
        listed = ", ".join(f"{left:.2f} + {right:.2f} mL" for left, right in pairs)
        out.append(f"{len(pairs)} left-right mirror pair{'s' if len(pairs) > 1 else ''} of lesions ({listed}): "
                   "symmetric spots like these are typical of susceptibility artefacts at the skull base (temporal "
                   "poles, posterior fossa) rather than of infarcts; check them")
    lab, n = label_lesions(m)
    if n:
        ratio = tissue_ratio(dwi, brain, spacing, smooth_mm=0.0)
        idx = np.arange(1, n + 1)
        sizes = ndi.sum_labels(m, lab, index=idx) * voxel_ml
        medians = ndi.labeled_comprehension(ratio, lab, idx, np.median, np.float32, 0.0)
        flat = [(s, r) for s, r in zip(sizes, medians, strict=True)
                if s >= cfg.min_lesion_ml_checked and r < cfg.min_dwi_ratio]
        if flat:
            total = sum(s for s, _ in flat)
            out.append(f"{len(flat)} lesion{'s' if len(flat) > 1 else ''} ({total:.2f} mL) not hyperintense on DWI "
                       f"(median below {cfg.min_dwi_ratio:g} x normal tissue)")
    return out
