"""Synthetic cohorts for the evaluation tests: tiny masks on an anisotropic, flipped grid (imported by the tests)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

# Anisotropic and flipped (negative i and k axes): voxel 0.9 x 1.1 x 3.0 mm = 2.97 mm^3.
AFFINE = np.array([[-0.9, 0.0, 0.0, 50.0], [0.0, 1.1, 0.0, -40.0], [0.0, 0.0, -3.0, 20.0], [0.0, 0.0, 0.0, 1.0]])
SHAPE = (12, 12, 8)
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def save_mask(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    """Write a uint8 NIfTI mask (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine), str(path))
    return path


def gt_mask(i: int) -> np.ndarray:
    """Reference mask of case i: a box of (2r+1) x (2r+1) x 2 voxels; case 2 has a second one-voxel lesion."""
    m = np.zeros(SHAPE, dtype=np.uint8)
    r = 1 + i % 3
    m[5 - r : 6 + r, 5 - r : 6 + r, 3:5] = 1
    if i == 2:
        m[10, 10, 0] = 1
    return m


def make_cohort(root: Path, n: int = 6, missing: int | None = 5, mismatch: int | None = None) -> dict[str, Path]:
    """Reference folder ``gt`` (``caseNN_msk``), ``methodA`` (``caseNN_mask``, shifted by one voxel along i, case
    ``missing`` absent) and ``methodB`` (``caseNN``, the reference plus one false-positive voxel). ``mismatch``: that
    case of methodA is written on a grid with a different affine."""
    gt, a, b = root / "gt", root / "methodA", root / "methodB"
    for i in range(n):
        g = gt_mask(i)
        save_mask(gt / f"case{i:02d}_msk.nii.gz", g)
        if i != missing:
            aff = AFFINE.copy()
            if i == mismatch:
                aff[0, 3] += 5.0
            save_mask(a / f"case{i:02d}_mask.nii.gz", np.roll(g, 1, axis=0), aff)
        pb = g.copy()
        pb[0, 0, 7] = 1
        save_mask(b / f"case{i:02d}.nii.gz", pb)
    (a / "case00.json").write_text("{}", encoding="utf-8")
    return {"gt": gt, "a": a, "b": b}
