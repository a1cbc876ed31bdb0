"""Build the atlases shipped in ``infarctsam/data/atlas`` (a maintainer's tool; nothing here runs in a segmentation).

``python -m infarctsam.location.build ATLAS_1MM OUT_FOLDER`` reads the JHU arterial territory atlas (1 mm MNI,
``ArterialAtlas_padding.nii.gz``, CC BY-SA 4.0) and the MNI152 2009 grey/white-matter maps inside the nilearn wheel,
and writes, on one cropped 2 mm grid:

* ``jhu_arterial_2mm.nii.gz``: level-1 territories (uint8, 1-32), each 2 mm voxel the most frequent 1 mm label of
  its 8 voxels;
* ``regions_2mm.nii.gz``: brain regions derived from both (uint8, :data:`infarctsam.location.labels.REGIONS`):
  cerebellum = superior + inferior cerebellar territories, brainstem = basilar territory, ventricles = the
  lateral-ventricle labels, and in the cerebrum, by the dominant tissue class of the template: deep grey matter
  (GM >= WM and GM + WM >= 0.5 inside the lenticulostriate and choroidal/thalamoperforator territories), white
  matter (WM > GM), cortex (the rest, sulcal CSF included). The side is that of the territory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DEEP_LABELS = (3, 4, 5, 6, 21, 22, 23, 24)


def _tissue_on(affine: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The nilearn MNI152 2009 GM and WM fractions (0-1) sampled (nearest) on a grid."""
    import nibabel as nib

    from infarctsam.location.template import nilearn_file

    out = []
    for name in ("gm", "wm"):
        img = nib.load(nilearn_file(name))
        data = np.asarray(img.dataobj, dtype=np.float32) / 255.0
        idx = np.indices(shape).reshape(3, -1)
        world = affine[:3, :3] @ idx + affine[:3, 3:4]
        src = np.rint(np.linalg.solve(img.affine[:3, :3], world - img.affine[:3, 3:4])).astype(int)
        ok = np.all((src >= 0) & (src < np.array(data.shape)[:, None]), axis=0)
        vals = np.zeros(idx.shape[1], np.float32)
        vals[ok] = data[src[0, ok], src[1, ok], src[2, ok]]
        out.append(vals.reshape(shape))
    return out[0], out[1]


def derive_regions(level1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Region labels (see the module docstring) from level-1 territories and tissue fractions on one grid."""
    left = (level1 % 2) == 1
    inside = level1 > 0
    regions = np.zeros(level1.shape, np.uint8)
    ventricle = np.isin(level1, (31, 32))
    cerebrum = inside & (level1 < 25)
    deep = cerebrum & np.isin(level1, DEEP_LABELS) & (gm >= wm) & (gm + wm >= 0.5)
    white = cerebrum & ~deep & (wm > gm)
    cortex = cerebrum & ~deep & ~white
    for base, part in ((1, cortex), (3, white), (5, deep), (7, np.isin(level1, (27, 28, 29, 30))),
                       (9, np.isin(level1, (25, 26))), (11, ventricle)):
        regions[part & left] = base
        regions[part & ~left] = base + 1
    return regions


def downsample_mode(labels: np.ndarray) -> np.ndarray:
    """2x2x2 blocks to their most frequent label (the array's sizes must be even)."""
    blocks = [labels[a::2, b::2, c::2] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    best = np.zeros(blocks[0].shape, labels.dtype)
    best_count = np.zeros(blocks[0].shape, np.int8)
    for lab in np.unique(labels):
        count = sum((blk == lab).astype(np.int8) for blk in blocks)
        better = count > best_count
        best[better] = lab
        best_count[better] = count[better]
    return best


def build(atlas_1mm: Path, out: Path) -> list[Path]:
    """Write the shipped 2 mm atlases from the 1 mm JHU arterial atlas; returns the files written."""
    import nibabel as nib

    img = nib.load(str(atlas_1mm))
    level1 = np.rint(np.asarray(img.dataobj)).astype(np.uint8)
    nz = np.argwhere(level1 > 0)
    lo = np.maximum(nz.min(0) - 2, 0)
    size = nz.max(0) + 3 - lo
    size += size % 2
    crop = tuple(slice(int(a), int(a + s)) for a, s in zip(lo, size, strict=True))
    level1 = level1[crop]
    aff1 = img.affine.copy()
    aff1[:3, 3] = img.affine[:3, :3] @ lo + img.affine[:3, 3]
    gm, wm = _tissue_on(aff1, level1.shape)
    regions = derive_regions(level1, gm, wm)
    aff2 = aff1 @ np.array([[2, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 2, 0.5], [0, 0, 0, 1.0]])
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, arr in (("jhu_arterial_2mm.nii.gz", level1), ("regions_2mm.nii.gz", regions)):
        small = nib.Nifti1Image(downsample_mode(arr), aff2)
        small.set_data_dtype(np.uint8)
        small.header.set_xyzt_units("mm")
        nib.save(small, str(out / name))
        files.append(out / name)
    return files


if __name__ == "__main__":  # pragma: no cover - maintainer's tool
    for f in build(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"wrote {f}")
