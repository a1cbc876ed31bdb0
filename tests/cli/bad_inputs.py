"""A corpus of broken inputs: each builder writes files into a folder and returns the CLI arguments to segment it.

Every entry must make ``infarctsam segment`` exit non-zero with one clear line on stderr, no traceback and no
output file (not even an empty output folder). The corpus is shared by the single-case and the batch tests; entries
in ``SINGLE_ONLY`` exercise single-case options (``--bval``, ``--reference``, ``--case-id``, ``-o``) and are left out
of the batch.
"""

from __future__ import annotations

import gzip
import json
import os
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


def _dwi4d(folder: Path, n: int = 3, name: str = "multi_dwi.nii.gz") -> Path:
    data = np.random.default_rng(0).uniform(1, 2, (8, 8, 6, n)).astype(np.float32)
    path = folder / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def bval_file(text: str) -> Callable[[Path], list[str]]:
    """A 4D DWI with an explicit ``--bval`` file holding ``text``."""
    def build(folder: Path) -> list[str]:
        dwi = _dwi4d(folder)
        bval = folder / "given.bval"
        bval.write_text(text, encoding="utf-8")
        return [str(dwi), "--bval", str(bval)]
    return build


def bval_beside(text: str) -> Callable[[Path], list[str]]:
    """A 4D DWI with a ``.bval`` sidecar holding ``text`` (found automatically, in a batch too)."""
    def build(folder: Path) -> list[str]:
        dwi = _dwi4d(folder)
        (folder / "multi_dwi.bval").write_text(text, encoding="utf-8")
        return [str(dwi)]
    return build


def json_sidecar(content: str, n: int = 3) -> Callable[[Path], list[str]]:
    """A DWI (4D, or 3D for ``n == 1``) whose BIDS JSON sidecar holds ``content``."""
    def build(folder: Path) -> list[str]:
        dwi = _dwi4d(folder, n) if n > 1 else _good(folder, "multi_dwi.nii.gz")
        (folder / "multi_dwi.json").write_text(content, encoding="utf-8")
        return [str(dwi)]
    return build


def fifo_dwi(folder: Path) -> list[str]:
    path = folder / "pipe_dwi.nii.gz"
    os.mkfifo(path)
    return [str(path)]


def device_dwi(folder: Path) -> list[str]:
    path = folder / "zero_dwi.nii.gz"
    path.symlink_to("/dev/zero")
    return [str(path)]


def bval_from_device(folder: Path) -> list[str]:
    return [str(_dwi4d(folder)), "--bval", "/dev/zero"]


def huge_sparse_file(folder: Path) -> list[str]:
    path = folder / "huge_dwi.nii"
    with path.open("wb") as fh:
        fh.truncate(17 << 30)  # sparse: no disk used, but over the 16 GiB limit
    return [str(path)]


def metaimage(folder: Path, keep_bytes: int | None) -> list[str]:
    """A MetaImage whose data file is cut to ``keep_bytes`` (or missing when None)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))
    sitk.WriteImage(img, str(folder / "meta_dwi.mhd"))
    raw = folder / "meta_dwi.raw"
    if keep_bytes is None:
        raw.unlink()
    else:
        raw.write_bytes(raw.read_bytes()[:keep_bytes])
    return [str(folder / "meta_dwi.mhd")]


def metaimage_special_data(folder: Path, target: str | None) -> list[str]:
    """A MetaImage whose data file is a FIFO (``target`` None) or a link to a device."""
    args = metaimage(folder, None)
    raw = folder / "meta_dwi.raw"
    if target is None:
        os.mkfifo(raw)
    else:
        raw.symlink_to(target)
    return args


def metaimage_header(fields: str, data: bytes = b"\0" * 64, local: bool = False,
                     data_file: str = "promise_dwi.raw") -> Callable[[Path], list[str]]:
    """A hand-written MetaImage (``.mha`` with the data inline when ``local``, else ``.mhd`` + ``data_file``)."""
    def build(folder: Path) -> list[str]:
        head = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nElementSpacing = 1 1 1\n" + fields
                + f"\nElementDataFile = {'LOCAL' if local else data_file}\n").encode("ascii")
        if local:
            (folder / "promise_dwi.mha").write_bytes(head + data)
            return [str(folder / "promise_dwi.mha")]
        (folder / "promise_dwi.mhd").write_bytes(head)
        (folder / "promise_dwi.raw").write_bytes(data)
        return [str(folder / "promise_dwi.mhd")]
    return build


def nifti_promise(shape: tuple[int, ...], gz: bool) -> Callable[[Path], list[str]]:
    """A NIfTI header promising ``shape`` float32 voxels, followed by only 4 KiB of data."""
    def build(folder: Path) -> list[str]:
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(shape)
        hdr.set_data_dtype(np.float32)
        hdr.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
        body = hdr.binaryblock + b"\0" * (352 - 348) + np.ones(1024, np.float32).tobytes()
        path = folder / ("promise_dwi.nii.gz" if gz else "promise_dwi.nii")
        path.write_bytes(gzip.compress(body) if gz else body)
        return [str(path)]
    return build


def dicom_rows_promise(folder: Path) -> list[str]:
    """A DICOM series whose first image's header says 65535 x 65535 pixels (its file holds 16 x 16)."""
    args = _dicom_series(folder)
    first = Path(args[0]) / "s0.dcm"
    raw = first.read_bytes()
    for tag in (b"\x28\x00\x10\x00", b"\x28\x00\x11\x00"):  # Rows, Columns (implicit or explicit VR)
        at = raw.index(tag) + len(tag)
        at += 4 if raw[at:at + 4] in (b"\x02\x00\x00\x00", b"US\x02\x00") else 0
        raw = raw[:at] + b"\xff\xff" + raw[at + 2:]
    first.write_bytes(raw)
    return args


def not_dicom_dcm(folder: Path) -> list[str]:
    series = folder / "series"
    series.mkdir()
    (series / "slice001.dcm").write_bytes(b"this is not DICOM " * 40)
    return [str(series)]


def _dicom_series(folder: Path, skip: int | None = None) -> list[str]:
    """A DICOM series of 6 axial slices, 5 mm apart, written slice by slice (slice ``skip`` left out)."""
    import SimpleITK as sitk

    series = folder / "series"
    series.mkdir()
    vol = (np.random.default_rng(0).random((6, 16, 16)) * 1000).astype(np.int16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(6):
        if k == skip:
            continue
        sl = sitk.GetImageFromArray(vol[k])
        for tag, val in (("0008|0060", "MR"), ("0020|000d", "1.2.3"), ("0020|000e", "1.2.3.4"),
                         ("0020|0013", str(k + 1)), ("0020|0032", f"0\\0\\{k * 5.0}"),
                         ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", "1\\1"), ("0018|0050", "5")):
            sl.SetMetaData(tag, val)
        writer.SetFileName(str(series / f"s{k}.dcm"))
        writer.Execute(sl)
    return [str(series)]


def dicom_missing_slice(folder: Path) -> list[str]:
    return _dicom_series(folder, skip=3)


def fifo_in_dicom_folder(folder: Path) -> list[str]:
    args = _dicom_series(folder)
    os.mkfifo(Path(args[0]) / "s9.dcm")
    return args


def huge_scaling(folder: Path) -> list[str]:
    img = nib.Nifti1Image((np.random.default_rng(0).random((8, 8, 8)) * 1000).astype(np.int16), np.eye(4))
    img.header.set_slope_inter(1e38, 0)
    path = folder / "scaled_dwi.nii.gz"
    nib.save(img, str(path))
    return [str(path)]


def reference_all_nan(folder: Path) -> list[str]:
    good = _good(folder)
    ref = folder / "nan_msk.nii.gz"
    nib.save(nib.Nifti1Image(np.full((24, 26, 10), np.nan, np.float32), np.diag([3.0, 3.0, 6.0, 1.0])), str(ref))
    return [str(good), "--reference", str(ref)]


def adc_unknown_unit(folder: Path) -> list[str]:
    good = _good(folder)
    adc = folder / "odd_adc.nii.gz"
    values = np.random.default_rng(0).uniform(0.5e-6, 1.5e-6, (24, 26, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(values, np.diag([3.0, 3.0, 6.0, 1.0])), str(adc))
    return [str(good), "--adc", str(adc)]


def output_onto_expert_mask(folder: Path) -> list[str]:
    """-o is the input folder, where an expert's mask has the name the output mask would take."""
    good = _good(folder, "case_dwi.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((24, 26, 10), np.uint8), np.diag([3.0, 3.0, 6.0, 1.0])),
             str(folder / "case_mask.nii.gz"))
    return [str(good), "-o", str(folder)]


def output_onto_sidecar(folder: Path) -> list[str]:
    """-o is the input folder; the result JSON would take the name of the DWI's BIDS sidecar."""
    good = _good(folder, "case.nii.gz")
    (folder / "case.json").write_text(json.dumps({"DiffusionBValue": 1000}), encoding="utf-8")
    return [str(good), "-o", str(folder)]


def case_id_onto_dwi(folder: Path) -> list[str]:
    """--case-id chosen so that the output mask is the DWI itself."""
    good = _good(folder, "scan_mask.nii.gz")
    return [str(good), "--case-id", "scan", "-o", str(folder)]


def output_hardlink_to_input(folder: Path) -> list[str]:
    """The output folder holds a hard link to the DWI under the name of the output mask."""
    good = _good(folder, "case_dwi.nii.gz")
    out = folder / "linked"
    out.mkdir()
    os.link(good, out / "case_mask.nii.gz")
    return [str(good), "-o", str(out)]


def output_symlink_to_input(folder: Path) -> list[str]:
    """The output folder holds a symbolic link to the DWI's sidecar under the name of the result JSON."""
    good = _good(folder, "case_dwi.nii.gz")
    (folder / "case_dwi.json").write_text("{}", encoding="utf-8")
    out = folder / "linked"
    out.mkdir()
    (out / "case.json").symlink_to(folder / "case_dwi.json")
    return [str(good), "-o", str(out)]


def output_inside_dicom_folder(folder: Path) -> list[str]:
    args = _dicom_series(folder)
    return [*args, "-o", args[0]]


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


SINGLE_ONLY = {"output_not_writable", "mask_labels_above_one", "reference_other_grid", "reference_all_nan",
               "bval_nan", "bval_from_device", "output_onto_expert_mask", "output_onto_sidecar", "case_id_onto_dwi",
               "output_hardlink_to_input", "output_symlink_to_input", "output_inside_dicom_folder"}

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
    # b-values and sidecars are data (issue 11)
    "bval_nan": bval_file("nan nan nan"),
    "bval_nan_mixed": bval_beside("0 nan 1000"),
    "bval_all_zero": bval_beside("0 0 0"),
    "bval_negative": bval_beside("0 -1000 1000"),
    "bval_infinite": bval_beside("0 inf 1000"),
    "bval_text": bval_beside("zero thousand thousand"),
    "bval_from_device": bval_from_device,
    "sidecar_b_as_text": json_sidecar('{"DiffusionBValue": ["0", "1000", "1000"]}'),
    "sidecar_b_as_dict": json_sidecar('{"DiffusionBValue": {"b": 1000}}'),
    "sidecar_bare_string": json_sidecar('"DiffusionBValue"'),
    "sidecar_bare_number": json_sidecar("1000"),
    "sidecar_list_with_null": json_sidecar('{"bvals": [0, null, 1000]}'),
    "sidecar_bool": json_sidecar('{"DiffusionBValue": [true, false, true]}'),
    "sidecar_not_json": json_sidecar("{'DiffusionBValue': 1000"),
    "sidecar_nested_deep": json_sidecar(deep_json()),
    "sidecar_b0_3d": json_sidecar('{"DiffusionBValue": 0}', n=1),
    # third-party messages become our one line
    "metaimage_short_data": lambda f: metaimage(f, 100),
    "metaimage_missing_data": lambda f: metaimage(f, None),
    "dcm_that_is_not_dicom": not_dicom_dcm,
    "dicom_missing_slice": dicom_missing_slice,
    "huge_intensity_scaling": huge_scaling,
    # regular files only, with size limits
    "fifo_as_dwi": fifo_dwi,
    "device_as_dwi": device_dwi,
    "huge_sparse_file": huge_sparse_file,
    "fifo_in_dicom_folder": fifo_in_dicom_folder,
    "metaimage_fifo_data": lambda f: metaimage_special_data(f, None),
    "metaimage_device_data": lambda f: metaimage_special_data(f, "/dev/zero"),
    "metaimage_data_file_is_device": metaimage_header("DimSize = 8 8 8\nElementType = MET_FLOAT",
                                                      data_file="/dev/urandom"),
    # header fields promising more voxels than the file holds: refused before any allocation (issue 18)
    "nifti_promises_30000_cubed": nifti_promise((30000, 30000, 30000), gz=False),
    "nifti_gz_promises_30000_cubed": nifti_promise((30000, 30000, 30000), gz=True),
    "nifti_promises_more_than_file": nifti_promise((2000, 2000, 200), gz=False),
    "nifti_gz_promises_more_than_ratio": nifti_promise((2000, 2000, 200), gz=True),
    "metaimage_promises_100000_cubed": metaimage_header("DimSize = 100000 100000 100000\nElementType = MET_FLOAT"),
    "metaimage_promises_more_than_file": metaimage_header("DimSize = 512 512 512\nElementType = MET_SHORT"),
    "mha_compressed_promises_more_than_ratio": metaimage_header(
        "CompressedData = True\nDimSize = 1000 1000 1000\nElementType = MET_FLOAT", gzip.compress(b"\0" * 64)[10:],
        local=True),
    "metaimage_negative_size": metaimage_header("DimSize = 8 -8 8\nElementType = MET_UCHAR"),
    "dicom_rows_promise_65535": dicom_rows_promise,
    # smaller ones
    "reference_all_nan": reference_all_nan,
    "adc_unknown_unit": adc_unknown_unit,
    # outputs never land on inputs
    "output_onto_expert_mask": output_onto_expert_mask,
    "output_onto_sidecar": output_onto_sidecar,
    "case_id_onto_dwi": case_id_onto_dwi,
    "output_hardlink_to_input": output_hardlink_to_input,
    "output_symlink_to_input": output_symlink_to_input,
    "output_inside_dicom_folder": output_inside_dicom_folder,
}
