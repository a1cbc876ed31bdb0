"""Overlay examples: reference vs prediction on the axial slice with the largest lesion area.

Colours: true positive voxels green, false positive red, false negative blue. The background is the case's DWI when
one is found on the same grid (``--image-dir`` or beside the reference masks), otherwise the masks are drawn on a
dark background. Slices are shown in RAS orientation with the patient's right on the image right (labelled).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from infarctsam.report.figures import ReportFigure, new_figure, png_bytes
from infarctsam.report.tables import fmt

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult

TP_RGB = (0.1, 0.8, 0.1)
FP_RGB = (0.9, 0.1, 0.1)
FN_RGB = (0.15, 0.35, 1.0)


def pick_cases(result: EvaluationResult, chosen: list[str] | None = None) -> list[tuple[str, str]]:
    """``(case, label)`` pairs: the chosen cases, or the best, median and worst Dice of the first method (among
    cases whose reference holds lesion)."""
    if chosen:
        return [(c, "") for c in chosen]
    first = result.cases[result.cases["method"] == result.methods[0]]
    with_lesion = first[first["volume_gt_ml"] > 0]  # an empty reference shows nothing worth looking at
    first = (with_lesion if len(with_lesion) >= 2 else first).sort_values(["dice", "case"], kind="stable")
    ids = list(first["case"])
    if len(ids) < 2:
        return [(c, "") for c in ids]
    picks = [(ids[-1], "best"), (ids[(len(ids) - 1) // 2], "median"), (ids[0], "worst")]
    out: list[tuple[str, str]] = []
    for case, label in picks:
        if case not in [c for c, _ in out]:
            out.append((case, label))
    return out


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Reorient a 3D array to the closest RAS orientation; also return the reoriented voxel spacing."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    out_spacing = [0.0, 0.0, 0.0]
    for axis_in, (axis_out, _) in enumerate(ornt):
        out_spacing[int(axis_out)] = float(spacing[axis_in])
    return nib.orientations.apply_orientation(data, ornt), (out_spacing[0], out_spacing[1], out_spacing[2])


def _file_slice_index(affine: np.ndarray, k_ras: int, n: int) -> int:
    """Index in the file's voxel order of the RAS axial slice ``k_ras`` (the axis closest to inferior-superior)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    axis_in = int(np.flatnonzero(ornt[:, 0] == 2)[0])
    return n - 1 - k_ras if ornt[axis_in, 1] < 0 else k_ras


def _background(result: EvaluationResult, case: str, ref: Any, image_dir: Path | None) -> np.ndarray | None:
    from infarctsam.errors import InputError
    from infarctsam.evaluate.pairing import find_background
    from infarctsam.io.volume import read_volume

    folders = [image_dir] if image_dir is not None else [result.gt_root]
    if image_dir is None and result.gt_root.name.lower() == "derivatives":
        folders.append(result.gt_root.parent)
    exclude = {result.pairing.gt[case], *(result.pairing.preds[m][case] for m in result.methods)}
    path = find_background(case, folders, exclude=exclude)
    if path is None:
        return None
    try:
        vol = read_volume(path)
    except InputError:
        return None
    if not vol.same_grid(ref):
        return None
    data = np.asarray(vol.data, dtype=np.float32)
    return data[..., -1] if data.ndim == 4 else data


def _crop_box(union: np.ndarray, spacing: tuple[float, float], margin_mm: float = 20.0) -> tuple[slice, slice]:
    if not union.any():
        return slice(None), slice(None)
    idx = np.argwhere(union)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = []
    for ax in range(2):
        extent = hi[ax] - lo[ax]
        pad = int(np.ceil(max(margin_mm / spacing[ax], 0.5 * extent)))
        box.append(slice(max(int(lo[ax]) - pad, 0), min(int(hi[ax]) + pad, union.shape[ax])))
    return box[0], box[1]


def _window(img: np.ndarray) -> np.ndarray:
    vals = img[np.isfinite(img) & (img > 0)]
    if vals.size == 0:
        return np.zeros_like(img)
    lo, hi = np.percentile(vals, [1, 99])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)


def _rgb(gt: np.ndarray, pred: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    base = np.full(gt.shape + (3,), 0.12) if background is None else np.repeat(_window(background)[..., None], 3, -1)
    # On a DWI the TP fill stays translucent so the lesion signal shows; errors are drawn nearly opaque.
    for sel, color, alpha in ((gt & pred, TP_RGB, 0.45), (pred & ~gt, FP_RGB, 0.9), (gt & ~pred, FN_RGB, 0.9)):
        a = 1.0 if background is None else alpha
        base[sel] = (1 - a) * base[sel] + a * np.asarray(color)
    return base


def overlay_figure(result: EvaluationResult, chosen: list[str] | None = None, image_dir: Path | None = None,
                   label_any: bool = False) -> ReportFigure | None:
    """Overlay panels: one row per case, one column per method, on the axial slice with the largest GT area."""
    from matplotlib.patches import Patch

    from infarctsam.evaluate.api import load_mask

    picks = pick_cases(result, chosen)
    if not picks:
        return None
    cols = len(result.methods)
    fig = new_figure(2.3 * cols + 0.3, 2.3 * len(picks) + 0.5)
    dice = result.cases.set_index(["case", "method"])["dice"]
    with_dwi = 0
    for r, (case, label) in enumerate(picks):
        gt = load_mask(result.pairing.gt[case], label_any)
        preds = [load_mask(result.pairing.preds[m][case], label_any) for m in result.methods]
        gt_ras, spacing = to_ras(gt.data, gt.affine)
        preds_ras = [to_ras(p.data, p.affine)[0] for p in preds]
        union = gt_ras | np.logical_or.reduce(preds_ras)
        area = gt_ras.sum(axis=(0, 1)) if gt_ras.any() else union.sum(axis=(0, 1))
        k = int(np.argmax(area))
        k_file = _file_slice_index(gt.affine, k, gt_ras.shape[2])
        bg = _background(result, case, gt, image_dir)
        bg_ras = to_ras(bg, gt.affine)[0] if bg is not None else None
        with_dwi += bg is not None
        sx, sy = _crop_box(union[:, :, k], (spacing[0], spacing[1]))
        for c, (m, p_ras) in enumerate(zip(result.methods, preds_ras, strict=True)):
            ax = fig.add_subplot(len(picks), cols, r * cols + c + 1)
            rgb = _rgb(gt_ras[sx, sy, k], p_ras[sx, sy, k], None if bg_ras is None else bg_ras[sx, sy, k])
            # radiological view, as the segment QC montage: patient's right on the image's left
            ax.imshow(np.transpose(rgb[::-1], (1, 0, 2)), origin="lower", interpolation="nearest",
                      aspect=spacing[1] / spacing[0])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="white", fontsize=7, va="center")
            ax.text(0.98, 0.5, "L", transform=ax.transAxes, color="white", fontsize=7, va="center", ha="right")
            if r == 0:
                ax.set_title(m, fontsize=9)
            ax.set_xlabel(f"Dice {fmt(dice.get((case, m)), 3)}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{case}\n{label + ', ' if label else ''}slice {k_file}", fontsize=7)
    fig.legend(handles=[Patch(color=TP_RGB, label="TP"), Patch(color=FP_RGB, label="FP"),
                        Patch(color=FN_RGB, label="FN")], loc="outside lower center", ncols=3, fontsize=8,
               frameon=False)
    background = "on the DWI" if with_dwi == len(picks) else "on the DWI where found, else on a dark background" \
        if with_dwi else "on a dark background (no DWI found on the mask grid)"
    how = "chosen cases" if chosen else "cases with the best, median and worst Dice of " + result.methods[0]
    caption = (f"Overlays for the {how}: axial slice with the largest reference lesion area (slice = file voxel index "
               f"along the inferior-superior axis), {background}; green TP, red FP, blue FN; radiological view "
               "(patient right on the image left), cropped around the lesions.")
    return ReportFigure("overlays", "Overlay examples", caption, png_bytes(fig))
