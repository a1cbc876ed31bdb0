"""Brain mask from the DWI alone, without any network.

On b=1000 DWI the brain is the largest bright, compact object; the scalp shows up, when the image is not
skull-stripped, as a thin shell separated from the brain by the dark skull and CSF. The method:

1. the head by Otsu's threshold on the log intensity of positive voxels, then a second Otsu threshold inside the
   head that separates bright brain tissue from the dim scalp and noise;
2. the bright part eroded by a few millimetres (an anisotropy-aware ellipsoid) to cut bridges to the scalp;
3. the largest 3D connected component, dilated back (a little further) within a lower intensity bound;
4. holes filled in 3D and slice by slice (ventricles, dark infarct cores are inside the brain).

Skull-stripped inputs (a large exact-zero background) skip the erosion and keep every non-zero voxel of the largest
components. The result is a boolean array on the grid of the input array.
"""

from __future__ import annotations

import numpy as np


def _ellipsoid(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    r = [max(0, int(np.floor(radius_mm / s))) for s in spacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    dist = sum((g * s / max(radius_mm, 1e-6)) ** 2 for g, s in zip(grids, spacing, strict=True))
    return np.asarray(dist <= 1.0)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centers = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def _largest(mask: np.ndarray, keep_fraction: float = 0.0) -> np.ndarray:
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = ndi.sum_labels(mask, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= max(sizes.max() * keep_fraction, 1)) + 1
    if keep_fraction <= 0:
        keep = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(lab, keep)


def _fill(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    out = ndi.binary_fill_holes(mask)
    for z in range(out.shape[2]):
        if out[:, :, z].any():
            out[:, :, z] = ndi.binary_fill_holes(out[:, :, z])
    return out


def is_skull_stripped(data: np.ndarray) -> bool:
    """True when at least 30% of voxels are exactly zero (background removed by a previous skull strip)."""
    return bool(np.mean(data == 0) >= 0.3)


def brain_mask(data: np.ndarray, spacing: tuple[float, float, float], erode_mm: float = 3.0) -> np.ndarray:
    """Compute a brain mask from a DWI volume.

    Parameters
    ----------
    data : numpy.ndarray
        3D DWI (any positive scale), axial slices along the last axis.
    spacing : tuple of float
        Voxel size in mm.
    erode_mm : float
        Radius of the erosion that separates brain from scalp on non-skull-stripped images.

    Returns
    -------
    numpy.ndarray
        Boolean brain mask, same shape as ``data``. Empty only when the image has no foreground.
    """
    from scipy import ndimage as ndi

    d = np.nan_to_num(np.asarray(data, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    pos = d[d > 0]
    if pos.size < 8:
        return np.zeros(d.shape, dtype=bool)
    lo, hi = np.percentile(pos, [0.5, 99.5])
    logs = np.log(np.clip(pos, max(lo, 1e-6), hi))
    thr = float(np.exp(_otsu(logs)))
    if is_skull_stripped(d):
        fg = d > max(lo, 0.1 * thr)
        fg = ndi.binary_opening(fg, structure=_ellipsoid(min(spacing) * 1.01, spacing))
        mask = _largest(fg, keep_fraction=0.05)
        return _fill(mask)
    # Not skull-stripped: a second Otsu threshold inside the head separates bright brain from dim scalp and noise.
    head = d[d > thr]
    t2 = _otsu(np.clip(head, None, np.percentile(head, 99.5))) if head.size > 8 else thr
    core = ndi.binary_erosion(d > 0.6 * t2, structure=_ellipsoid(erode_mm, spacing))
    core = _largest(core) if core.any() else _largest(d > 0.6 * t2)
    mask = ndi.binary_dilation(core, structure=_ellipsoid(erode_mm + 1.5, spacing)) & (d > 0.3 * t2)
    return _fill(_largest(mask))
