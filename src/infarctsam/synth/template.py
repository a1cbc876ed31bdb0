"""The MNI152 2009 (symmetric, 09a) template and tissue maps shipped in the nilearn wheel, on a cropped 1 mm grid.

Nothing is fetched: the three files live inside the installed ``nilearn`` package. The T1 template there is already
brain-extracted, so the brain mask is ``T1 > 0``; grey- and white-matter probabilities come from the GM/WM maps and
CSF is what is left of the brain (``1 - GM - WM``). Skull and scalp are not in the template: phantoms with a skull
simulate them as shells at a distance outside the brain mask (see :mod:`infarctsam.synth.contrast`).

The SOOP lesion masks share this space (MNI, 1 mm) on a smaller grid with a flipped x axis; the mapping between the
two grids is an integer index shift, derived from both affines rather than assumed.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from infarctsam.errors import InputError

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
# Room left around the brain for the simulated skull and scalp (mm).
HEAD_MARGIN_MM = 16
# Distance outside the brain is also stored quantised (uint8, this many codes per mm, saturating at 255).
OUTSIDE_CODE_PER_MM = 8.0


@dataclass(frozen=True)
class Template:
    """Tissue maps on a 1 mm MNI grid cropped to the brain plus a margin for the skull.

    Attributes
    ----------
    affine : numpy.ndarray
        4x4 voxel-to-MNI (mm) matrix of the cropped grid.
    gm, wm, csf : numpy.ndarray
        float32 tissue fractions in [0, 1]; they sum to 1 inside the brain and are 0 outside.
    brain : numpy.ndarray
        bool brain mask (brain tissue and the CSF inside it).
    tissue_code : numpy.ndarray
        uint8 ``round(255 * (GM + WM))``, for table look-ups of functions of the tissue fraction.
    outside_mm : numpy.ndarray
        float32 distance (mm) of every voxel outside the brain to the brain surface, 0 inside.
    outside_code : numpy.ndarray
        uint8 ``min(round(OUTSIDE_CODE_PER_MM * outside_mm), 255)``, for table look-ups.
    ventricle_centres_mm : numpy.ndarray
        (2, 3) MNI coordinates of the left and right lateral ventricles (centroids of central CSF).
    brain_centre_mm : numpy.ndarray
        MNI coordinates of the brain mask centroid.
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    tissue_code: np.ndarray
    outside_mm: np.ndarray
    outside_code: np.ndarray
    ventricle_centres_mm: np.ndarray
    brain_centre_mm: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return tuple(int(s) for s in self.brain.shape)  # type: ignore[return-value]

    @property
    def tissue(self) -> np.ndarray:
        """GM + WM fraction."""
        return self.gm + self.wm

    def world_to_index(self) -> np.ndarray:
        """4x4 MNI-mm to voxel-index matrix."""
        return np.linalg.inv(self.affine)


def nilearn_data_dir() -> str:
    """Folder of the data files shipped inside the installed nilearn package."""
    try:
        import nilearn
    except ImportError as exc:  # pragma: no cover - nilearn is a hard dependency
        raise InputError("nilearn is not installed; it ships the MNI152 template used by infarctsam.synth") from exc
    return os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data")


def _read(name: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    path = os.path.join(nilearn_data_dir(), TEMPLATE_FILES[name])
    if not os.path.isfile(path):
        raise InputError(f"MNI152 template file missing from the nilearn package: {path}")
    img = nib.load(path)
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the template once per process (about 1 s) and return the cached :class:`Template`."""
    from scipy import ndimage as ndi

    t1, affine = _read("t1")
    gm_raw, aff_gm = _read("gm")
    wm_raw, aff_wm = _read("wm")
    if not (np.allclose(affine, aff_gm) and np.allclose(affine, aff_wm)):
        raise InputError("MNI152 template and tissue maps in nilearn do not share one grid")
    brain_full = ndi.binary_fill_holes(t1 > 0)
    idx = np.nonzero(brain_full)
    lo = [max(int(i.min()) - HEAD_MARGIN_MM, 0) for i in idx]
    hi = [min(int(i.max()) + 1 + HEAD_MARGIN_MM, s) for i, s in zip(idx, t1.shape, strict=True)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    brain = brain_full[crop]
    gm = (gm_raw[crop].astype(np.float32) / 255.0) * brain
    wm = (wm_raw[crop].astype(np.float32) / 255.0) * brain
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    shift = np.eye(4)
    shift[:3, 3] = lo
    aff = affine @ shift
    outside = ndi.distance_transform_edt(~brain).astype(np.float32)
    centre = _centroid_mm(brain, aff)
    vents = _ventricle_centres(csf, aff)
    code = np.round((gm + wm) * 255.0).astype(np.uint8)
    out_code = np.minimum(np.round(outside * OUTSIDE_CODE_PER_MM), 255).astype(np.uint8)
    for arr in (gm, wm, csf, outside, brain, code, out_code):
        arr.setflags(write=False)
    return Template(aff, gm, wm, csf, brain, code, outside, out_code, vents, centre)


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    idx = np.array([i.mean() for i in np.nonzero(mask)] + [1.0])
    return (affine @ idx)[:3]


def _ventricle_centres(csf: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Centroids of nearly pure CSF in a central box (the lateral ventricles), left and right."""
    ijk = np.indices(csf.shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    sel = (csf.ravel() > 0.9) & (np.abs(xyz[0]) < 30) & (xyz[1] > -45) & (xyz[1] < 30) & (xyz[2] > 0) & (xyz[2] < 35)
    out = []
    for side in (-1, 1):
        s = sel & (np.sign(xyz[0]) == side)
        out.append(xyz[:, s].mean(axis=1) if s.any() else np.array([15.0 * side, -10.0, 15.0]))
    return np.array(out)


def grid_index_map(src_affine: np.ndarray, dst_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer index mapping between two 1 mm axis-aligned grids of one space: ``dst = sign * src + offset``.

    Parameters
    ----------
    src_affine, dst_affine : numpy.ndarray
        4x4 affines whose 3x3 parts are diagonal with entries +-1 (possibly different signs).

    Returns
    -------
    sign, offset : numpy.ndarray
        int arrays of length 3.
    """
    m = np.linalg.inv(dst_affine) @ src_affine
    lin = m[:3, :3]
    if not np.allclose(lin, np.diag(np.round(np.diag(lin)))) or not np.allclose(np.abs(np.diag(lin)), 1.0):
        raise InputError("lesion grid and template grid are not the same 1 mm axis-aligned space")
    if not np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=1e-3):
        raise InputError("lesion grid is shifted by a fraction of a voxel from the template grid")
    return np.round(np.diag(lin)).astype(int), np.round(m[:3, 3]).astype(int)
