"""Affine registration of a DWI to the MNI152 template with SimpleITK, and its plausibility checks.

The brain-masked DWI (the pipeline's own brain mask) is registered to the brain-extracted MNI152 2009 T1 at 3 mm:
moments initialisation, then rigid, then a full affine, each maximising Mattes mutual information on a two-level
pyramid (DWI and T1 contrasts differ; mutual information does not need them alike). A few seconds on 2 cores.

A mapping is *unreliable* (a warning, never a silent wrong answer) when the scan covers too little of the head for
a linear mapping, when the optimiser fails, when its scale factors are far from those between two adult heads, or
when the template's brain mask, mapped back, overlaps the scan's brain mask too little.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infarctsam.location.template import LPS, registration_template, to_sitk

MIN_EXTENT_MM = 70.0          # brain extent along the scan's least-covered world axis
SCALE_RANGE = (0.7, 1.45)     # singular values of the native -> MNI linear part
MAX_ANISOTROPY = 1.35         # largest / smallest singular value
MIN_OVERLAP = 0.75            # Dice of the scan's brain mask and the template's brain mask mapped onto the scan
START_DEG = (-24.0, 0.0, 24.0)  # start rotations tried about each axis
SAMPLING = 0.2
AFFINE_RATE = 0.3
MIN_STEP = 0.01
CLIP = 1.5                     # DWI / its brain median is clipped here: a bright infarct must not drive the mapping


@dataclass
class Registration:
    """A DWI-to-MNI affine mapping and how far it can be trusted.

    Attributes
    ----------
    to_mni : numpy.ndarray
        4x4 matrix from the scan's world (RAS, mm) to MNI (RAS, mm); identity when the registration did not run.
    reliable : bool
        False when any check failed.
    warnings : list of str
        Why it is unreliable (empty when reliable).
    scales : list of float
        Singular values of the linear part (native mm per MNI mm inverted: > 1 means the head is smaller than MNI).
    brain_overlap : float or None
        Dice of the scan's brain mask and the mapped template brain mask.
    seconds : float
        Time taken.
    """

    to_mni: np.ndarray
    reliable: bool
    warnings: list[str] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    brain_overlap: float | None = None
    seconds: float = 0.0

    def describe(self) -> dict[str, object]:
        """JSON-ready record of the mapping."""
        return {"method": "SimpleITK affine (rigid then affine, Mattes MI) to MNI152 2009c sym (nilearn)",
                "reliable": self.reliable, "warnings": list(self.warnings),
                "scales": [round(s, 3) for s in self.scales],
                "brain_overlap_dice": None if self.brain_overlap is None else round(self.brain_overlap, 3),
                "matrix_native_to_mni": [[round(float(v), 5) for v in row] for row in self.to_mni],
                "seconds": round(self.seconds, 2)}


def _extent_mm(brain: np.ndarray, affine: np.ndarray) -> float:
    """Smallest extent of the brain mask along the world axes (mm)."""
    idx = np.argwhere(brain)
    if idx.size == 0:
        return 0.0
    corners = np.stack([idx.min(0), idx.max(0) + 1])
    pts = np.array([[corners[a, 0], corners[b, 1], corners[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    world = pts @ np.asarray(affine)[:3, :3].T
    return float((world.max(0) - world.min(0)).min())


def _coarse(image: np.ndarray, affine: np.ndarray, target_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Block-average an image to voxels of about ``target_mm`` (axes already coarser are kept)."""
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    f = [max(1, int(round(target_mm / s))) for s in spacing]
    if f == [1, 1, 1]:
        return image, np.asarray(affine, dtype=np.float64)
    size = [n - n % k for n, k in zip(image.shape, f, strict=True)]
    blocks = (size[0] // f[0], f[0], size[1] // f[1], f[1], size[2] // f[2], f[2])
    small = image[: size[0], : size[1], : size[2]].reshape(blocks).mean(axis=(1, 3, 5))
    out = np.asarray(affine, dtype=np.float64) @ np.diag([*f, 1.0])
    out[:3, 3] = np.asarray(affine)[:3, :3] @ ((np.array(f) - 1) / 2) + np.asarray(affine)[:3, 3]
    return small.astype(np.float32), out


def _matrix_fixed_to_moving(tx: Any) -> np.ndarray:
    """4x4 (RAS) matrix of an ITK affine-like transform (maps template points to scan points)."""
    m = np.array(tx.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.array(tx.GetCenter(), dtype=np.float64)
    t = np.array(tx.GetTranslation(), dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = LPS @ m @ LPS
    out[:3, 3] = LPS @ (t + c - m @ c)
    return out


def _best_rotation(sitk: Any, tpl: Any, moving: Any, init: Any) -> tuple[float, float, float]:
    """The start rotation (radians about x, y, z) with the best metric among a coarse grid of head poses, on 6 mm
    images: gradient descent from the identity alone does not capture a head tilted by 20-30 degrees."""
    import itertools

    fixed = sitk.Shrink(sitk.SmoothingRecursiveGaussian(tpl.image, 3.0), [2, 2, 2])
    mask = sitk.Shrink(tpl.mask, [2, 2, 2])
    small = sitk.Shrink(sitk.SmoothingRecursiveGaussian(moving, 3.0), [2, 2, 2])
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=24)
    reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    best, best_value = (0.0, 0.0, 0.0), np.inf
    for angles in itertools.product(np.deg2rad(START_DEG), repeat=3):
        trial = sitk.Euler3DTransform(init)
        trial.SetRotation(*angles)
        reg.SetInitialTransform(trial)
        value = reg.MetricEvaluate(fixed, small)
        if value < best_value:
            best, best_value = tuple(float(a) for a in angles), value
    return best


def _method(sitk: Any, fixed_mask: Any, levels: tuple[int, ...], iterations: int, rate: float) -> Any:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(SAMPLING, seed=1)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=rate, minStep=MIN_STEP * rate,
                                                 numberOfIterations=iterations, relaxationFactor=0.6,
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(levels))
    reg.SetSmoothingSigmasPerLevel([float(s - 1) for s in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def register_to_mni(dwi: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> Registration:
    """Map a brain-masked DWI to MNI space with an affine transform.

    Parameters
    ----------
    dwi : numpy.ndarray
        DWI intensities, (x, y, z), any scale.
    brain : numpy.ndarray
        Brain mask on the same grid.
    affine : numpy.ndarray
        4x4 voxel-to-world (RAS, mm) matrix of that grid.

    Returns
    -------
    Registration
        The mapping with its reliability; never raises for an implausible result.
    """
    import time

    import SimpleITK as sitk

    t0 = time.perf_counter()
    brain = np.asarray(brain, dtype=bool)
    extent = _extent_mm(brain, affine)
    if extent < MIN_EXTENT_MM or brain.sum() < 100:
        return Registration(np.eye(4), False, [f"registration to MNI not attempted: the scan's brain spans only "
                                               f"{extent:.0f} mm along one axis (at least {MIN_EXTENT_MM:.0f} mm "
                                               "needed for a linear mapping)"], seconds=time.perf_counter() - t0)
    tpl = registration_template()
    level = float(np.median(dwi[brain])) or 1.0
    small, small_affine = _coarse(np.where(brain, np.clip(dwi / level, 0, CLIP), 0).astype(np.float32), affine)
    moving = to_sitk(small, small_affine)
    try:
        init = sitk.CenteredTransformInitializer(tpl.image, moving, sitk.Euler3DTransform(),
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
        init.SetRotation(*_best_rotation(sitk, tpl, moving, init))
        rigid = _method(sitk, tpl.mask, (2,), 60, 1.0)
        rigid.SetInitialTransform(init, inPlace=True)
        rigid.Execute(tpl.image, moving)
        aff = sitk.AffineTransform(3)
        aff.SetCenter(init.GetCenter())
        aff.SetMatrix(init.GetMatrix())
        aff.SetTranslation(init.GetTranslation())
        affine_reg = _method(sitk, tpl.mask, (2, 1), 60, AFFINE_RATE)
        affine_reg.SetInitialTransform(aff, inPlace=True)
        affine_reg.Execute(tpl.image, moving)
        fixed_to_moving = _matrix_fixed_to_moving(aff)
        to_mni = np.linalg.inv(fixed_to_moving)
    except (RuntimeError, np.linalg.LinAlgError) as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return Registration(np.eye(4), False, [f"registration to MNI failed: {first}"],
                            seconds=time.perf_counter() - t0)
    return _checked(to_mni, brain, affine, tpl, time.perf_counter() - t0)


def _checked(to_mni: np.ndarray, brain: np.ndarray, affine: np.ndarray, tpl: Any, seconds: float) -> Registration:
    scales = [float(s) for s in np.linalg.svd(to_mni[:3, :3], compute_uv=False)]
    warnings = []
    if min(scales) < SCALE_RANGE[0] or max(scales) > SCALE_RANGE[1] or max(scales) / min(scales) > MAX_ANISOTROPY:
        warnings.append(f"registration to MNI implausible: scale factors {', '.join(f'{s:.2f}' for s in scales)} "
                        f"(a head maps with {SCALE_RANGE[0]}-{SCALE_RANGE[1]})")
    overlap = brain_overlap(brain, affine, to_mni, tpl.brain, tpl.affine)
    if overlap < MIN_OVERLAP:
        warnings.append(f"registration to MNI implausible: the mapped template brain overlaps the scan's brain "
                        f"mask with Dice {overlap:.2f} (< {MIN_OVERLAP})")
    return Registration(to_mni, not warnings, warnings, scales, overlap, seconds)


def brain_overlap(brain: np.ndarray, affine: np.ndarray, to_mni: np.ndarray, tpl_brain: np.ndarray,
                  tpl_affine: np.ndarray) -> float:
    """Dice of a scan's brain mask and the template brain mask sampled (nearest) at the scan's voxel centres,
    counted inside the scan's field of view.

    The scan-voxel to template-voxel map is one affine matrix, applied axis by axis to the grid's coordinate vectors
    (a separable sum, not a matrix product per voxel)."""
    to_tpl = np.linalg.solve(np.asarray(tpl_affine, np.float64), np.asarray(to_mni, np.float64)
                             @ np.asarray(affine, np.float64))
    grid = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in brain.shape), indexing="ij", sparse=True)
    index = [np.rint(to_tpl[row, 3] + sum(to_tpl[row, k] * grid[k] for k in range(3))).astype(np.int64)
             for row in range(3)]  # template index along each axis, broadcast to the scan's grid
    inside = np.ones(brain.shape, bool)
    for row in range(3):
        inside &= (index[row] >= 0) & (index[row] < tpl_brain.shape[row])
    mapped = np.zeros(brain.shape, bool)
    mapped[inside] = tpl_brain[tuple(i[inside] for i in index)]
    denom = int(brain.sum()) + int(mapped.sum())
    return 2.0 * float(np.logical_and(brain, mapped).sum()) / denom if denom else 0.0
