"""The MNI152 2009 template (symmetric, 09a) inside the installed nilearn wheel, ready for registration.

Nothing is fetched: the T1 template and the grey/white-matter maps are package data of nilearn. The T1 there is
already brain-extracted, so the brain mask is its non-zero part (holes filled at 3 mm). For registration the template is
smoothed and resampled to :data:`TEMPLATE_MM` (the DWI it meets is 2-6 mm thick per slice), once per process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from infarctsam.errors import InputError

NILEARN_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
TEMPLATE_MM = 3.0
DWI_LEVELS = (1.2, 1.0, 0.3)  # b=1000 DWI intensity of grey matter, white matter, CSF relative to white matter
LPS = np.diag([-1.0, -1.0, 1.0])


def nilearn_file(name: str) -> str:
    """Path of one MNI152 2009 file (``t1``, ``gm`` or ``wm``) inside the installed nilearn package."""
    import nilearn

    path = os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data", NILEARN_FILES[name])
    if not os.path.isfile(path):
        raise InputError(f"the MNI152 template is missing from the installed nilearn package: {path}")
    return path


@dataclass(frozen=True)
class RegistrationTemplate:
    """The template for registration.

    Attributes
    ----------
    image : SimpleITK.Image
        Brain-extracted T1, float32, on a :data:`TEMPLATE_MM` grid (LPS physical space, as ITK uses).
    mask : SimpleITK.Image
        Its brain mask (uint8), same grid.
    brain : numpy.ndarray
        The brain mask as a (x, y, z) bool array on that grid.
    affine : numpy.ndarray
        4x4 voxel-to-MNI (RAS, mm) matrix of that grid.
    """

    image: Any
    mask: Any
    brain: np.ndarray
    affine: np.ndarray


def to_sitk(array: np.ndarray, affine: np.ndarray) -> Any:
    """A SimpleITK image from an (x, y, z) array and its RAS voxel-to-world affine (columns orthogonalised)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    lin = np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    u, _, vt = np.linalg.svd(lin / spacing)
    direction = LPS @ (u @ vt)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in direction.ravel()])
    img.SetOrigin([float(v) for v in LPS @ np.asarray(affine, dtype=np.float64)[:3, 3]])
    return img


@functools.lru_cache(maxsize=1)
def registration_template() -> RegistrationTemplate:
    """Load and prepare the template once per process (about 0.5 s)."""
    import nibabel as nib
    from scipy import ndimage as ndi

    img = nib.load(nilearn_file("t1"))
    step = int(round(TEMPLATE_MM))
    size = [s - s % step for s in img.shape]
    blocks = (size[0] // step, step, size[1] // step, step, size[2] // step, step)
    crop = tuple(slice(0, s) for s in size)

    def block_mean(arr: np.ndarray) -> np.ndarray:  # uint8 / bool 1 mm -> float 3 mm block means
        return arr[crop].reshape(blocks).sum(axis=(1, 3, 5), dtype=np.uint32) / float(step ** 3)

    brain = np.asarray(img.dataobj) > 0
    frac = block_mean(brain)
    gm, wm = (block_mean(np.asarray(nib.load(nilearn_file(n)).dataobj) * brain) / 255.0 for n in ("gm", "wm"))
    csf = np.clip(frac - gm - wm, 0.0, None)
    small = DWI_LEVELS[0] * gm + DWI_LEVELS[1] * wm + DWI_LEVELS[2] * csf
    small_brain = ndi.binary_fill_holes(frac >= 0.5)
    affine = np.asarray(img.affine, dtype=np.float64) @ np.diag([step, step, step, 1.0])
    affine[:3, 3] = img.affine[:3, :3] @ np.full(3, (step - 1) / 2) + img.affine[:3, 3]
    small = np.where(small_brain, small / max(float(np.median(small[small_brain])), 1e-6), 0.0).astype(np.float32)
    return RegistrationTemplate(to_sitk(small, affine), to_sitk(small_brain.astype(np.uint8), affine), small_brain,
                                affine)
