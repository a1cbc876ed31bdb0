"""The shipped atlases (2 mm MNI grid) and the look-up of a native-space mask in them.

Every lesion voxel of the scan is split into sub-points about 2 mm apart (a 5 mm slice gives three), each carrying
its share of the voxel's volume; each sub-point is mapped to MNI with the registration and takes the atlas label of
the nearest atlas voxel. A point that falls outside the atlas but within :data:`NEAREST_MM` of it (a linear mapping
cannot match every cortical surface, least of all a swollen hemisphere) takes the nearest territory. Volumes are
therefore native-space millilitres and add up to the mask's volume.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

ATLAS_MM = 2.0
NEAREST_MM = 8.0  # points this close outside the atlas take the nearest territory (a linear map misses the cortex)


@dataclass(frozen=True)
class Atlas:
    """Level-1 arterial territories and derived regions on one 2 mm MNI grid.

    Attributes
    ----------
    level1, regions : numpy.ndarray
        uint8 label arrays (x, y, z); 0 outside (grown by :data:`NEAREST_MM`).
    affine : numpy.ndarray
        4x4 voxel-to-MNI (RAS, mm) matrix.
    level1_ml : numpy.ndarray
        MNI volume (mL) of every level-1 label (index 0-32) in the atlas as published (before growing).
    inside : numpy.ndarray
        bool, the atlas as published (before growing).
    """

    level1: np.ndarray
    regions: np.ndarray
    affine: np.ndarray
    level1_ml: np.ndarray
    inside: np.ndarray

    @property
    def voxel_ml(self) -> float:
        """Volume of one atlas voxel (mL)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)


@functools.lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """Read the shipped atlases once per process."""
    import nibabel as nib

    folder = resources.files("infarctsam").joinpath("data", "atlas")
    imgs = [nib.load(str(folder.joinpath(name))) for name in ("jhu_arterial_2mm.nii.gz", "regions_2mm.nii.gz")]
    if not np.allclose(imgs[0].affine, imgs[1].affine) or imgs[0].shape != imgs[1].shape:
        raise RuntimeError("the shipped atlases do not share one grid")  # a broken installation, not bad input
    raw = np.asarray(imgs[0].dataobj, dtype=np.uint8)
    voxel_ml = float(abs(np.linalg.det(imgs[0].affine[:3, :3])) / 1000.0)
    volumes = np.bincount(raw.ravel(), minlength=33)[:33] * voxel_ml
    arrays = [_grown(np.asarray(img.dataobj, dtype=np.uint8), imgs[0].header.get_zooms()[0]) for img in imgs]
    for arr in arrays:
        arr.setflags(write=False)
    inside = raw > 0
    inside.setflags(write=False)
    return Atlas(arrays[0], arrays[1], np.asarray(imgs[0].affine, dtype=np.float64), volumes, inside)


def _grown(labels: np.ndarray, mm: float) -> np.ndarray:
    """Labels extended to the unlabelled voxels within :data:`NEAREST_MM` of a labelled one (nearest label)."""
    from scipy import ndimage as ndi

    dist, (i, j, k) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return np.where(dist * float(mm) <= NEAREST_MM, labels[i, j, k], 0).astype(np.uint8)


def lesion_labels(mask: np.ndarray, affine: np.ndarray, to_mni: np.ndarray,
                  atlas: Atlas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atlas labels under a native mask.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean lesion mask (x, y, z).
    affine : numpy.ndarray
        Its 4x4 voxel-to-world (RAS, mm) matrix.
    to_mni : numpy.ndarray
        4x4 world-to-MNI matrix from the registration.
    atlas : Atlas
        The atlases.

    Returns
    -------
    (level1, regions, ml) : numpy.ndarray
        Per sub-point: level-1 label, region label (0 = outside the atlas) and native volume (mL).
    """
    idx = np.argwhere(np.asarray(mask, dtype=bool)).astype(np.float64)
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    n = np.maximum(np.ceil(spacing / ATLAS_MM).astype(int), 1)
    offsets = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in n], indexing="ij"), -1).reshape(-1, 3)
    pts = (idx[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    voxel_ml = float(abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0)
    ml = np.full(pts.shape[0], voxel_ml / offsets.shape[0])
    to_atlas = np.linalg.inv(atlas.affine) @ np.asarray(to_mni, dtype=np.float64) @ np.asarray(affine)
    src = np.rint(pts @ to_atlas[:3, :3].T + to_atlas[:3, 3]).astype(np.int64)
    ok = np.all((src >= 0) & (src < np.array(atlas.level1.shape)), axis=1)
    level1 = np.zeros(pts.shape[0], np.uint8)
    regions = np.zeros(pts.shape[0], np.uint8)
    level1[ok] = atlas.level1[src[ok, 0], src[ok, 1], src[ok, 2]]
    regions[ok] = atlas.regions[src[ok, 0], src[ok, 1], src[ok, 2]]
    return level1, regions, ml
