"""QC montage: axial DWI slices with the lesion outline, or TP/FP/FN colours against a reference.

Slices are shown in radiological convention (patient's right on the image's left), anterior at the top, with
square physical pixels. Colours follow the abstract's Figure 1: true positive green, false positive red, false
negative blue.
"""

from __future__ import annotations

import io

import numpy as np

TP_RGB = (0.0, 0.85, 0.0)
FP_RGB = (1.0, 0.1, 0.1)
FN_RGB = (0.15, 0.35, 1.0)
OUTLINE_RGB = (1.0, 0.85, 0.0)


def choose_slices(brain: np.ndarray, lesion: np.ndarray, n: int = 20, extra: np.ndarray | None = None) -> list[int]:
    """Axial slice indices for the montage: evenly spread over the brain, always including the slices of largest
    lesion area (of ``lesion`` and ``extra``), at most ``n``."""
    brain_area = brain.sum(axis=(0, 1))
    zs = np.flatnonzero(brain_area > 0.1 * brain_area.max()) if brain_area.max() > 0 else np.array([], int)
    if zs.size == 0:
        zs = np.arange(brain.shape[2])
    area = lesion.sum(axis=(0, 1)).astype(float)
    if extra is not None:
        area = area + extra.sum(axis=(0, 1))
    lesion_z = [int(z) for z in np.argsort(-area) if area[z] > 0][: max(1, n // 2)]
    spread = np.linspace(zs.min(), zs.max(), num=min(n, zs.size)).round().astype(int).tolist()
    chosen = sorted(set(lesion_z))
    for z in spread:
        if len(chosen) >= n:
            break
        if z not in chosen:
            chosen.append(z)
    return sorted(chosen)[:n]


def _display(slice_xy: np.ndarray) -> np.ndarray:
    # canonical [x (R), y (A)] -> image rows = anterior at top, columns = patient right on the left (radiological)
    return slice_xy.T[::-1, ::-1]


def _overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float], alpha: float) -> None:
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(colour)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return mask & ~ndi.binary_erosion(mask)


def render_montage(
    dwi: np.ndarray,
    lesion: np.ndarray,
    spacing: tuple[float, float, float],
    brain: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    title: str = "",
    n_slices: int = 20,
    columns: int = 5,
) -> bytes:
    """Render the QC montage as PNG bytes.

    Parameters
    ----------
    dwi : numpy.ndarray
        Canonical (RAS+) DWI, any scale.
    lesion : numpy.ndarray
        Canonical predicted lesion mask.
    spacing : tuple of float
        Canonical voxel size in mm (sets the pixel aspect).
    brain : numpy.ndarray, optional
        Brain mask used to choose slices.
    reference : numpy.ndarray, optional
        Reference mask: when given, TP green, FP red, FN blue; otherwise the lesion outline in yellow.
    title : str
        Figure title.
    n_slices, columns : int
        Montage size.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    pred = lesion > 0
    ref = reference > 0 if reference is not None else None
    brain = brain if brain is not None else dwi > 0
    zs = choose_slices(brain, pred, n_slices, extra=ref)
    vals = dwi[brain] if brain.any() else dwi.ravel()
    vmax = float(np.percentile(vals, 99.5)) if vals.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    rows = int(np.ceil(len(zs) / columns))
    aspect = spacing[1] / spacing[0]
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.2 * min(aspect * dwi.shape[1] /
                                                                                      dwi.shape[0], 1.6) + 0.6))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, z in zip(axes, zs, strict=False):
        grey = np.clip(_display(dwi[:, :, z]) / vmax, 0, 1)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        p = _display(pred[:, :, z])
        if ref is not None:
            r = _display(ref[:, :, z])
            _overlay(rgb, p & r, TP_RGB, 0.6)
            _overlay(rgb, p & ~r, FP_RGB, 0.6)
            _overlay(rgb, ~p & r, FN_RGB, 0.6)
        else:
            _overlay(rgb, _outline(p), OUTLINE_RGB, 1.0)
        ax.imshow(rgb, aspect=aspect, interpolation="nearest")
        ax.set_title(f"z={z}", fontsize=7, color="white", pad=2)
        ax.text(0.02, 0.5, "R", color="white", fontsize=7, transform=ax.transAxes, va="center")
        ax.text(0.98, 0.5, "L", color="white", fontsize=7, transform=ax.transAxes, va="center", ha="right")
    if ref is not None:
        handles = [Patch(color=TP_RGB, label="TP"), Patch(color=FP_RGB, label="FP"), Patch(color=FN_RGB, label="FN")]
    else:
        handles = [Patch(color=OUTLINE_RGB, label="predicted infarct outline")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False, labelcolor="white")
    fig.suptitle(title, color="white", fontsize=9)
    fig.patch.set_facecolor("black")
    fig.tight_layout(rect=(0, 0.04, 1, 0.96), pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, facecolor="black")
    plt.close(fig)
    return buf.getvalue()
