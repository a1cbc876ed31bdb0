"""Synthetic DWI (b=1000) + ADC stroke cases with infarcts of known volume: :func:`make_phantom`.

Pipeline (template mode): draw normal-tissue contrast, lesions from the SOOP library (real shapes and locations in
MNI space), head pose, anatomy deformation and a slice grid; render clean DWI/ADC on the 1 mm template grid inside the
field of view; sample them with the slice profile; add blur, bias, texture and Rician noise; scale and store.
The lesion mask is the resampled soft infarct fraction >= 0.5 on the output grid, so ``meta['lesion_volume_ml']``
is exactly its voxel count times the voxel volume. Everything is drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from infarctsam.io.volume import Volume
from infarctsam.synth import acquisition, contrast, geometry
from infarctsam.synth.config import PhantomConfig
from infarctsam.synth.library import MNI_AFFINE, LesionLibrary, LesionSample, territory_group, territory_side
from infarctsam.synth.result import Phantom, SourceMaps, assemble_phantom
from infarctsam.synth.template import load_template


def make_phantom(seed: int, config: PhantomConfig | None = None, library: LesionLibrary | None = None,
                 background: Volume | None = None, *, background_adc: Volume | None = None,
                 background_brain: Volume | np.ndarray | None = None, keep_source: bool = False) -> Phantom:
    """Generate one synthetic case.

    Parameters
    ----------
    seed : int
        Seed of the random generator: the same seed and configuration give identical arrays.
    config : PhantomConfig, optional
        Random ranges (default: the broad training configuration).
    library : LesionLibrary, optional
        Lesion shapes (default: the bundled subset).
    background : Volume, optional
        A real DWI to paint lesions into instead of the template (see :mod:`infarctsam.synth.background`).
    background_adc : Volume, optional
        Its ADC on the same grid (a template-derived ADC is made otherwise).
    background_brain : Volume or numpy.ndarray, optional
        Its brain mask (derived from the DWI otherwise).
    keep_source : bool
        Keep the 1 mm phantom in ``Phantom.source`` (template mode only).

    Returns
    -------
    Phantom
    """
    cfg = config if config is not None else PhantomConfig()
    lib = library if library is not None else LesionLibrary.bundled()
    rng = np.random.default_rng(seed)
    lesions = choose_lesions(rng, cfg, lib)
    if background is not None:
        from infarctsam.synth.background import paint_background

        return paint_background(rng, seed, cfg, lesions, background, background_adc, background_brain)
    return _template_phantom(rng, seed, cfg, lib, lesions, keep_source)


def choose_lesions(rng: np.random.Generator, cfg: PhantomConfig,
                   lib: LesionLibrary) -> list[tuple[LesionSample, contrast.LesionContrast]]:
    """Draw the labelled lesions of a case with their contrasts (empty, single/multiple, or an embolic shower)."""
    if rng.random() < cfg.p_empty:
        return []
    small = (0.0, cfg.satellite_max_ml)
    if rng.random() < cfg.p_shower:
        small = cfg.shower_volume_ml or small
        first = lib.sample(rng, small, cfg.territory, None, cfg.lesion_weighting, cfg.p_mirror)
        group = territory_group(first.territory) or None
        side = territory_side(first.territory) or None
        picks = [first]
        for _ in range(int(rng.integers(cfg.shower_size[0], cfg.shower_size[1] + 1)) - 1):
            picks.append(lib.sample(rng, small, group, side, "uniform", 0.5))
    else:
        picks = [lib.sample(rng, cfg.lesion_volume_ml, cfg.territory, None, cfg.lesion_weighting, cfg.p_mirror)]
        side = territory_side(picks[0].territory) or None
        for _ in range(int(rng.integers(cfg.n_lesions[0], cfg.n_lesions[1] + 1)) - 1):
            same = side if rng.random() < 0.7 else None
            picks.append(lib.sample(rng, small, None, same, "uniform", 0.5))
    return [(p, contrast.sample_lesion_contrast(rng, cfg)) for p in picks]


@functools.lru_cache(maxsize=1)
def _artefact_sites() -> np.ndarray:
    """Template indices of brain-surface voxels at the skull base (orbitofrontal and temporal poles)."""
    from scipy import ndimage as ndi

    tpl = load_template()
    surface = tpl.brain & ~ndi.binary_erosion(tpl.brain, iterations=2)
    idx = np.argwhere(surface)
    xyz = idx @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]
    x, y, z = xyz.T
    keep = (z > -40) & (z < -5) & (((y > 15) & (np.abs(x) < 40)) | ((np.abs(x) > 30) & (y > -25) & (y < 20)))
    return idx[keep]


def _template_phantom(rng: np.random.Generator, seed: int, cfg: PhantomConfig, lib: LesionLibrary,
                      lesions: list[tuple[LesionSample, contrast.LesionContrast]], keep_source: bool) -> Phantom:
    tpl = load_template()
    stripped = bool(rng.random() < cfg.skull_strip_prob)
    tc = contrast.sample_tissue_contrast(rng, cfg, skull=not stripped)
    painted = list(lesions)
    old_id = None
    if rng.random() < cfg.p_old_infarct:
        old = lib.sample(rng, (0.3, 60.0), None, None, "uniform", 0.5)
        painted.append((old, contrast.sample_lesion_contrast(rng, cfg, old=True)))
        old_id = old.lesion_id
    artefacts = []
    if rng.random() < cfg.p_artifact:
        sites = _artefact_sites()
        to_index = np.linalg.inv(tpl.affine)
        for _ in range(int(rng.integers(1, 5))):
            site = sites[int(rng.integers(len(sites)))].astype(float)
            sigma, gain = float(rng.uniform(3.0, 8.0)), float(rng.uniform(0.3, 2.0))
            artefacts.append((site, sigma, gain))
            if rng.random() < cfg.p_artifact_bilateral:  # susceptibility pile-up is mostly symmetric
                world = tpl.affine[:3, :3] @ site + tpl.affine[:3, 3]
                world[0] = -world[0]
                mirrored = to_index[:3, :3] @ world + to_index[:3, 3]
                artefacts.append((mirrored, sigma * float(rng.uniform(0.8, 1.25)), gain * float(rng.uniform(0.7, 1.3))))
    canvas = contrast.paint_lesions(rng, tpl, painted, tc.atrophy, MNI_AFFINE)
    pose = geometry.sample_pose(rng, cfg, tpl.brain_centre_mm)
    deform = geometry.sample_deformation(rng, cfg, tpl.ventricle_centres_mm)
    centre_world = pose.mni_to_world()[:3] @ np.append(tpl.brain_centre_mm, 1.0)
    lowest = float(tpl.affine[2, 3])
    grid = geometry.sample_grid(rng, cfg, centre_world, lowest)
    w2m = pose.world_to_mni()
    w2s = np.linalg.inv(tpl.affine) @ w2m
    coords = geometry.source_coordinates(grid, w2s, w2m, tpl.affine, deform)
    lo, hi = geometry.coordinate_box(coords, tpl.shape)
    dwi_src, adc_src = contrast.render_source(tpl, lo, hi, tc, canvas, artefacts)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    brain_src = tpl.brain[box].astype(np.float32)
    dwi = geometry.resample(dwi_src, coords, lo)
    adc = geometry.resample(adc_src, coords, lo)
    centre = coords[0] if len(coords) == 1 else np.mean(coords, axis=0)  # slice-centre points
    brain = geometry.resample(brain_src, [centre], lo) >= 0.5
    head = brain.copy() if stripped else dwi > 0.02
    if canvas is not None and canvas.label.any():
        lesion = geometry.resample_sparse(canvas.fraction, canvas.lo, coords) >= 0.5
    else:
        lesion = np.zeros(grid.shape, dtype=bool)
    lesion &= brain
    dwi_out, adc_out, acq = acquisition.degrade(rng, cfg, dwi, adc, head, brain, stripped)
    vox_ml = float(abs(np.linalg.det(grid.affine[:3, :3])) / 1000.0)
    label_ml = float(canvas.label.sum() / 1000.0) if canvas is not None else 0.0
    meta: dict[str, Any] = {
        "generator": "infarctsam.synth", "mode": "template", "seed": int(seed),
        "lesion_ids": [les.lesion_id for les, _ in lesions],
        "lesion_volume_ml": float(lesion.sum() * vox_ml),
        "lesion_volume_ml_1mm": label_ml * float(abs(np.linalg.det(pose.lin))),
        "n_lesions": len(lesions),
        "lesions": [_lesion_meta(les, con) for les, con in lesions],
        "old_infarct_id": old_id, "artefacts": len(artefacts),
        "tissue": tc.as_meta(), "skull_stripped": stripped,
        "shape": list(grid.shape), "spacing_mm": list(grid.spacing), "slice_thickness_mm": grid.thickness_mm,
        "head_scale": float(abs(np.linalg.det(pose.lin)) ** (1 / 3)),
        "world_to_mni": w2m.tolist(),
        "ventricle_expansion": deform.ventricle_strength,
        **acq,
    }
    source = None
    if keep_source:
        gm, wm, csf = contrast.tissue_fractions(tpl, lo, hi, tc.atrophy)
        label = np.zeros(tuple(hi - lo), bool)
        if canvas is not None:
            _paste(label, lo, canvas.label, canvas.lo)
        shift = np.eye(4)
        shift[:3, 3] = lo
        source = SourceMaps(tpl.affine @ shift, label, gm + wm, csf, dwi_src, adc_src)
    return assemble_phantom(grid.affine, dwi_out, adc_out, lesion, brain, meta, source)


def _lesion_meta(lesion: LesionSample, con: contrast.LesionContrast) -> dict[str, Any]:
    return {"id": lesion.lesion_id, "territory": lesion.territory_name, "volume_ml_mni": lesion.volume_ml,
            "dwi_ratio": con.dwi_ratio, "adc_ratio": con.adc_ratio, "pseudonormal": con.pseudonormal,
            "heterogeneity": con.heterogeneity, "edge_mm": con.edge_mm}


def _paste(dst: np.ndarray, dst_lo: np.ndarray, src: np.ndarray, src_lo: np.ndarray) -> None:
    lo = np.maximum(dst_lo, src_lo)
    hi = np.minimum(dst_lo + np.array(dst.shape), src_lo + np.array(src.shape))
    if np.any(hi <= lo):
        return
    d = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(lo, dst_lo, hi, strict=True))
    s = tuple(slice(int(a - b), int(c - b)) for a, b, c in zip(lo, src_lo, hi, strict=True))
    dst[d] |= src[s]
