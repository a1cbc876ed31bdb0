"""Per-case segmentation metrics for infarct masks, following the ISLES'22 definitions where they exist.

Conventions (also stated in every validation report):

* **Dice** ``2|A∩B| / (|A|+|B|)``; both masks empty -> 1.0 (as ISLES'22).
* **Volumes** in mL: voxel count x ``|det(affine[:3, :3])| / 1000``. **AVD** is ``|V_pred - V_ref|`` in mL.
* **Lesions** are 26-connected components. A reference lesion is detected (TP) when at least one of its voxels is in
  the prediction; undetected reference lesions are FN; predicted lesions without any reference voxel are FP.
  Lesion-wise F1 ``= TP / (TP + (FP + FN) / 2)``, 1.0 when both masks hold no lesion. Lesion-count difference
  ``= |n_ref - n_pred|``.
* **Surfaces** are the mask voxels with at least one face-neighbour (6-connectivity) outside the mask; voxels on the
  image border count as surface. Distances are Euclidean in mm (``scipy.ndimage.distance_transform_edt`` with
  ``sampling`` = voxel spacing, so anisotropic voxels are honoured) from each surface voxel of one mask to the
  nearest surface voxel of the other.
* **HD95** is the larger of the two directed 95th percentiles (linear interpolation); **ASSD** is the mean of all
  distances from both directions pooled, ``(sum d(A->B) + sum d(B->A)) / (|S_A| + |S_B|)``. Both masks empty ->
  0.0 mm; exactly one mask empty -> NaN (undefined; left out of cohort means).
* **Sensitivity** ``= |A∩B| / |A|`` (NaN when the reference is empty), **precision** ``= |A∩B| / |B|`` (NaN when the
  prediction is empty); A is the reference, B the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

METRIC_COLUMNS = (
    "dice",
    "volume_gt_ml",
    "volume_pred_ml",
    "avd_ml",
    "lesion_f1",
    "lesion_count_diff",
    "hd95_mm",
    "assd_mm",
    "sensitivity",
    "precision",
    "n_lesions_gt",
    "n_lesions_pred",
    "n_lesions_detected",
)


@dataclass(frozen=True)
class CaseMetrics:
    """All per-case metrics of one prediction against its reference (field names are the ``cases.csv`` columns)."""

    dice: float
    volume_gt_ml: float
    volume_pred_ml: float
    avd_ml: float
    lesion_f1: float
    lesion_count_diff: int
    hd95_mm: float
    assd_mm: float
    sensitivity: float
    precision: float
    n_lesions_gt: int
    n_lesions_pred: int
    n_lesions_detected: int

    def as_dict(self) -> dict[str, float | int]:
        """The metrics as a plain dict, in :data:`METRIC_COLUMNS` order."""
        return asdict(self)


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-wise detection counts (26-connected components)."""

    tp: int
    fp: int
    fn: int
    n_gt: int
    n_pred: int

    @property
    def f1(self) -> float:
        """Lesion-wise F1 ``TP / (TP + (FP + FN) / 2)``; 1.0 when neither mask holds a lesion."""
        denom = self.tp + 0.5 * (self.fp + self.fn)
        return 1.0 if denom == 0 else self.tp / denom

    @property
    def count_diff(self) -> int:
        """Absolute difference of the lesion counts."""
        return abs(self.n_gt - self.n_pred)


def _as_bool(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    return arr if arr.dtype == bool else arr > 0


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"reference shape {gt.shape} differs from prediction shape {pred.shape}")


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice similarity coefficient; 1.0 when both masks are empty.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        Masks of the same shape (non-zero = lesion).

    Returns
    -------
    float
        ``2 |gt ∩ pred| / (|gt| + |pred|)``.
    """
    a, b = _as_bool(gt), _as_bool(pred)
    _check_pair(a, b)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL: ``|det(affine[:3, :3])| / 1000``."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])) / 1000.0)


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis (column norms of the affine's 3x3 part)."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def volume_ml(mask: np.ndarray, affine: np.ndarray) -> float:
    """Lesion volume in mL (voxel count times :func:`voxel_volume_ml`)."""
    return int(_as_bool(mask).sum()) * voxel_volume_ml(affine)


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 26-connected components of a 3D mask.

    Returns
    -------
    labels : numpy.ndarray
        int32 array, 0 = background, 1..n = lesions.
    n : int
        Number of lesions.
    """
    from scipy import ndimage

    m = _as_bool(mask)
    structure = np.ones((3,) * m.ndim, dtype=bool)
    labels, n = ndimage.label(m, structure=structure)
    return labels.astype(np.int32, copy=False), int(n)


def lesion_counts(gt: np.ndarray, pred: np.ndarray) -> LesionCounts:
    """Lesion-wise TP / FP / FN with 26-connectivity (ISLES'22 definitions).

    A reference lesion overlapping the prediction by one voxel or more is a TP, otherwise a FN; a predicted lesion
    overlapping no reference voxel is a FP.
    """
    a, b = _as_bool(gt), _as_bool(pred)
    _check_pair(a, b)
    gt_labels, n_gt = label_lesions(a)
    pred_labels, n_pred = label_lesions(b)
    detected = np.unique(gt_labels[b & (gt_labels > 0)])
    tp = int(detected.size)
    touching = np.unique(pred_labels[a & (pred_labels > 0)])
    fp = n_pred - int(touching.size)
    return LesionCounts(tp=tp, fp=fp, fn=n_gt - tp, n_gt=n_gt, n_pred=n_pred)


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: mask voxels with a face-neighbour outside the mask (the image border counts as outside)."""
    from scipy import ndimage

    m = _as_bool(mask)
    if not m.any():
        return m
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def _crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus one voxel.

    Overlaps, lesion components and surface distances are unchanged (outside the box both masks are empty, and the
    one-voxel margin, or the image border, keeps the surface definition identical).
    """
    union = a | b
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(np.any(union, axis=tuple(i for i in range(union.ndim) if i != axis)))
        if hits.size == 0:
            return a, b
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, union.shape[axis])))
    return a[tuple(box)], b[tuple(box)]


def surface_distances(
    gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Directed surface distances in mm.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        3D masks of the same shape.
    spacing : sequence of float
        Voxel size in mm along each array axis.

    Returns
    -------
    (d_gt_to_pred, d_pred_to_gt) or None
        Distance from every surface voxel of one mask to the nearest surface voxel of the other; ``None`` when
        either mask is empty.
    """
    from scipy import ndimage

    a, b = _as_bool(gt), _as_bool(pred)
    _check_pair(a, b)
    if not a.any() or not b.any():
        return None
    a, b = _crop_to_union(a, b)
    sa, sb = surface(a), surface(b)
    sampling = tuple(float(s) for s in spacing)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return dist_to_b[sa], dist_to_a[sb]


def hd95_assd(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """95th-percentile Hausdorff distance and average symmetric surface distance in mm.

    HD95 is ``max(P95(d(A->B)), P95(d(B->A)))``; ASSD pools both directions. Both masks empty -> ``(0.0, 0.0)``;
    exactly one empty -> ``(nan, nan)``.
    """
    a, b = _as_bool(gt), _as_bool(pred)
    if not a.any() and not b.any():
        return 0.0, 0.0
    dists = surface_distances(a, b, spacing)
    if dists is None:
        return math.nan, math.nan
    d_ab, d_ba = dists
    hd95 = max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95)))
    assd = float((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
    return hd95, assd


def sensitivity_precision(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Voxel-wise sensitivity ``|A∩B|/|A|`` and precision ``|A∩B|/|B|`` (NaN when the denominator is 0)."""
    a, b = _as_bool(gt), _as_bool(pred)
    _check_pair(a, b)
    inter = int(np.logical_and(a, b).sum())
    na, nb = int(a.sum()), int(b.sum())
    sens = inter / na if na else math.nan
    prec = inter / nb if nb else math.nan
    return sens, prec


def case_metrics(gt: np.ndarray, pred: np.ndarray, affine: np.ndarray) -> CaseMetrics:
    """Every per-case metric of ``pred`` against ``gt`` on the grid described by ``affine``.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        3D masks of the same shape, in file voxel order (non-zero = lesion).
    affine : numpy.ndarray
        4x4 voxel-to-world matrix (mm) shared by both masks; gives voxel volume and spacing.

    Returns
    -------
    CaseMetrics
    """
    a, b = _as_bool(gt), _as_bool(pred)
    _check_pair(a, b)
    a, b = _crop_to_union(a, b)  # every metric is unchanged by the crop; large volumes get much faster
    vox_ml = voxel_volume_ml(affine)
    v_gt = int(a.sum()) * vox_ml
    v_pred = int(b.sum()) * vox_ml
    lesions = lesion_counts(a, b)
    hd95, assd = hd95_assd(a, b, spacing_from_affine(affine))
    sens, prec = sensitivity_precision(a, b)
    return CaseMetrics(
        dice=dice(a, b),
        volume_gt_ml=v_gt,
        volume_pred_ml=v_pred,
        avd_ml=abs(v_pred - v_gt),
        lesion_f1=lesions.f1,
        lesion_count_diff=lesions.count_diff,
        hd95_mm=hd95,
        assd_mm=assd,
        sensitivity=sens,
        precision=prec,
        n_lesions_gt=lesions.n_gt,
        n_lesions_pred=lesions.n_pred,
        n_lesions_detected=lesions.tp,
    )
