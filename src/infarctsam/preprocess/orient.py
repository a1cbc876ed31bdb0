"""Canonical (RAS+) orientation with an exact inverse.

Reorientation only permutes and flips voxel axes (no interpolation), so ``to_input(to_canonical(x)) == x`` holds
bit for bit, for oblique affines too (the closest canonical axes are used, as nibabel's ``as_closest_canonical``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reorient:
    """The axis permutation/flip between an input grid and its canonical RAS+ grid.

    Attributes
    ----------
    ornt : numpy.ndarray
        nibabel orientation array (input axis -> canonical axis, flip) of shape (3, 2).
    input_shape : tuple of int
        Spatial shape of the input grid.
    input_affine : numpy.ndarray
        Input voxel-to-world affine.
    """

    ornt: np.ndarray
    input_shape: tuple[int, int, int]
    input_affine: np.ndarray

    @classmethod
    def from_affine(cls, affine: np.ndarray, shape: tuple[int, ...]) -> Reorient:
        """Build the transform to the closest canonical orientation of ``affine``."""
        import nibabel.orientations as no

        ornt = no.io_orientation(affine)
        return cls(ornt=ornt, input_shape=tuple(int(s) for s in shape[:3]), input_affine=np.asarray(affine, float))

    @property
    def canonical_affine(self) -> np.ndarray:
        """Voxel-to-world affine of the canonical grid (same world positions as the input voxels)."""
        import nibabel.orientations as no

        return self.input_affine @ no.inv_ornt_aff(self.ornt, self.input_shape)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the canonical grid."""
        shape = [0, 0, 0]
        for axis, (target, _flip) in enumerate(self.ornt):
            shape[int(target)] = self.input_shape[axis]
        return tuple(shape)  # type: ignore[return-value]

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along R, A, S."""
        return tuple(float(x) for x in np.linalg.norm(self.canonical_affine[:3, :3], axis=0))  # type: ignore

    def to_canonical(self, data: np.ndarray) -> np.ndarray:
        """Input-grid array (3D, or with trailing channel axes) to canonical RAS+ order."""
        import nibabel.orientations as no

        return np.ascontiguousarray(no.apply_orientation(data, self.ornt))

    def to_input(self, data: np.ndarray) -> np.ndarray:
        """Canonical array back to the input grid's voxel order (exact inverse of :meth:`to_canonical`)."""
        import nibabel.orientations as no

        ras = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
        back = no.ornt_transform(ras, self.ornt)
        return np.ascontiguousarray(no.apply_orientation(data, back))
