"""QC picture: axial DWI slices cropped to the brain, with the lesion outlined.

Without a reference the predicted infarct is outlined in yellow. With a reference the outlines follow the abstract's
Figure 1 colours: true positive (predicted and in the reference) green, false positive (predicted only) red, false
negative (reference only) blue; the title then gives both volumes and the Dice coefficient. Slices are shown in
radiological convention (patient's right on the image's left), anterior at the top, with square physical pixels;
which slices are shown is decided in :mod:`infarctsam.outputs.qc_layout`. Warnings of the plausibility checks are
written under the title.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from infarctsam.io.text import plain_line
from infarctsam.outputs.qc_layout import choose_slices, crop_box

TP_RGB = (0.0, 0.85, 0.0)
FP_RGB = (1.0, 0.1, 0.1)
FN_RGB = (0.15, 0.45, 1.0)
OUTLINE_RGB = (1.0, 0.85, 0.0)
WARNING_RGB = (1.0, 0.6, 0.2)

__all__ = ["choose_slices", "qc_summary_line", "render_montage"]


def _display(slice_xy: np.ndarray) -> np.ndarray:
    # canonical [x (R), y (A)] -> image rows = anterior at top, columns = patient right on the left (radiological)
    return slice_xy.T[::-1, ::-1]


def _count(mask: np.ndarray) -> int:
    from infarctsam.metrics import label_lesions

    return label_lesions(mask)[1]


def qc_summary_line(pred: np.ndarray, spacing: Sequence[float], reference: np.ndarray | None = None) -> str:
    """``prediction 3.14 mL (2 lesions)``, with the reference's volume and the Dice coefficient when given."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    p = pred > 0
    text = f"prediction {p.sum() * voxel_ml:.2f} mL ({_count(p)} lesion(s))"
    if reference is None:
        return text
    r = reference > 0
    total = int(p.sum() + r.sum())
    dice = 2.0 * int((p & r).sum()) / total if total else 1.0
    return f"{text}  |  reference {r.sum() * voxel_ml:.2f} mL ({_count(r)} lesion(s))  |  Dice {dice:.3f}"


def _outline(ax, mask: np.ndarray, colour: tuple[float, float, float]) -> None:
    if mask.any():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.1)


def render_montage(
    dwi: np.ndarray,
    lesion: np.ndarray,
    spacing: tuple[float, float, float],
    brain: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    title: str = "",
    n_slices: int = 20,
    columns: int = 5,
    warnings: Sequence[str] = (),
) -> bytes:
    """Render the QC picture as PNG bytes.

    Parameters
    ----------
    dwi : numpy.ndarray
        Canonical (RAS+) DWI, any scale.
    lesion : numpy.ndarray
        Canonical predicted lesion mask.
    spacing : tuple of float
        Canonical voxel size in mm (pixel aspect, volumes in the title).
    brain : numpy.ndarray, optional
        Brain mask: sets the crop and the slices shown (default: DWI > 0).
    reference : numpy.ndarray, optional
        Reference mask: TP green, FP red, FN blue outlines and Dice in the title; otherwise a yellow outline.
    title : str
        First title line (case, engine); the volumes line is added below it.
    n_slices, columns : int
        Most panels, and panels per row.
    warnings : sequence of str
        Plausibility warnings, one line each, drawn under the title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pred = lesion > 0
    ref = reference > 0 if reference is not None else None
    brain = brain > 0 if brain is not None else dwi > 0
    zs = choose_slices(brain, pred, n_slices, extra=ref)
    bx, by = crop_box(brain)
    vals = dwi[brain] if brain.any() else dwi.ravel()
    vmax = float(np.percentile(vals, 99.5)) if vals.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    cols = max(1, min(columns, len(zs)))
    rows = int(np.ceil(len(zs) / cols))
    aspect = spacing[1] / spacing[0]
    width_mm, height_mm = (bx.stop - bx.start) * spacing[0], (by.stop - by.start) * spacing[1]
    panel_w = 2.6 if cols > 2 else 3.4
    panel_h = panel_w * min(max(height_mm / max(width_mm, 1e-6), 0.5), 1.8)
    lines = [title, qc_summary_line(pred, spacing, ref), *[f"warning: {w}" for w in warnings]]
    head_h, foot_h = 0.22 * len(lines) + 0.15, 0.35
    fig_h = rows * (panel_h + 0.18) + head_h + foot_h
    fig = Figure(figsize=(cols * panel_w, fig_h))  # no pyplot: no global state, and pyplot's import is slow
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.patch.set_facecolor("black")
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - head_h / fig_h, bottom=foot_h / fig_h, wspace=0.03,
                        hspace=0.12)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, z in zip(axes.ravel(), zs, strict=False):
        ax.imshow(np.clip(_display(dwi[bx, by, z]) / vmax, 0, 1), cmap="gray", vmin=0, vmax=1, aspect=aspect,
                  interpolation="nearest")
        p = _display(pred[bx, by, z])
        if ref is not None:
            r = _display(ref[bx, by, z])
            _outline(ax, p & ~r, FP_RGB)
            _outline(ax, r & ~p, FN_RGB)
            _outline(ax, p & r, TP_RGB)  # last: the agreed part stays green where outlines meet
        else:
            _outline(ax, p, OUTLINE_RGB)
        ax.set_title(f"z={z}", fontsize=7, color="white", pad=2)
        ax.text(0.01, 0.5, "R", color="white", fontsize=7, transform=ax.transAxes, va="center")
        ax.text(0.99, 0.5, "L", color="white", fontsize=7, transform=ax.transAxes, va="center", ha="right")
    for i, text in enumerate(lines):
        colour = WARNING_RGB if i >= 2 else "white"
        fig.text(0.5, 1 - (0.12 + 0.22 * i) / fig_h, plain_line(text, limit=160), ha="center", va="top",
                 color=colour, fontsize=9 if i < 2 else 8, fontweight="bold" if i == 0 else "normal",
                 parse_math=False, usetex=False)  # text from files is drawn as it is, never as mathtext
    if ref is not None:
        handles = [Line2D([], [], color=c, lw=2, label=lab) for c, lab in
                   ((TP_RGB, "TP (both)"), (FP_RGB, "FP (prediction only)"), (FN_RGB, "FN (reference only)"))]
    else:
        handles = [Line2D([], [], color=OUTLINE_RGB, lw=2, label="predicted infarct outline")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False, labelcolor="white")
    buf = io.BytesIO()
    # zlib level 3 instead of 6: about a third of the encoding time for a slightly larger file
    fig.savefig(buf, format="png", dpi=110, facecolor="black", pil_kwargs={"compress_level": 3})
    return buf.getvalue()
