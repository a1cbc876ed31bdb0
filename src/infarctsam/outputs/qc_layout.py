"""Which part of the volume the QC picture shows: the axial slices and the in-plane crop.

Slices: every lesion (of the prediction and of the reference) is shown on at least one slice, chosen greedily so one
slice covers as many lesions as it can; the largest lesion is shown over its whole extent (evenly sampled when it
spans more slices than the picture holds); one or two slices beyond the lesions give context. Without any lesion the
slices are spread evenly over the brain.

Crop: the brain's bounding box in the axial plane (over all slices) plus a small margin, so the brain fills the panel.
"""

from __future__ import annotations

import numpy as np


def brain_range(brain: np.ndarray) -> tuple[int, int]:
    """First and last axial slice holding at least 10 % of the largest slice's brain area (whole stack if none)."""
    area = brain.sum(axis=(0, 1))
    zs = np.flatnonzero(area > 0.1 * area.max()) if area.max() > 0 else np.array([], dtype=int)
    return (int(zs.min()), int(zs.max())) if zs.size else (0, brain.shape[2] - 1)


def _lesion_ranges(lesion: np.ndarray) -> list[tuple[int, int, int]]:
    """``(voxels, z_first, z_last)`` of each 3D connected lesion, largest first."""
    from scipy import ndimage as ndi

    from infarctsam.metrics import label_lesions

    labels, n = label_lesions(lesion)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    out = []
    for i, sl in enumerate(ndi.find_objects(labels)):
        out.append((int(sizes[i]), int(sl[2].start), int(sl[2].stop - 1)))
    return sorted(out, key=lambda r: -r[0])


def _cover(ranges: list[tuple[int, int, int]], limit: int) -> list[int]:
    """Few slices such that every ``(size, z0, z1)`` range contains one (greedy set cover, larger lesions first)."""
    left = list(ranges)
    chosen: list[int] = []
    while left and len(chosen) < limit:
        candidates = sorted({z for _, a, b in left for z in range(a, b + 1)})
        # the slice inside the most remaining ranges; ties go to the one covering the most voxels
        best = max(candidates, key=lambda z: (sum(a <= z <= b for _, a, b in left),
                                              sum(s for s, a, b in left if a <= z <= b)))
        chosen.append(best)
        left = [r for r in left if not r[1] <= best <= r[2]]
    return chosen


def choose_slices(brain: np.ndarray, lesion: np.ndarray, n: int = 20, extra: np.ndarray | None = None,
                  context: int = 2) -> list[int]:
    """Axial slice indices for the QC picture (sorted, at most ``n``; see the module docstring).

    Parameters
    ----------
    brain : numpy.ndarray
        Brain mask (sets the range for context and for the no-lesion case).
    lesion : numpy.ndarray
        Predicted lesion mask.
    n : int
        Most slices shown.
    extra : numpy.ndarray, optional
        Reference lesion mask: its lesions are covered too.
    context : int
        Slices shown beyond the lesions' first and last slice (within the brain).
    """
    union = lesion > 0
    if extra is not None:
        union = union | (extra > 0)
    lo, hi = brain_range(brain)
    ranges = _lesion_ranges(union)
    if not ranges:
        return sorted(set(np.linspace(lo, hi, num=min(n, hi - lo + 1)).round().astype(int).tolist()))
    chosen = set(_cover(ranges, n))
    _, z0, z1 = ranges[0]
    room = n - len(chosen) - 2 * context
    extent = [z for z in range(z0, z1 + 1) if z not in chosen]
    if room > 0 and extent:
        picks = np.linspace(0, len(extent) - 1, num=min(room, len(extent))).round().astype(int)
        chosen.update(extent[i] for i in picks)
    first, last = min(min(chosen), z0), max(max(chosen), z1)
    for k in range(1, context + 1):
        for z in (first - k, last + k):
            if len(chosen) < n and min(lo, first) <= z <= max(hi, last) and 0 <= z < brain.shape[2]:
                chosen.add(z)
    return sorted(chosen)[:n]


def crop_box(brain: np.ndarray, margin: int = 3) -> tuple[slice, slice]:
    """In-plane ``(x, y)`` slices of the brain's bounding box over all axial slices, widened by ``margin`` voxels."""
    xy = brain.any(axis=2)
    if not xy.any():
        return slice(0, brain.shape[0]), slice(0, brain.shape[1])
    xs, ys = np.flatnonzero(xy.any(axis=1)), np.flatnonzero(xy.any(axis=0))
    return (slice(max(0, int(xs[0]) - margin), min(brain.shape[0], int(xs[-1]) + margin + 1)),
            slice(max(0, int(ys[0]) - margin), min(brain.shape[1], int(ys[-1]) + margin + 1)))
