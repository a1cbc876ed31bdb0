"""Tissue and infarct contrast on the 1 mm template grid (before acquisition).

Normal DWI (relative to white matter = 1) and ADC (1e-6 mm^2/s) are linear mixtures of the GM/WM/CSF fractions.
Infarcts multiply the *tissue* part of a voxel (never its CSF part): DWI by ``1 + (ratio - 1) * f * T`` and ADC by
``1 - (1 - ratio) * f * T'``, where ``f`` is the soft lesion fraction (the real mask restricted to voxels that are at
least half tissue, blurred by a sub-millimetre edge) and ``T``, ``T'`` smooth random textures. Old cavitated infarcts
(not labelled) and susceptibility pile-up at the skull base (bright DWI, ADC unchanged) are optional distractors.
Skull and scalp, when present, are shells at a distance outside the brain: extra-axial CSF, dark bone, scalp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from infarctsam.synth.config import PhantomConfig
from infarctsam.synth.library import LesionSample
from infarctsam.synth.template import OUTSIDE_CODE_PER_MM, Template, grid_index_map


@dataclass(frozen=True)
class TissueContrast:
    """Per-case normal-tissue values: DWI relative to WM, ADC in 1e-6 mm^2/s, sulcal atrophy."""

    dwi_gm: float
    dwi_csf: float
    adc_gm: float
    adc_wm: float
    adc_csf: float
    atrophy: float
    skull: dict[str, float] = field(default_factory=dict)

    def as_meta(self) -> dict[str, float]:
        """Values for the phantom's metadata."""
        return {"dwi_gm_wm": self.dwi_gm, "dwi_csf_wm": self.dwi_csf, "adc_gm": self.adc_gm, "adc_wm": self.adc_wm,
                "adc_csf": self.adc_csf, "atrophy": self.atrophy}


def sample_tissue_contrast(rng: np.random.Generator, cfg: PhantomConfig, skull: bool) -> TissueContrast:
    """Draw normal-tissue contrasts (and skull/scalp layer thicknesses and signals when ``skull``)."""
    shells: dict[str, float] = {}
    if skull:
        shells = {"csf_mm": rng.uniform(1.0, 3.0), "bone_mm": rng.uniform(4.0, 8.0), "scalp_mm": rng.uniform(4.0, 9.0),
                  "bone_dwi": rng.uniform(0.0, 0.06), "scalp_dwi": rng.uniform(0.05, 0.3),
                  "bone_adc": rng.uniform(200.0, 900.0), "scalp_adc": rng.uniform(900.0, 1800.0)}
    return TissueContrast(float(rng.uniform(*cfg.dwi_gm_wm)), float(rng.uniform(*cfg.dwi_csf_wm)),
                          float(rng.uniform(*cfg.adc_gm)), float(rng.uniform(*cfg.adc_wm)),
                          float(rng.uniform(*cfg.adc_csf)), float(rng.uniform(*cfg.atrophy)), shells)


def tissue_fractions(tpl: Template, lo: np.ndarray, hi: np.ndarray, atrophy: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM, CSF fractions in a template box after sulcal widening (partial tissue fractions are reduced)."""
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    gm, wm, brain = tpl.gm[sl], tpl.wm[sl], tpl.brain[sl]
    if atrophy > 0:
        table = np.power(np.maximum(np.arange(256, dtype=np.float32) / 255.0, 1e-6), 2.0 * atrophy,
                         dtype=np.float32)
        shrink = table[tpl.tissue_code[sl]]
        gm = gm * shrink
        wm = wm * shrink
    csf = np.where(brain, 1.0 - gm - wm, 0.0).astype(np.float32)
    return gm, wm, csf


@dataclass
class LesionCanvas:
    """Infarct fields on a template-grid box.

    Attributes
    ----------
    lo : numpy.ndarray
        Template index of the box corner.
    fraction : numpy.ndarray
        Soft fraction of labelled (acute/subacute) infarcted tissue per voxel, max over lesions.
    dwi_gain, adc_gain : numpy.ndarray
        Multiplicative change minus one of the tissue DWI and ADC (all lesions, old ones included).
    label : numpy.ndarray
        bool union of the labelled infarcts restricted to tissue, before blurring (the phantom's ground truth at
        1 mm, before acquisition).
    """

    lo: np.ndarray
    fraction: np.ndarray
    dwi_gain: np.ndarray
    adc_gain: np.ndarray
    label: np.ndarray

    @property
    def hi(self) -> np.ndarray:
        """Exclusive upper corner."""
        return self.lo + np.array(self.fraction.shape)


@dataclass(frozen=True)
class LesionContrast:
    """Contrast of one lesion; ``old`` lesions are chronic cavities and are not labelled."""

    dwi_ratio: float
    adc_ratio: float
    heterogeneity: float
    edge_mm: float
    pseudonormal: bool = False
    old: bool = False


def sample_lesion_contrast(rng: np.random.Generator, cfg: PhantomConfig, old: bool = False) -> LesionContrast:
    """Draw one lesion's DWI/ADC ratios (DWI log-uniform, so faint lesions are frequent)."""
    het = float(rng.uniform(*cfg.heterogeneity))
    edge = float(rng.uniform(*cfg.edge_mm))
    if old:
        return LesionContrast(float(rng.uniform(0.35, 0.8)), float(rng.uniform(1.6, 3.0)), het, edge, False, True)
    if rng.random() < cfg.p_pseudonormal:
        d_lo, d_hi = cfg.pseudonormal_dwi_ratio
        return LesionContrast(float(np.exp(rng.uniform(np.log(d_lo), np.log(d_hi)))),
                              float(rng.uniform(*cfg.pseudonormal_adc_ratio)), het, edge, True)
    d_lo, d_hi = cfg.dwi_ratio
    return LesionContrast(float(np.exp(rng.uniform(np.log(d_lo), np.log(d_hi)))), float(rng.uniform(*cfg.adc_ratio)),
                          het, edge)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    from scipy import ndimage as ndi

    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="reflect")
    sd = float(noise.std())
    return noise / sd if sd > 0 else noise


def paint_lesions(rng: np.random.Generator, tpl: Template, lesions: list[tuple[LesionSample, LesionContrast]],
                  atrophy: float, src_affine: np.ndarray) -> LesionCanvas | None:
    """Place lesions on the template grid and build their soft fractions, gains and labels.

    ``src_affine`` is the affine of the lesions' MNI grid (the SOOP grid); lesions are mapped onto the template grid
    by an integer index shift. Returns None without lesions.
    """
    from scipy import ndimage as ndi

    if not lesions:
        return None
    sign, off = grid_index_map(src_affine, tpl.affine)
    placed = []
    for lesion, con in lesions:
        crop = lesion.crop
        lo = np.empty(3, dtype=int)
        for a in range(3):
            if sign[a] < 0:
                crop = np.flip(crop, axis=a)
                lo[a] = off[a] - (lesion.offset[a] + lesion.crop.shape[a] - 1)
            else:
                lo[a] = off[a] + lesion.offset[a]
        pad = int(np.ceil(3 * max(con.edge_mm, 1.0))) + 2
        placed.append((np.ascontiguousarray(crop), lo, pad, con))
    shape = np.array(tpl.shape)
    box_lo = np.clip(np.min([lo - pad for _, lo, pad, _ in placed], axis=0), 0, shape)
    box_hi = np.clip(np.max([lo + np.array(c.shape) + pad for c, lo, pad, _ in placed], axis=0), 0, shape)
    size = tuple(int(s) for s in box_hi - box_lo)
    gm, wm, _ = tissue_fractions(tpl, box_lo, box_hi, atrophy)
    tissue_frac = gm + wm
    tissue = tissue_frac >= 0.5
    fraction = np.zeros(size, np.float32)
    dwi_gain = np.zeros(size, np.float32)
    adc_gain = np.zeros(size, np.float32)
    label = np.zeros(size, bool)
    for crop, lo, pad, con in placed:
        a_lo = np.maximum(lo - pad, box_lo)
        a_hi = np.minimum(lo + np.array(crop.shape) + pad, box_hi)
        local = np.zeros(tuple(a_hi - a_lo), bool)
        src_lo = np.maximum(a_lo - lo, 0)
        dst_lo = np.maximum(lo - a_lo, 0)
        n = np.minimum(np.array(crop.shape) - src_lo, np.array(local.shape) - dst_lo)
        if np.any(n <= 0):
            continue
        local[tuple(slice(d, d + k) for d, k in zip(dst_lo, n, strict=True))] = \
            crop[tuple(slice(s, s + k) for s, k in zip(src_lo, n, strict=True))]
        box_sl = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(a_lo, box_lo, a_hi, strict=True))
        local &= tissue[box_sl]
        if not local.any():
            continue
        frac = ndi.gaussian_filter(local.astype(np.float32), con.edge_mm)
        core = ndi.gaussian_filter(local.astype(np.float32), 3.0)
        tex = 1.0 + con.heterogeneity * _smooth_noise(rng, local.shape, float(rng.uniform(1.5, 4.0)))
        tex *= 1.0 + float(rng.uniform(-0.15, 0.3)) * (core - 0.5)
        tex = np.clip(tex, 0.3, 1.8)
        tex_adc = np.clip(1.0 + 0.5 * (tex - 1.0) + 0.5 * con.heterogeneity
                          * _smooth_noise(rng, local.shape, 2.0), 0.3, 1.8)
        d_gain = (con.dwi_ratio - 1.0) * frac * tex
        a_gain = (con.adc_ratio - 1.0) * frac * tex_adc
        if con.old:
            free = fraction[box_sl] < 0.05
            dwi_gain[box_sl] = np.where(free, np.minimum(dwi_gain[box_sl], d_gain), dwi_gain[box_sl])
            adc_gain[box_sl] = np.where(free, np.maximum(adc_gain[box_sl], a_gain), adc_gain[box_sl])
            continue
        np.maximum(dwi_gain[box_sl], d_gain, out=dwi_gain[box_sl])
        # The labelled fraction is infarcted *tissue* per voxel: CSF sharing a voxel with the lesion does not count.
        frac_tissue = frac * tissue_frac[box_sl]
        adc_gain[box_sl] = np.where(frac_tissue > fraction[box_sl], a_gain, adc_gain[box_sl])
        np.maximum(fraction[box_sl], frac_tissue, out=fraction[box_sl])
        label[box_sl] |= local
    np.maximum(adc_gain, -0.95, out=adc_gain)
    return LesionCanvas(box_lo, fraction, dwi_gain, adc_gain, label)


def render_source(tpl: Template, lo: np.ndarray, hi: np.ndarray, tc: TissueContrast, canvas: LesionCanvas | None,
                  artefacts: list[tuple[np.ndarray, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Clean DWI (WM = 1) and ADC (1e-6 mm^2/s) on a template box.

    ``artefacts`` are (template-index centre, sigma in mm, gain) blobs of susceptibility pile-up.
    """
    gm, wm, csf = tissue_fractions(tpl, lo, hi, tc.atrophy)
    tissue_dwi = tc.dwi_gm * gm + wm
    tissue_adc = tc.adc_gm * gm + tc.adc_wm * wm
    if canvas is not None:
        c_lo = np.maximum(canvas.lo, lo)
        c_hi = np.minimum(canvas.hi, hi)
        if np.all(c_hi > c_lo):
            box = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(c_lo, lo, c_hi, strict=True))
            cbox = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(c_lo, canvas.lo, c_hi, strict=True))
            tissue_dwi[box] *= 1.0 + canvas.dwi_gain[cbox]
            tissue_adc[box] *= 1.0 + canvas.adc_gain[cbox]
    dwi = tissue_dwi + tc.dwi_csf * csf
    adc = tissue_adc + tc.adc_csf * csf
    brain = tpl.brain[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))]
    for centre, sigma, gain in artefacts:
        _add_blob(dwi, brain, centre - lo, sigma, gain)
    if tc.skull:
        _add_shells(tpl, lo, hi, tc, dwi, adc)
    return dwi, adc


def _add_blob(dwi: np.ndarray, brain: np.ndarray, centre: np.ndarray, sigma: float, gain: float) -> None:
    r = int(np.ceil(3 * sigma))
    b_lo = np.maximum(np.floor(centre).astype(int) - r, 0)
    b_hi = np.minimum(np.floor(centre).astype(int) + r + 1, np.array(dwi.shape))
    if np.any(b_hi <= b_lo):
        return
    ax = [np.arange(a, b, dtype=np.float32) - c for a, b, c in zip(b_lo, b_hi, centre, strict=True)]
    d2 = ax[0][:, None, None] ** 2 + ax[1][None, :, None] ** 2 + ax[2][None, None, :] ** 2
    sl = tuple(slice(int(a), int(b)) for a, b in zip(b_lo, b_hi, strict=True))
    dwi[sl] *= 1.0 + gain * np.exp(-0.5 * d2 / sigma**2) * brain[sl]


def _add_shells(tpl: Template, lo: np.ndarray, hi: np.ndarray, tc: TissueContrast, dwi: np.ndarray,
                adc: np.ndarray) -> None:
    """Extra-axial CSF, bone and scalp as shells by distance outside the brain (1 mm soft edges), via look-up
    tables over the template's quantised distance."""
    s = tc.skull
    t1 = s["csf_mm"]
    t2 = t1 + s["bone_mm"]
    t3 = t2 + s["scalp_mm"]
    d = np.arange(256, dtype=np.float32) / OUTSIDE_CODE_PER_MM

    def ramp(edge: float) -> np.ndarray:
        return np.clip(d - edge + 0.5, 0.0, 1.0)

    in_csf = np.clip(ramp(0.0) - ramp(t1), 0, 1)
    in_bone = np.clip(ramp(t1) - ramp(t2), 0, 1)
    in_scalp = np.clip(ramp(t2) - ramp(t3), 0, 1)
    outside = (d > 0).astype(np.float32)
    lut_dwi = outside * (in_csf * tc.dwi_csf + in_bone * s["bone_dwi"] + in_scalp * s["scalp_dwi"])
    lut_adc = outside * (in_csf * tc.adc_csf + in_bone * s["bone_adc"] + in_scalp * s["scalp_adc"])
    code = tpl.outside_code[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))]
    dwi += lut_dwi[code]
    adc += lut_adc[code]
