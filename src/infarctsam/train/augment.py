"""Realistic DWI augmentation, applied to a whole volume and its mask before preprocessing.

Intensity scaling, gamma, a smooth multiplicative bias field, Rician noise, left-right flips, small in-plane
rotations and scaling, and thick-slice simulation (averaging consecutive slices into one, as a thicker acquisition
would). Geometry changes move the mask with the image.
"""

from __future__ import annotations

import numpy as np

from infarctsam.io.volume import Volume
from infarctsam.train.config import AugmentConfig


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float) -> np.ndarray:
    """A smooth multiplicative field ``exp(sum of low-order cosines)`` with about ``amplitude`` peak deviation."""
    coords = [np.linspace(-1, 1, n) for n in shape[:3]]
    grids = np.meshgrid(*coords, indexing="ij")
    field = np.zeros(shape[:3])
    for _ in range(4):
        freq = rng.uniform(0.2, 1.2, size=3)
        phase = rng.uniform(0, 2 * np.pi, size=3)
        field += np.prod([np.cos(np.pi * f * g + p) for f, g, p in zip(freq, grids, phase, strict=True)], axis=0)
    field *= amplitude / max(np.abs(field).max(), 1e-6)
    return np.exp(field)


def rician(rng: np.random.Generator, data: np.ndarray, sigma: float) -> np.ndarray:
    """Rician noise: magnitude of the signal plus complex Gaussian noise of standard deviation ``sigma``."""
    re = data + rng.normal(0, sigma, data.shape)
    im = rng.normal(0, sigma, data.shape)
    return np.sqrt(re * re + im * im)


def _inplane_affine(rng: np.random.Generator, data: np.ndarray, mask: np.ndarray, max_deg: float,
                    scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage as ndi

    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    s = rng.uniform(*scale)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / s
    matrix = np.eye(3)
    matrix[:2, :2] = rot
    centre = (np.array(data.shape[:3]) - 1) / 2
    offset = centre - matrix @ centre
    out = ndi.affine_transform(data, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    m = ndi.affine_transform(mask.astype(np.float32), matrix, offset=offset, order=1, mode="constant") > 0.5
    return out, m


def _thick_slices(data: np.ndarray, mask: np.ndarray, affine: np.ndarray, k: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz = (data.shape[2] // k) * k
    if nz < 2 * k:
        return data, mask, affine
    d = data[:, :, :nz].reshape(data.shape[0], data.shape[1], nz // k, k).mean(-1)
    m = mask[:, :, :nz].reshape(mask.shape[0], mask.shape[1], nz // k, k).mean(-1) > 0.5
    aff = affine.copy()
    aff[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, (k - 1) / 2]) + affine[:3, 3]
    aff[:3, 2] = affine[:3, 2] * k
    return d, m, aff


def augment_case(rng: np.random.Generator, dwi: Volume, mask: np.ndarray, cfg: AugmentConfig
                 ) -> tuple[Volume, np.ndarray]:
    """Augment a DWI volume and its lesion mask.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the run is repeatable from its seed).
    dwi : Volume
        3D DWI.
    mask : numpy.ndarray
        Lesion mask on the DWI grid.
    cfg : AugmentConfig
        Probabilities and ranges.

    Returns
    -------
    (Volume, numpy.ndarray)
        The augmented DWI (possibly on a thicker-slice grid) and its mask (bool).
    """
    data = np.nan_to_num(dwi.data.astype(np.float64), nan=0.0).clip(0, None)
    m = mask > 0
    affine = dwi.affine.copy()
    if rng.random() >= cfg.p:
        return Volume(data.astype(np.float32), affine, meta={"augmented": False}), m
    applied = []
    support = data > 0
    if rng.random() < cfg.p_flip:
        data, m, support = data[::-1].copy(), m[::-1].copy(), support[::-1].copy()
        applied.append("flip")
    if rng.random() < cfg.p_affine:
        data, m = _inplane_affine(rng, data, m, cfg.rotation_deg, cfg.scale)
        support = data > 0
        applied.append("affine")
    ref = float(np.median(data[support])) if support.any() else 1.0
    gamma = rng.uniform(*cfg.gamma)
    data = ref * np.power(data / max(ref, 1e-6), gamma)
    data *= bias_field(rng, data.shape, rng.uniform(0, cfg.bias_amplitude))
    if rng.random() < cfg.p_noise:
        snr = rng.uniform(*cfg.rician_snr)
        noisy = rician(rng, data, ref / snr)
        data = np.where(support, noisy, data) if support.mean() < 0.7 else noisy  # keep skull-stripped zeros
        applied.append(f"noise snr {snr:.0f}")
    data *= rng.uniform(*cfg.intensity_scale)
    if rng.random() < cfg.p_thick_slices:
        k = int(rng.integers(cfg.thick_factor[0], cfg.thick_factor[1] + 1))
        data, m, affine = _thick_slices(data, m, affine, k)
        applied.append(f"thick x{k}")
    applied.append(f"gamma {gamma:.2f}")
    return Volume(data.astype(np.float32), affine, meta={"augmented": True, "augment": applied}), m
