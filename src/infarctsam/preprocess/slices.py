"""Axial slice stack at the model's in-plane size, and its exact geometric inverse.

The canonical (RAS+) volume is cut into axial slices (last axis). Each slice is resampled to ``size`` x ``size``
pixels with square pixels covering the larger of the two in-plane fields of view, centred, padded with zeros
(aspect ratio and physical scale are preserved). :meth:`SliceGrid.to_volume` maps a stack back by evaluating it at the
canonical voxel centres, the exact inverse of the forward coordinate map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliceGrid:
    """Mapping between canonical axial slices and square model images.

    Attributes
    ----------
    in_shape : tuple of int
        Canonical in-plane shape (nx, ny).
    spacing : tuple of float
        Canonical in-plane voxel size in mm (sx, sy).
    size : int
        Model image size in pixels.
    """

    in_shape: tuple[int, int]
    spacing: tuple[float, float]
    size: int

    @property
    def mm_per_pixel(self) -> float:
        """Side of one model pixel in mm."""
        nx, ny = self.in_shape
        sx, sy = self.spacing
        return max(nx * sx, ny * sy) / self.size

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        # canonical index x = (u - (S-1)/2) * mm / sx + (nx-1)/2
        mm = self.mm_per_pixel
        scale = np.array([mm / self.spacing[0], mm / self.spacing[1]])
        centre_in = (np.array(self.in_shape) - 1) / 2.0
        offset = centre_in - scale * (self.size - 1) / 2.0
        return scale, offset

    def to_stack(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """Canonical volume ``(nx, ny, nz)`` to a slice stack ``(nz, size, size)`` (float32, 0 outside)."""
        from scipy import ndimage as ndi

        vol = np.asarray(volume, dtype=np.float32)
        scale, offset = self._scale_offset()
        if order > 0 and np.any(scale > 1.5):  # downsampling: low-pass first to avoid aliasing
            sigma = [max(0.0, 0.4 * (s - 1.0)) for s in scale] + [0.0]
            vol = ndi.gaussian_filter(vol, sigma=sigma)
        out = ndi.affine_transform(
            vol,
            matrix=np.array([scale[0], scale[1], 1.0]),
            offset=np.array([offset[0], offset[1], 0.0]),
            output_shape=(self.size, self.size, vol.shape[2]),
            order=order,
            mode="nearest",
            prefilter=False,
        )
        # Zero the padding: pixels whose centre falls outside the field of view (voxel edges at -0.5 and n-0.5).
        for axis in range(2):
            src = scale[axis] * np.arange(self.size) + offset[axis]
            outside = (src < -0.5) | (src > self.in_shape[axis] - 0.5)
            index = [slice(None)] * 3
            index[axis] = outside
            out[tuple(index)] = 0.0
        return np.ascontiguousarray(np.moveaxis(out, 2, 0))

    def to_volume(self, stack: np.ndarray, order: int = 1) -> np.ndarray:
        """Slice stack ``(nz, size, size)`` back to the canonical grid ``(nx, ny, nz)`` (float32)."""
        from scipy import ndimage as ndi

        st = np.moveaxis(np.asarray(stack, dtype=np.float32), 0, 2)
        scale, offset = self._scale_offset()
        inv = 1.0 / scale
        out = ndi.affine_transform(
            st,
            matrix=np.array([inv[0], inv[1], 1.0]),
            offset=np.array([-offset[0] * inv[0], -offset[1] * inv[1], 0.0]),
            output_shape=(self.in_shape[0], self.in_shape[1], st.shape[2]),
            order=order,
            mode="nearest",
            prefilter=False,
        )
        return out
