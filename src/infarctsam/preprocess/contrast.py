"""Contrast maps derived from the normalised DWI, shared by the threshold engine and the model's input channels.

* :func:`tissue_ratio`: DWI divided by the local level of normal-appearing tissue (a normalised Gaussian average
  over brain voxels that are neither CSF-like nor hyperintense), which absorbs coil bias fields.
* :func:`asymmetry`: DWI (lightly smoothed) divided by its mirror image across the sagittal plane through the
  brain's centre; infarcts are mostly unilateral, while normal bright structures and many artefacts are symmetric.
"""

from __future__ import annotations

import numpy as np


def smooth_in_mask(arr: np.ndarray, weights: np.ndarray, sigma_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Normalised Gaussian average of ``arr`` over voxels weighted by ``weights`` (sigma in mm)."""
    from scipy import ndimage as ndi

    sigma = [sigma_mm / s for s in spacing]
    w = weights.astype(np.float32)
    num = ndi.gaussian_filter(arr.astype(np.float32) * w, sigma)
    den = ndi.gaussian_filter(w, sigma)
    return num / np.maximum(den, 1e-3)


def mirror_x(arr: np.ndarray, centre: float) -> np.ndarray:
    """Reflect a canonical (RAS+) volume across the sagittal plane x = ``centre`` (voxel units), linear interp."""
    from scipy import ndimage as ndi

    if arr.shape[0] < 2:
        return arr
    return ndi.affine_transform(arr, matrix=np.array([-1.0, 1.0, 1.0]), offset=np.array([2 * centre, 0.0, 0.0]),
                                order=1, mode="nearest", output_shape=arr.shape)


def tissue_ratio(dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], adc: np.ndarray | None = None,
                 sigma_mm: float = 15.0, smooth_mm: float = 2.0, csf_below: float = 0.6, csf_adc: float = 1500.0,
                 bright_above: float = 1.3) -> np.ndarray:
    """DWI (smoothed by ``smooth_mm``) over the local normal-tissue level; 1 in normal tissue, > 1 in lesions."""
    tissue = brain & (dwi > csf_below) & (dwi < bright_above)
    if adc is not None:
        tissue &= adc < csf_adc
    if not tissue.any():
        tissue = brain
    level = smooth_in_mask(dwi, tissue, sigma_mm, spacing)
    smooth = smooth_in_mask(dwi, brain, smooth_mm, spacing) if smooth_mm > 0 else dwi
    return (smooth / np.maximum(level, 0.2)).astype(np.float32)


def asymmetry(dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], smooth_mm: float = 2.0) -> np.ndarray:
    """Smoothed DWI over its left-right mirror image about the brain's centre; about 1 where symmetric."""
    smooth = smooth_in_mask(dwi, brain, smooth_mm, spacing) if smooth_mm > 0 else dwi
    xs = np.nonzero(brain)[0]
    centre = float(xs.mean()) if xs.size else (dwi.shape[0] - 1) / 2
    return (smooth / np.maximum(mirror_x(smooth, centre), 0.2)).astype(np.float32)
