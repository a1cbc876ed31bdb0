"""Scanner effects applied on the output grid: in-plane blur, bias field, texture, Rician noise, scaling, units."""

from __future__ import annotations

from typing import Any

import numpy as np

from infarctsam.synth.config import ADC_UNITS, PhantomConfig

B_VALUE = 1000.0


def log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    """A value whose logarithm is uniform in the range."""
    lo, hi = lo_hi
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(amplitude * f)`` with ``max |f| = 1``: a sum of three separable products of
    low-frequency (0.2 - 1 cycle per field of view) cosines."""
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(3):
        parts = []
        for n in shape:
            t = np.linspace(0.0, 1.0, n, dtype=np.float32)
            parts.append(np.cos(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 2 * np.pi)).astype(np.float32))
        field += rng.normal() * parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
    peak = float(np.abs(field).max())
    if peak > 0:
        field /= peak
    return np.exp(amplitude * field, dtype=np.float32)


def degrade(rng: np.random.Generator, cfg: PhantomConfig, dwi: np.ndarray, adc: np.ndarray, head: np.ndarray,
            brain: np.ndarray, stripped: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply the acquisition to clean output-grid images.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    cfg : PhantomConfig
        Ranges.
    dwi, adc : numpy.ndarray
        Clean DWI (white matter = 1) and ADC (1e-6 mm^2/s) on the output grid.
    head : numpy.ndarray
        bool, where the object has signal (brain, or brain plus skull and scalp); elsewhere ADC is 0 or, for half
        of the unstripped cases, noise (as scanners that compute ADC everywhere store it).
    brain : numpy.ndarray
        bool brain mask; a stripped output is zero outside it.
    stripped : bool
        Skull-stripped output.

    Returns
    -------
    dwi, adc : numpy.ndarray
        Stored DWI (scaled, maybe integer) and ADC in the chosen unit, float32.
    meta : dict
        Values drawn.
    """
    from scipy import ndimage as ndi

    psf = float(rng.uniform(*cfg.psf_sigma_vox))
    if psf > 0.05:
        dwi = ndi.gaussian_filter(dwi, (psf, psf, 0.0))
        adc = ndi.gaussian_filter(adc, (psf, psf, 0.0))
    tex_amp = float(rng.uniform(*cfg.texture))
    if tex_amp > 0:
        fine = ndi.gaussian_filter(rng.standard_normal(dwi.shape, dtype=np.float32), (1.0, 1.0, 0.5))
        coarse = ndi.gaussian_filter(rng.standard_normal(dwi.shape, dtype=np.float32), (3.0, 3.0, 1.5))
        tex = fine / max(float(fine.std()), 1e-6) + coarse / max(float(coarse.std()), 1e-6)
        dwi = dwi * np.clip(1.0 + tex_amp / np.sqrt(2.0) * tex, 0.5, 1.5)
    bias_amp = float(rng.uniform(*cfg.bias))
    dwi = dwi * bias_field(rng, dwi.shape, bias_amp)
    snr = log_uniform(rng, cfg.snr)
    sigma = 1.0 / snr
    clean = np.maximum(dwi, 0.0)
    re = clean + sigma * rng.standard_normal(dwi.shape, dtype=np.float32)
    im = sigma * rng.standard_normal(dwi.shape, dtype=np.float32)
    dwi = np.sqrt(re * re + im * im)
    # ADC = ln(S0 / Sb) / b is computed from the same noisy b=1000 image: its noise mirrors the DWI noise (bright
    # noise -> low ADC); the b=0 image adds a smaller independent part.
    floor = 0.05
    log_ratio = np.log(np.maximum(dwi, floor) / np.maximum(clean, floor))
    s0 = np.maximum(clean, floor) * np.exp(np.minimum(adc, 3500.0) * (B_VALUE * 1e-6))
    adc = adc - 1e6 / B_VALUE * (log_ratio - sigma / s0 * rng.standard_normal(adc.shape, dtype=np.float32))
    adc = np.clip(adc, 0.0, 4000.0)
    adc[~head] = 0.0
    noisy_background = bool(not stripped and rng.random() < 0.5)
    if noisy_background:
        # Some scanners compute ADC everywhere: outside the head it is the log ratio of two Rayleigh noises.
        n = int((~head).sum())
        r0 = np.hypot(rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32))
        rb = np.hypot(rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32))
        adc[~head] = np.clip(1e6 / B_VALUE * np.log(np.maximum(r0, 1e-3) / np.maximum(rb, 1e-3)), -4000.0, 4000.0)
    mask_for_strip = brain
    if stripped and rng.random() < 0.3:
        mask_for_strip = ndi.binary_dilation(brain, iterations=1)
    if stripped:
        dwi[~mask_for_strip] = 0.0
        adc[~mask_for_strip] = 0.0
    scale = log_uniform(rng, cfg.dwi_scale)
    dwi = dwi * scale
    integer = bool(scale > 50 and rng.random() < cfg.p_integer)
    if integer:
        dwi = np.round(dwi)
    unit = str(cfg.adc_units[int(rng.integers(len(cfg.adc_units)))])
    adc = adc * ADC_UNITS[unit]
    meta = {"psf_sigma_vox": psf, "texture": tex_amp, "bias_amplitude": bias_amp, "snr": snr, "dwi_scale": scale,
            "dwi_integer": integer, "adc_background": "noise" if noisy_background else "zero", "adc_unit": unit,
            "adc_to_1e-6": 1.0 / ADC_UNITS[unit], "b_value": B_VALUE}
    return dwi.astype(np.float32), adc.astype(np.float32), meta
