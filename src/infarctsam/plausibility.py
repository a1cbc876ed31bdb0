"""Plausibility guard on a finished lesion mask (part of the postprocess stage).

A reader must check every automatic result; these checks say which ones to check first. Each returns a sentence
that goes into the case JSON (``warnings``), onto the QC picture, to stderr and into the batch summary:

* the brain mask's volume is not that of an adult brain (:func:`infarctsam.preprocess.brain.brain_plausibility`);
* the lesion volume is an implausible share of the brain (more than ``max_brain_share``; even malignant MCA
  infarcts rarely exceed a third of the brain);
* the lesion pattern is mostly symmetric across the midline (``symmetric_share`` of the lesion volume mirrors onto
  lesion): typical of susceptibility artefacts at the skull base, rare for infarcts;
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
            out.append(f"{len(flat)} lesion(s) ({total:.2f} mL) not hyperintense on DWI (median below "
                       f"{cfg.min_dwi_ratio:g} x normal tissue)")
    return out
