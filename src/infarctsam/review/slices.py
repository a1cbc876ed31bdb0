"""A case's images as compact display slices for the review page.

The DWI (and ADC, mask, reference) are put in the closest canonical RAS+ orientation (axes permuted and flipped,
never interpolated) and cut into axial slices in radiological convention: the patient's right on the image's left,
anterior at the top, slices from inferior to superior. Large in-plane grids are reduced by an integer factor (block
mean for images, block maximum for masks) to at most ``max_side`` pixels. Images are quantised to uint8 (DWI between
0 and its 99.8th percentile, ADC between 0 and 3000 x10^-6 mm^2/s) and every array is zlib-compressed and
base64-encoded, which the page inflates with the browser's ``DecompressionStream``.
"""

from __future__ import annotations

import base64
import io
import zlib
from typing import Any

import numpy as np

from infarctsam.errors import InputError
from infarctsam.review.collect import ReviewCase

ADC_MAX = 3000.0  # x10^-6 mm^2/s shown as 255


def display_stack(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``(slices, rows, columns)`` in radiological convention and the (row, column, slice) spacing in mm."""
    from infarctsam.preprocess.orient import Reorient

    reo = Reorient.from_affine(affine, data.shape)
    ras = reo.to_canonical(np.asarray(data))
    sx, sy, sz = reo.canonical_spacing
    # canonical [x (towards R), y (towards A), z] -> rows anterior at the top, columns with the patient's right left
    stack = np.transpose(ras[::-1, ::-1, :], (2, 1, 0))
    return np.ascontiguousarray(stack), (float(sy), float(sx), float(sz))


def reduce_inplane(stack: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Reduce rows and columns by an integer ``factor`` (``how``: ``mean`` or ``max``), cropping the remainder."""
    if factor <= 1:
        return stack
    n, h, w = stack.shape
    h2, w2 = h // factor, w // factor
    blocks = stack[:, : h2 * factor, : w2 * factor].reshape(n, h2, factor, w2, factor)
    return blocks.max(axis=(2, 4)) if how == "max" else blocks.mean(axis=(2, 4), dtype=np.float64)


def quantise(values: np.ndarray, hi: float) -> np.ndarray:
    """Map [0, hi] to 0..255 (uint8), clipping; NaN becomes 0."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=hi, neginf=0.0)
    return np.clip(np.rint(v / max(hi, 1e-12) * 255.0), 0, 255).astype(np.uint8)


def pack(arr: np.ndarray) -> str:
    """uint8 array -> base64 of its zlib-compressed bytes (C order)."""
    return base64.b64encode(zlib.compress(np.ascontiguousarray(arr, dtype=np.uint8).tobytes(), 6)).decode("ascii")


def best_slice(mask: np.ndarray) -> int:
    """The slice with the most lesion, or the middle slice when the mask is empty."""
    per = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return int(per.argmax()) if per.any() else mask.shape[0] // 2


def thumbnail_png(image: np.ndarray, mask: np.ndarray, max_side: int = 96) -> bytes:
    """A small PNG of one display slice: grey DWI with the mask in red."""
    from PIL import Image

    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float64)
    on = mask > 0
    rgb[on] = 0.45 * rgb[on] + 0.55 * np.array([255.0, 40.0, 40.0])
    pic = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    scale = max_side / max(pic.size)
    pic = pic.resize((max(1, round(pic.size[0] * scale)), max(1, round(pic.size[1] * scale))), Image.NEAREST)
    buf = io.BytesIO()
    pic.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _read_images(case: ReviewCase) -> tuple[Any, dict[str, np.ndarray], list[str]]:
    """The DWI grid and the arrays on it; problems become notes (a missing DWI leaves the mask on black)."""
    from infarctsam.io.dwi import load_adc, load_dwi
    from infarctsam.io.volume import read_volume

    notes: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    grid = None
    if case.images.get("mask") is not None:
        grid = read_volume(case.images["mask"])
        arrays["mask"] = (np.nan_to_num(np.asarray(grid.data).reshape(grid.spatial_shape)) > 0).astype(np.uint8)
    if case.images.get("dwi") is not None:
        try:
            dwi, _ = load_dwi(case.images["dwi"])
            if grid is None or dwi.same_grid(grid):
                grid = grid or dwi
                arrays["dwi"] = dwi.data
                if case.images.get("adc") is not None:
                    arrays["adc"] = load_adc(case.images["adc"], dwi).data
            else:
                notes.append("the DWI is not on the mask's grid")
        except InputError as exc:
            notes.append(f"DWI/ADC not shown: {exc}")
    if case.images.get("reference") is not None and grid is not None:
        try:
            ref = read_volume(case.images["reference"])
            if ref.with_data(np.asarray(ref.data).reshape(ref.spatial_shape)).same_grid(grid):
                arrays["reference"] = (np.nan_to_num(np.asarray(ref.data).reshape(ref.spatial_shape)) > 0
                                       ).astype(np.uint8)
            else:
                notes.append("the reference mask is not on the mask's grid")
        except InputError as exc:
            notes.append(f"reference not shown: {exc}")
    return grid, arrays, notes


def case_slices(case: ReviewCase, max_side: int = 256) -> tuple[dict[str, Any], bytes | None, list[str]]:
    """The display payload of a case, its thumbnail PNG and notes about images that could not be shown.

    Parameters
    ----------
    case : ReviewCase
        From :func:`infarctsam.review.collect.collect_cases`.
    max_side : int
        Largest in-plane size kept (larger grids are reduced by an integer factor).

    Returns
    -------
    (dict, bytes or None, list of str)
        ``{"shape": [slices, rows, cols], "spacing": [row_mm, col_mm, slice_mm], "start": slice, "dwi": b64,
        "dwi_max": float, "adc": b64 | None, "mask": b64 | None, "reference": b64 | None}``; ``({}, None, notes)``
        when nothing can be shown.
    """
    try:
        grid, arrays, notes = _read_images(case)
    except InputError as exc:
        return {}, None, [f"images not shown: {exc}"]
    if grid is None:
        return {}, None, notes
    stacks: dict[str, np.ndarray] = {}
    spacing = (1.0, 1.0, 1.0)
    for key, arr in arrays.items():
        stacks[key], spacing = display_stack(arr, grid.affine)
    n, h, w = next(iter(stacks.values())).shape
    factor = int(np.ceil(max(h, w) / max_side))
    dwi_max = 1.0
    packed: dict[str, Any] = {}
    for key, stack in stacks.items():
        small = reduce_inplane(stack, factor, "max" if key in ("mask", "reference") else "mean")
        if key == "dwi":
            positive = small[np.isfinite(small) & (small > 0)]
            dwi_max = float(np.percentile(positive, 99.8)) if positive.size else 1.0
            stacks[key] = quantise(small, dwi_max)
        elif key == "adc":
            stacks[key] = quantise(small, ADC_MAX)
        else:
            stacks[key] = small.astype(np.uint8)
        packed[key] = pack(stacks[key])
    shape = list(stacks["mask" if "mask" in stacks else "dwi"].shape)
    mask = stacks.get("mask", np.zeros(shape, np.uint8))
    start = best_slice(mask)
    background = stacks.get("dwi", np.zeros(shape, np.uint8))
    payload = {"shape": shape, "spacing": [spacing[0] * factor, spacing[1] * factor, spacing[2]], "start": start,
               "dwi_max": round(dwi_max, 4), "adc_max": ADC_MAX,
               **{k: packed.get(k) for k in ("dwi", "adc", "mask", "reference")}}
    return payload, thumbnail_png(background[start], mask[start]), notes
