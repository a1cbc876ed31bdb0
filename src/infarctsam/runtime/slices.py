"""The slice stack the runtimes share: which axial slices go to the model, their model inputs, the way back onto the
canonical grid, and the runs of slices decoded with memory.

Every runtime (:mod:`infarctsam.runtime.predictor` with PyTorch or ONNX Runtime, the compiled
:mod:`infarctsam.runtime.openvino_parts`) uses these same functions, so their probabilities agree slice for slice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from infarctsam.preprocess.pipeline import Preprocessed
from infarctsam.preprocess.slices import SliceGrid


def brain_slices(brain: np.ndarray, min_voxels: int = 10, min_fraction: float = 0.03) -> np.ndarray:
    """Indices of axial slices holding at least ``min_voxels`` brain voxels and ``min_fraction`` of the largest
    slice's brain area (slices grazing the brain's top or bottom edge carry no usable tissue)."""
    area = brain.sum(axis=(0, 1))
    return np.flatnonzero((area >= min_voxels) & (area >= min_fraction * area.max()))


def model_input_slices(case: Preprocessed, image_size: int) -> tuple[np.ndarray, SliceGrid, np.ndarray]:
    """Model input slices ``(n, 3, S, S)`` (float32) of the brain slices, the grid, and the slice indices used."""
    from infarctsam.preprocess.channels import model_channels

    channels = model_channels(case)
    sp = case.spacing
    grid = SliceGrid(case.dwi.shape[:2], (sp[0], sp[1]), image_size)
    zs = brain_slices(case.brain)
    images = np.empty((len(zs), channels.shape[0], image_size, image_size), np.float32)
    for c in range(channels.shape[0]):
        images[:, c] = grid.to_stack(channels[c][:, :, zs])
    return images, grid, zs


def stack_to_volume(probs: np.ndarray, grid: SliceGrid, zs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities ``(n, S, S)`` of the slices ``zs`` mapped back onto the canonical grid ``shape``."""
    out = np.zeros(shape, dtype=np.float32)
    if zs.size:
        out[:, :, zs] = np.clip(grid.to_volume(probs), 0.0, 1.0)
    return out


def lesion_segments(present: np.ndarray, margin: int) -> list[tuple[int, int]]:
    """Runs ``[start, stop)`` covering the slices flagged ``present``, widened by ``margin`` and merged."""
    idx = np.flatnonzero(present)
    segments: list[list[int]] = []
    for i in idx:
        lo, hi = max(0, int(i) - margin), min(len(present), int(i) + margin + 1)
        if segments and lo <= segments[-1][1]:
            segments[-1][1] = max(segments[-1][1], hi)
        else:
            segments.append([lo, hi])
    return [(a, b) for a, b in segments]


SliceSelect = Callable[[np.ndarray], np.ndarray]


def memory_margin(num_maskmem: int) -> int:
    """Slices decoded with memory before (and after) a slice that may hold lesion: enough for the pass to reach it
    with its spatial memory bank full (``num_maskmem - 1`` previous slices), at least one."""
    return max(1, num_maskmem - 1)


def memory_segments(probs: np.ndarray, scores: np.ndarray, margin: int, select: SliceSelect | None = None
                    ) -> list[tuple[int, int]]:
    """The runs of slices decoded with memory: slices whose single-slice object score says "lesion" and, with
    ``select`` (``select(probs) -> bool per slice`` from the single-slice probabilities ``(n, S, S)``), that it
    keeps, widened by ``margin`` slices and merged (:func:`lesion_segments`)."""
    present = scores > 0
    if select is not None:
        present = present & np.asarray(select(probs), dtype=bool)
    return lesion_segments(present, margin)


def stack_select(select_volume: Callable[[np.ndarray], np.ndarray], grid: SliceGrid, zs: np.ndarray,
                 shape: tuple[int, ...]) -> SliceSelect:
    """A :data:`SliceSelect` on the model's slice stack from a test on the canonical grid: ``select_volume(prob)``
    takes a probability volume of ``shape`` and says for each axial slice ``z`` whether it may hold lesion."""
    def select(probs: np.ndarray) -> np.ndarray:
        return np.asarray(select_volume(stack_to_volume(probs, grid, zs, shape)), dtype=bool)[zs]

    return select
