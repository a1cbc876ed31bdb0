"""A corpus of broken inputs: each builder writes files into a folder and returns the CLI arguments to segment it.

Every entry must make ``infarctsam segment`` exit non-zero with one clear line on stderr, no traceback and no
output file. The corpus is shared by the single-case and the batch tests.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np


def _good(folder: Path, name: str = "good_dwi.nii.gz") -> Path:
    from synthetic_cases import head_phantom, save_nifti

    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    return save_nifti(folder / name, dwi, np.diag([3.0, 3.0, 6.0, 1.0]))


def _nifti(folder: Path, data: np.ndarray, affine=None, name="bad_dwi.nii.gz") -> list[str]:
    path = folder / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return [str(path)]


def _raw_header(folder: Path, pixdim) -> list[str]:
    path = folder / "nospacing_dwi.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((6, 6, 6))
    hdr.set_data_dtype(np.float32)
    hdr["pixdim"][1:4] = pixdim
    hdr["qform_code"], hdr["sform_code"] = 0, 0
    with path.open("wb") as fh:
        hdr.write_to(fh)
        fh.write(b"\0" * (int(hdr["vox_offset"]) - fh.tell()))
        fh.write(np.random.default_rng(0).random(216).astype(np.float32).tobytes())
    return [str(path)]


def truncated_gzip(folder: Path) -> list[str]:
    good = _good(folder)
    bad = folder / "trunc_dwi.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    return [str(bad)]


def wrong_magic(folder: Path) -> list[str]:
    path = folder / "magic_dwi.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    return [str(path)]


def empty_file(folder: Path) -> list[str]:
    path = folder / "empty_dwi.nii.gz"
    path.write_bytes(b"")
    return [str(path)]


def unsupported_format(folder: Path) -> list[str]:
    path = folder / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    return [str(path)]


def mask_labels_above_one(folder: Path) -> list[str]:
    good = _good(folder)
    labels = np.zeros((24, 26, 10), np.uint8)
    labels[5:8, 5:8, 3:5] = 2
    ref = folder / "labels_msk.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([3.0, 3.0, 6.0, 1.0])), str(ref))
    return [str(good), "--reference", str(ref)]


def reference_other_grid(folder: Path) -> list[str]:
    good = _good(folder)
    ref = folder / "grid_msk.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), str(ref))
    return [str(good), "--reference", str(ref)]


def adc_not_overlapping(folder: Path) -> list[str]:
    good = _good(folder)
    far = np.diag([3.0, 3.0, 6.0, 1.0])
    far[:3, 3] = 900.0
    adc = folder / "far_adc.nii.gz"
    nib.save(nib.Nifti1Image(np.full((24, 26, 10), 800.0, np.float32) + np.arange(10), far), str(adc))
    return [str(good), "--adc", str(adc)]


def four_d_without_bvals(folder: Path) -> list[str]:
    data = np.random.default_rng(0).uniform(1, 2, (8, 8, 6, 3)).astype(np.float32)
    return _nifti(folder, data)


def empty_brain(folder: Path) -> list[str]:
    data = np.zeros((20, 20, 10), np.float32)
    data[10, 10, 5] = 5.0
    return _nifti(folder, data)


def not_writable_output(folder: Path) -> list[str]:
    good = _good(folder)
    blocker = folder / "outfile"
    blocker.write_text("a file where the output folder should be", encoding="utf-8")
    return [str(good), "-o", str(blocker / "sub")]


BAD_INPUTS: dict[str, Callable[[Path], list[str]]] = {
    "truncated_gzip": truncated_gzip,
    "wrong_magic": wrong_magic,
    "empty_file": empty_file,
    "unsupported_format": unsupported_format,
    "2d_image": lambda f: _nifti(f, np.ones((8, 8), np.float32)),
    "5d_image": lambda f: _nifti(f, np.ones((4, 4, 4, 2, 2), np.float32)),
    "complex_data": lambda f: _nifti(f, (np.ones((6, 6, 6)) * (1 + 1j)).astype(np.complex64)),
    "all_zero": lambda f: _nifti(f, np.zeros((6, 6, 6), np.float32)),
    "all_nan": lambda f: _nifti(f, np.full((6, 6, 6), np.nan, np.float32)),
    "constant": lambda f: _nifti(f, np.full((6, 6, 6), 3.0, np.float32)),
    "one_voxel": lambda f: _nifti(f, np.ones((1, 1, 1), np.float32)),
    "zero_spacing": lambda f: _raw_header(f, (1.0, 0.0, 1.0)),
    "missing_spacing": lambda f: _raw_header(f, (0.0, 0.0, 0.0)),
    "adc_not_overlapping": adc_not_overlapping,
    "directory_without_cases": lambda f: [str(f / "emptydir")] if (f / "emptydir").mkdir() is None else [],
    "missing_path": lambda f: [str(f / "does_not_exist_dwi.nii.gz")],
    "output_not_writable": not_writable_output,
    "mask_labels_above_one": mask_labels_above_one,
    "reference_other_grid": reference_other_grid,
    "4d_without_bvals": four_d_without_bvals,
    "empty_brain": empty_brain,
}
