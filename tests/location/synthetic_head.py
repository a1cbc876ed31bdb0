"""A skull-on synthetic DWI made from the MNI152 tissue maps, in a known pose, on a thick-slice grid, with blobs
placed at known MNI points (so their arterial territory is known)."""

from __future__ import annotations

import functools

import numpy as np


def rotation(deg_xyz) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    out = np.eye(3)
    for axis, deg in enumerate(deg_xyz):
        a = np.deg2rad(deg)
        c, s = np.cos(a), np.sin(a)
        r = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


@functools.lru_cache(maxsize=1)
def _tissue():
    import nibabel as nib

    from infarctsam.location.template import nilearn_file

    maps = [nib.load(nilearn_file(n)) for n in ("t1", "gm", "wm")]
    t1, gm, wm = (np.asarray(m.dataobj, dtype=np.float32) for m in maps)
    brain = t1 > 0
    dwi = np.where(brain, 1.25 * gm / 255 + 1.0 * wm / 255 + 0.3 * np.clip(1 - (gm + wm) / 255, 0, 1), 0.0)
    return dwi.astype(np.float32), np.asarray(maps[0].affine)


def territory_points(labels) -> dict[int, np.ndarray]:
    """For each level-1 label, the MNI point deepest inside it in the shipped atlas (as published)."""
    from scipy import ndimage as ndi

    from infarctsam.location.atlas import load_atlas

    atlas = load_atlas()
    raw = np.where(atlas.inside, atlas.level1, 0)
    out = {}
    for lab in labels:
        depth = ndi.distance_transform_edt(raw == lab)
        idx = np.unravel_index(int(np.argmax(depth)), depth.shape)
        out[lab] = (atlas.affine @ np.r_[idx, 1.0])[:3]
    return out


def make_head(rot_deg=(0, 0, 0), shift_mm=(0, 0, 0), spacing=(2.5, 2.5, 5.0), flip_x=False, oblique_deg=0.0,
              n_slices=None, blobs=(), blob_mm=7.0, seed=0):
    """Synthetic DWI (skull and scalp on, Rician-like noise) of an MNI head moved by a rigid pose.

    Returns (dwi, affine, masks): masks[i] is the bool mask of blob i (centred at MNI point blobs[i]).
    """
    from scipy import ndimage as ndi

    src, src_aff = _tissue()
    pose = np.eye(4)  # MNI -> scanner world
    pose[:3, :3] = rotation(rot_deg)
    pose[:3, 3] = shift_mm
    size = np.array([210.0, 240.0, 190.0])
    shape = np.ceil(size / np.array(spacing)).astype(int)
    if n_slices is not None:
        shape[2] = n_slices
    grid = np.eye(4)
    grid[:3, :3] = rotation((0, 0, oblique_deg)) @ np.diag([-s if (k == 0 and flip_x) else s
                                                            for k, s in enumerate(spacing)])
    centre_index = (shape - 1) / 2
    grid[:3, 3] = np.array([0.0, -18.0, 8.0]) - grid[:3, :3] @ centre_index
    idx = np.indices(tuple(shape)).reshape(3, -1).astype(np.float64)
    world = grid[:3, :3] @ idx + grid[:3, 3:4]
    mni = np.linalg.inv(pose) @ np.vstack([world, np.ones(idx.shape[1])])
    vox = np.linalg.solve(src_aff[:3, :3], mni[:3] - src_aff[:3, 3:4])
    dwi = ndi.map_coordinates(src, vox, order=1, cval=0.0).reshape(tuple(shape))
    # skull (dark) and scalp (bright) as ellipsoidal shells around the brain
    r = np.sqrt(((mni[0]) / 78) ** 2 + ((mni[1] + 18) / 102) ** 2 + ((mni[2] - 8) / 88) ** 2).reshape(tuple(shape))
    dwi = np.where((dwi == 0) & (r < 1.02), 0.25, dwi)
    dwi = np.where((r >= 1.02) & (r < 1.08), 0.08, dwi)
    dwi = np.where((r >= 1.08) & (r < 1.16), 0.9, dwi)
    masks = []
    for b in blobs:
        d = np.linalg.norm(mni[:3] - np.asarray(b)[:, None], axis=0).reshape(tuple(shape))
        m = (d <= blob_mm) & (dwi > 0.5)
        dwi = np.where(m, 2.2, dwi)
        masks.append(m)
    rng = np.random.default_rng(seed)
    noisy = np.hypot(dwi + rng.normal(0, 0.03, dwi.shape), rng.normal(0, 0.03, dwi.shape))
    return (1000 * noisy).astype(np.float32), grid, masks
