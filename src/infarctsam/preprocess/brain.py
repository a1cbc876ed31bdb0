"""Brain mask from the DWI alone, without any network.

Two kinds of input reach infarctsam: skull-stripped research scans (the background is exactly zero) and routine
clinical scans with the whole head, a noisy background and sometimes a rotated field of view (exact zeros outside
it). The method:

1. **Skull-stripped?** Only when at least 30% of the voxels are exactly zero *and* the non-zero voxels make up no
   more than a brain-sized volume (2,500 mL). A rotated field of view also has many exact zeros, but its non-zero
   part is the whole noisy field of view, far larger than any brain; such a scan takes the full-head path.
2. **Skull-stripped path:** every non-zero voxel of the largest components, lightly opened, holes filled.
3. **Full-head path:**

   a. a noise threshold by Otsu's method on the log intensity of the positive voxels;
   b. the brain-tissue level, found iteratively: threshold the image, erode by ``erode_mm`` (an anisotropy-aware
      ellipsoid) to cut the bridges to scalp, face and neck, keep the largest 3D component and take its median
      intensity; the threshold becomes ``tissue_fraction`` of that level (never below the noise threshold) and the
      loop repeats until it settles. A bright infarct or a bright skull-base artefact shifts a median far less than
      it shifts a second Otsu threshold, which is why the level, not a histogram split, sets the threshold;
   c. the eroded core of that final threshold, dilated back by a little more than the erosion inside it;
   d. an in-plane closing (``close_mm``) that takes in the sulcal CSF, and holes filled in 3D and slice by slice
      (ventricles, dark infarct cores are inside the brain).

The result is a boolean array on the grid of the input array. :func:`brain_plausibility` says whether its volume is
that of an adult brain for the field of view the scan covers.
"""

from __future__ import annotations

import numpy as np

SKULL_STRIPPED_MAX_ML = 2500.0
ADULT_BRAIN_ML = (900.0, 1900.0)
WHOLE_BRAIN_EXTENT_MM = 110.0


def _ellipsoid(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    r = [max(0, int(np.floor(radius_mm / s))) for s in spacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    dist = sum((g * s / max(radius_mm, 1e-6)) ** 2 for g, s in zip(grids, spacing, strict=True))
    return np.asarray(dist <= 1.0)


def _disk(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """An in-plane disk (one slice thick) of ``radius_mm``."""
    rx, ry = (max(0, int(np.floor(radius_mm / s))) for s in spacing[:2])
    gx, gy = np.ogrid[-rx:rx + 1, -ry:ry + 1]
    return np.asarray((gx * spacing[0]) ** 2 + (gy * spacing[1]) ** 2 <= radius_mm ** 2)[:, :, None]


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


def is_skull_stripped(data: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """True when the background was removed by a previous skull strip.

    At least 30% of the voxels are exactly zero and the non-zero voxels hold no more than 2,500 mL (a rotated
    field of view has exact zeros too, but its non-zero part is the whole field of view).
    """
    nonzero_ml = float(np.count_nonzero(data)) * float(np.prod(spacing)) / 1000.0
    return bool(np.mean(data == 0) >= 0.3 and nonzero_ml <= SKULL_STRIPPED_MAX_ML)


def _tissue_threshold(d: np.ndarray, noise_thr: float, spacing: tuple[float, float, float], erode_mm: float,
                      tissue_fraction: float) -> float:
    """Iterate threshold -> eroded largest component -> median tissue level -> threshold until it settles."""
    from scipy import ndimage as ndi

    ell = _ellipsoid(erode_mm, spacing)
    t = noise_thr
    for _ in range(6):
        fg = d > t
        core = ndi.binary_erosion(fg, structure=ell)
        core = _largest(core) if core.any() else _largest(fg)
        if not core.any():
            return t
        t_new = max(noise_thr, tissue_fraction * float(np.median(d[core])))
        settled = abs(t_new - t) <= 0.02 * t
        t = t_new
        if settled:
            break
    return t


def brain_mask(data: np.ndarray, spacing: tuple[float, float, float], erode_mm: float = 5.0,
               tissue_fraction: float = 0.3, close_mm: float = 6.0) -> np.ndarray:
    """Compute a brain mask from a DWI volume.

    Parameters
    ----------
    data : numpy.ndarray
        3D DWI (any positive scale), axial slices along the last axis.
    spacing : tuple of float
        Voxel size in mm.
    erode_mm : float
        Radius of the erosion that separates brain from scalp, face and neck on full-head images.
    tissue_fraction : float
        The brain threshold as a fraction of the median brain-tissue intensity (full-head images).
    close_mm : float
        Radius of the in-plane closing that takes in sulcal CSF (full-head images).

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
    noise_thr = float(np.exp(_otsu(np.log(np.clip(pos, max(lo, 1e-6), hi)))))
    if is_skull_stripped(d, spacing):
        fg = d > max(lo, 0.1 * noise_thr)
        fg = ndi.binary_opening(fg, structure=_ellipsoid(min(spacing) * 1.01, spacing))
        return _fill(_largest(fg, keep_fraction=0.05))
    t = _tissue_threshold(d, noise_thr, spacing, erode_mm, tissue_fraction)
    fg = d > t
    core = ndi.binary_erosion(fg, structure=_ellipsoid(erode_mm, spacing))
    core = _largest(core) if core.any() else _largest(fg)
    mask = _largest(ndi.binary_dilation(core, structure=_ellipsoid(erode_mm + 1.0, spacing)) & fg)
    if close_mm > 0 and mask.any():
        mask = ndi.binary_closing(mask, structure=_disk(close_mm, spacing), border_value=0)
    return _fill(mask)


def brain_plausibility(brain: np.ndarray, spacing: tuple[float, float, float]) -> str | None:
    """A warning when the brain mask's volume is not that of an adult brain, else None.

    A scan whose brain mask spans at least 110 mm from top to bottom is taken as whole-brain coverage and must hold
    900-1,900 mL. A partial slab must hold no more than a whole brain, and at least 40% of the whole-brain minimum
    scaled by the fraction of 110 mm it covers.

    Parameters
    ----------
    brain : numpy.ndarray
        Boolean brain mask on the canonical (RAS+) grid, axial slices along the last axis.
    spacing : tuple of float
        Voxel size in mm.

    Returns
    -------
    str or None
        One sentence for the JSON, the QC picture and stderr; None when the volume is plausible.
    """
    ml = float(brain.sum()) * float(np.prod(spacing)) / 1000.0
    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    extent = float((zs[-1] - zs[0] + 1) * spacing[2]) if zs.size else 0.0
    lo, hi = ADULT_BRAIN_ML
    if extent >= WHOLE_BRAIN_EXTENT_MM:
        if lo <= ml <= hi:
            return None
        return (f"brain mask {ml:.0f} mL is outside the adult whole-brain range {lo:.0f}-{hi:.0f} mL: "
                "brain extraction may have failed; check the QC picture")
    if ml > hi:
        return (f"brain mask {ml:.0f} mL over a {extent:.0f} mm slab exceeds a whole adult brain: "
                "brain extraction may have failed; check the QC picture")
    if ml < 0.4 * lo * extent / WHOLE_BRAIN_EXTENT_MM:
        return (f"brain mask {ml:.0f} mL is small for the {extent:.0f} mm the scan covers: "
                "brain extraction may have failed; check the QC picture")
    return None
