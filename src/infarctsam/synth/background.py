"""Painting library infarcts into a real DWI (and ADC) instead of the template.

Alignment is deliberately simple: an axis-aligned affine (per world axis a scale and a shift) that maps the bounding
box of the subject's brain mask (2nd-98th percentile of its voxel world coordinates) onto that of the MNI152 brain.
It ignores head rotation, so it suits roughly RAS-aligned, whole-brain images; an axis on which the mask touches the
edge of the field of view (a slab) takes the mean scale of the other axes and is aligned by its complete end. The
lesion (real SOOP shape, restricted to template tissue, with the same texture and soft edge as in template mode) is
sampled onto the subject grid with a box slice profile, then restricted to the subject's own tissue (brain minus CSF,
CSF from ADC > 1500e-6 mm^2/s or, without ADC, from dark DWI). DWI and ADC of the subject are multiplied by the
lesion gains; no noise or scaling is added (the image is already real). Use stroke-free backgrounds: an infarct
already in the image would be unlabelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infarctsam.errors import InputError
from infarctsam.io.volume import Volume
from infarctsam.synth import contrast, geometry
from infarctsam.synth.config import ADC_UNITS, PhantomConfig
from infarctsam.synth.library import MNI_AFFINE, LesionSample
from infarctsam.synth.result import Phantom, assemble_phantom
from infarctsam.synth.template import Template, load_template


def derive_brain_mask(dwi: np.ndarray) -> np.ndarray:
    """A rough brain mask of a DWI: threshold at 30 % of the 98th percentile, largest component, holes filled."""
    from scipy import ndimage as ndi

    pos = dwi[np.isfinite(dwi) & (dwi > 0)]
    if pos.size == 0:
        raise InputError("background DWI holds no positive voxels")
    mask = dwi > 0.3 * np.percentile(pos, 98)
    mask = ndi.binary_opening(mask, iterations=2)
    labels, n = ndi.label(mask)
    if n == 0:
        raise InputError("no brain found in the background DWI (give background_brain)")
    mask = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
    return ndi.binary_fill_holes(mask)


def adc_scale_to_1e6(adc: np.ndarray, brain: np.ndarray) -> float:
    """Factor turning stored ADC into 1e-6 mm^2/s, from the brain median (~800 in those units)."""
    vals = adc[brain & np.isfinite(adc) & (adc > 0)]
    if vals.size == 0:
        raise InputError("background ADC holds no positive values inside the brain")
    med = float(np.median(vals))
    if med < 0.05:
        return 1e6
    if med < 20.0:
        return 1e3
    return 1.0


def fit_mni_affine(brain: np.ndarray, affine: np.ndarray, tpl: Template) -> tuple[np.ndarray, dict[str, Any]]:
    """World-to-MNI 4x4 matrix matching brain-mask bounding boxes per world axis (see module docstring)."""
    idx = np.argwhere(brain)
    if len(idx) < 100:
        raise InputError("background brain mask is too small to align the template")
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    t_idx = np.argwhere(tpl.brain)
    mni = t_idx @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]
    s_lo, s_hi = np.percentile(world, [2, 98], axis=0)
    m_lo, m_hi = np.percentile(mni, [2, 98], axis=0)
    # Which world axes are cut by the field of view (mask touches the grid's first or last index there)?
    cut_lo = np.zeros(3, bool)
    cut_hi = np.zeros(3, bool)
    for v in range(3):
        w = int(np.argmax(np.abs(affine[:3, v])))
        sign = np.sign(affine[w, v])
        first = bool(idx[:, v].min() == 0)
        last = bool(idx[:, v].max() == brain.shape[v] - 1)
        cut_lo[w] |= first if sign > 0 else last
        cut_hi[w] |= last if sign > 0 else first
    scale = (m_hi - m_lo) / np.maximum(s_hi - s_lo, 1e-3)
    whole = ~(cut_lo | cut_hi)
    mean_scale = float(np.mean(scale[whole])) if whole.any() else 1.0
    shift = np.zeros(3)
    for a in range(3):
        if whole[a]:
            shift[a] = 0.5 * (m_lo[a] + m_hi[a]) - scale[a] * 0.5 * (s_lo[a] + s_hi[a])
            continue
        scale[a] = mean_scale
        if not cut_hi[a]:
            shift[a] = m_hi[a] - scale[a] * s_hi[a]
        elif not cut_lo[a]:
            shift[a] = m_lo[a] - scale[a] * s_lo[a]
        else:
            shift[a] = 0.5 * (m_lo[a] + m_hi[a]) - scale[a] * 0.5 * (s_lo[a] + s_hi[a])
    out = np.eye(4)
    out[:3, :3] = np.diag(scale)
    out[:3, 3] = shift
    return out, {"scale": scale.tolist(), "shift_mm": shift.tolist(), "cut_axes": (~whole).tolist()}


def paint_background(rng: np.random.Generator, seed: int, cfg: PhantomConfig,
                     lesions: list[tuple[LesionSample, contrast.LesionContrast]], background: Volume,
                     background_adc: Volume | None, background_brain: Volume | np.ndarray | None) -> Phantom:
    """Implementation of :func:`infarctsam.synth.make_phantom` with a real background."""
    dwi = np.asarray(background.data, dtype=np.float32)
    if dwi.ndim != 3:
        raise InputError(f"background DWI must be 3D (the b=1000 trace), got shape {dwi.shape}")
    dwi = np.nan_to_num(dwi, nan=0.0, posinf=0.0, neginf=0.0)
    brain = _brain(background, background_brain, dwi)
    tpl = load_template()
    w2m, fit = fit_mni_affine(brain, background.affine, tpl)
    grid = geometry.SliceGrid(background.spatial_shape, np.asarray(background.affine, float), background.spacing[2])
    w2s = np.linalg.inv(tpl.affine) @ w2m
    coords = geometry.source_coordinates(grid, w2s, w2m, tpl.affine, None)
    med = float(np.median(dwi[brain])) if brain.any() else 1.0
    if background_adc is not None:
        if background_adc.spatial_shape != background.spatial_shape:
            raise InputError("background ADC is not on the DWI grid")
        adc_raw = np.nan_to_num(np.asarray(background_adc.data, dtype=np.float32))
        to_1e6 = adc_scale_to_1e6(adc_raw, brain)
        adc = adc_raw * to_1e6
        csf = brain & (adc > 1500.0)
        unit = _unit_of(to_1e6)
    else:
        csf = brain & (dwi < 0.5 * med)
        unit = str(cfg.adc_units[int(rng.integers(len(cfg.adc_units)))])
        adc = _template_adc(rng, cfg, tpl, coords, dwi / max(med, 1e-6), brain)
    tissue = brain & ~csf
    canvas = contrast.paint_lesions(rng, tpl, lesions, 0.0, MNI_AFFINE)
    fraction = np.zeros(grid.shape, np.float32)
    dwi_gain = np.zeros(grid.shape, np.float32)
    adc_gain = np.zeros(grid.shape, np.float32)
    if canvas is not None:
        fraction = geometry.resample_sparse(canvas.fraction, canvas.lo, coords) * tissue
        dwi_gain = geometry.resample_sparse(canvas.dwi_gain, canvas.lo, coords) * tissue
        adc_gain = geometry.resample_sparse(canvas.adc_gain, canvas.lo, coords) * tissue
    lesion = fraction >= 0.5
    dwi_out = dwi * (1.0 + dwi_gain)
    adc_out = np.clip(adc * (1.0 + adc_gain), 0.0, None) / ADC_UNITS_TO_1E6[unit]
    vox_ml = background.voxel_volume_ml
    meta: dict[str, Any] = {
        "generator": "infarctsam.synth", "mode": "background", "seed": int(seed),
        "background": str(background.source) if background.source else None,
        "lesion_ids": [les.lesion_id for les, _ in lesions],
        "lesion_volume_ml": float(lesion.sum() * vox_ml),
        "n_lesions": len(lesions),
        "lesions": [{"id": les.lesion_id, "territory": les.territory_name, "volume_ml_mni": les.volume_ml,
                     "dwi_ratio": con.dwi_ratio, "adc_ratio": con.adc_ratio, "pseudonormal": con.pseudonormal}
                    for les, con in lesions],
        "alignment": fit, "adc_synthetic": background_adc is None, "adc_unit": unit,
        "adc_to_1e-6": ADC_UNITS_TO_1E6[unit], "shape": list(grid.shape), "spacing_mm": list(grid.spacing),
        "b_value": float(background.meta.get("b_value") or 1000.0),
    }
    ph = assemble_phantom(background.affine, dwi_out.astype(np.float32), adc_out.astype(np.float32), lesion, brain,
                          meta)
    for vol in (ph.dwi, ph.adc, ph.lesion, ph.brain):
        vol.header = background.header
    return ph


ADC_UNITS_TO_1E6 = {unit: 1.0 / per for unit, per in ADC_UNITS.items()}


def _unit_of(to_1e6: float) -> str:
    return min(ADC_UNITS_TO_1E6, key=lambda u: abs(np.log(ADC_UNITS_TO_1E6[u] / to_1e6)))


def _brain(background: Volume, given: Volume | np.ndarray | None, dwi: np.ndarray) -> np.ndarray:
    if given is None:
        return derive_brain_mask(dwi)
    arr = np.asarray(given.data if isinstance(given, Volume) else given)
    if arr.shape[:3] != dwi.shape:
        raise InputError(f"background brain mask shape {arr.shape} does not match the DWI {dwi.shape}")
    mask = arr.reshape(dwi.shape) > 0
    if not mask.any():
        raise InputError("background brain mask is empty")
    return mask


def _template_adc(rng: np.random.Generator, cfg: PhantomConfig, tpl: Template, coords: list[np.ndarray],
                  dwi_norm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """An ADC for a DWI-only background: CSF from dark DWI, GM share from the aligned template."""
    tc = contrast.sample_tissue_contrast(rng, cfg, skull=False)
    lo, hi = geometry.coordinate_box(coords, tpl.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    gm = geometry.resample(np.ascontiguousarray(tpl.gm[sl]), coords, lo)
    wm = geometry.resample(np.ascontiguousarray(tpl.wm[sl]), coords, lo)
    gm_share = gm / np.maximum(gm + wm, 1e-3)
    csf = np.clip((0.65 - dwi_norm) / 0.3, 0.0, 1.0)
    tissue_adc = tc.adc_gm * gm_share + tc.adc_wm * (1.0 - gm_share)
    adc = csf * tc.adc_csf + (1.0 - csf) * tissue_adc + rng.normal(0.0, 30.0, size=dwi_norm.shape)
    return np.where(brain, np.clip(adc, 0.0, None), 0.0).astype(np.float32)
