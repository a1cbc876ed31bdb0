"""The location picture: the DWI mapped into MNI space with the level-2 territories in colour, the atlas outline
and the lesion outline, so a reader sees at once whether the registration and the territory report can be trusted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infarctsam.location.atlas import Atlas
from infarctsam.location.labels import LEVEL1, LEVEL2_ORDER
from infarctsam.location.register import Registration

# level-2 colours (both sides alike: the side is read from the picture's R / L marks)
COLOURS = {"ACA": (0.20, 0.55, 1.00), "MCA": (0.15, 0.80, 0.30), "PCA": (1.00, 0.60, 0.10), "VB": (0.80, 0.30, 0.90),
           "LV": (0.50, 0.50, 0.50)}
Z_MNI = (-40, -24, -8, 8, 24, 40, 56)


def _level2_index(level1: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for lab, (_, _, l2) in LEVEL1.items():
        lut[lab] = LEVEL2_ORDER.index(l2) + 1
    return lut[level1]


def render_location(dwi: np.ndarray, mask: np.ndarray, affine: np.ndarray, reg: Registration, atlas: Atlas,
                    brain: np.ndarray | None = None, title: str = "", lines: Sequence[str] = ()) -> bytes:
    """PNG bytes: seven axial MNI slices (radiological left-right marks shown), the DWI in grey, territory colours
    over the scan's brain (``brain``, when given), the atlas edge in yellow (how well the scan fits it) and the lesion
    outline in red; the title and ``lines`` (summary, warnings) above."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from scipy import ndimage as ndi

    shape = atlas.level1.shape
    zs = [int(round((z - atlas.affine[2, 3]) / atlas.affine[2, 2])) for z in Z_MNI]
    zs = [z for z in zs if 0 <= z < shape[2]]
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    back = np.linalg.inv(affine) @ np.linalg.inv(reg.to_mni) @ atlas.affine
    l2 = np.where(atlas.inside, _level2_index(atlas.level1), 0)
    fig = Figure(figsize=(2.2 * len(zs), 3.6), dpi=90)
    fig.patch.set_facecolor("black")
    text = [title, *lines] if title else list(lines)
    fig.text(0.01, 0.99, "\n".join(text), color="white", va="top", ha="left", fontsize=8, family="monospace")
    hi = float(np.percentile(dwi[dwi > 0], 99)) if np.any(dwi > 0) else 1.0
    for n, z in enumerate(zs):
        ax = fig.add_axes((n / len(zs), 0.0, 1.0 / len(zs), 0.78))
        pts = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, z), np.ones(ii.size)])
        src = (back @ pts)[:3]
        img = ndi.map_coordinates(dwi, src, order=1, cval=0.0).reshape(ii.shape)
        les = ndi.map_coordinates(mask.astype(np.float32), src, order=1, cval=0.0).reshape(ii.shape)
        rgb = np.repeat(np.clip(img / hi, 0, 1)[..., None], 3, axis=2)
        lab = l2[:, :, z].copy()
        if brain is not None:
            lab[ndi.map_coordinates(brain.astype(np.float32), src, order=1, cval=0.0).reshape(ii.shape) < 0.5] = 0
        for k, code in enumerate(LEVEL2_ORDER, start=1):
            colour = np.array(COLOURS[code[:-1]])
            sel = lab == k
            rgb[sel] = 0.7 * rgb[sel] + 0.3 * colour
        # display: MNI x increases to the viewer's left (radiological), y up
        view = np.transpose(rgb, (1, 0, 2))[::-1]
        if atlas.affine[0, 0] > 0:
            view = view[:, ::-1]
        ax.imshow(view, interpolation="nearest")
        les_v = les.T[::-1]
        if atlas.affine[0, 0] > 0:
            les_v = les_v[:, ::-1]
        edge = atlas.inside[:, :, z].T[::-1].astype(np.float32)
        if atlas.affine[0, 0] > 0:
            edge = edge[:, ::-1]
        if edge.max() > 0:
            ax.contour(edge, levels=[0.5], colors=["yellow"], linewidths=0.6)
        if les_v.max() >= 0.5:
            ax.contour(les_v, levels=[0.5], colors=["red"], linewidths=1.0)
        ax.set_axis_off()
        z_mm = atlas.affine[2, 3] + z * atlas.affine[2, 2]
        # each mark on its own: the panel's height on top; the patient's sides (radiological) once, on the first
        # panel, so that no "L" of one panel runs into the "R" of the next
        ax.text(0.5, 0.98, f"z = {z_mm:+.0f} mm", color="white", fontsize=7, ha="center", va="top",
                transform=ax.transAxes)
        if n == 0:
            ax.text(0.03, 0.5, "R", color="white", fontsize=8, ha="left", va="center", transform=ax.transAxes)
            ax.text(0.97, 0.5, "L", color="white", fontsize=8, ha="right", va="center", transform=ax.transAxes)
    legend = [("lesion outline", "red"), ("MNI brain edge", "yellow"),
              *((f"{name} territory", colour) for name, colour in COLOURS.items())]
    for n, (name, colour) in enumerate(legend):
        fig.text(0.99, 0.99 - 0.03 * n, name, color=colour, ha="right", va="top", fontsize=7, weight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="black")
    return buf.getvalue()
