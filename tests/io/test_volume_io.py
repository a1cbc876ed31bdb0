"""Reading and writing images: NIfTI header fidelity, MetaImage and DICOM geometry, atomic writes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from infarctsam.errors import InputError
from infarctsam.io.volume import read_volume
from infarctsam.io.write import write_like

from synthetic_cases import oblique_affine, save_nifti


@pytest.mark.parametrize("qcode,scode", [(1, 1), (0, 2), (2, 0), (1, 4)])
def test_mask_keeps_exact_nifti_geometry(tmp_path, qcode, scode):
    aff = oblique_affine()
    data = np.random.default_rng(0).random((9, 8, 5)).astype(np.float32)
    src = save_nifti(tmp_path / "in.nii.gz", data, aff, qcode=qcode, scode=scode)
    vol = read_volume(src)
    out = write_like(vol, (vol.data > 0.5).astype(np.uint8), tmp_path / "mask.nii.gz")
    a, b = nib.load(str(src)), nib.load(str(out))
    assert b.shape == a.shape and b.get_data_dtype() == np.uint8
    for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                "qoffset_z", "srow_x", "srow_y", "srow_z"):
        assert np.array_equal(a.header[key], b.header[key]), key
    np.testing.assert_array_equal(a.affine, b.affine)
    np.testing.assert_array_equal(np.asanyarray(b.dataobj), (data > 0.5).astype(np.uint8))


def test_metaimage_lps_to_ras(tmp_path):
    import SimpleITK as sitk

    arr = np.zeros((5, 6, 7), np.float32)  # sitk order (k, j, i)
    arr[1, 2, 3] = 1.0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 1.1, 4.5))
    img.SetOrigin((10.0, -20.0, 30.0))
    sitk.WriteImage(img, str(tmp_path / "x.mha"))
    vol = read_volume(tmp_path / "x.mha")
    assert vol.shape == (7, 6, 5)
    assert vol.data[3, 2, 1] == 1.0
    np.testing.assert_allclose(vol.spacing, (0.9, 1.1, 4.5), rtol=1e-6)
    # voxel (3,2,1) in LPS = origin + (3*0.9, 2*1.1, 1*4.5); RAS flips x and y
    world = vol.affine @ np.array([3, 2, 1, 1.0])
    np.testing.assert_allclose(world[:3], (-(10 + 2.7), -(-20 + 2.2), 30 + 4.5), atol=1e-5)


def test_dicom_series_folder(tmp_path):
    import SimpleITK as sitk

    folder = tmp_path / "dicom"
    folder.mkdir()
    arr = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 17).astype(np.int16)
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing((0.8, 0.8))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in {"0020|000e": "1.2.3.4", "0020|0013": str(k + 1), "0008|0060": "MR",
                           "0020|0032": f"0\\0\\{3.0 * k}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0018|0050": "3.0", "0028|0030": "0.8\\0.8"}.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{k:03d}.dcm"))
        writer.Execute(sl)
    vol = read_volume(folder)
    assert vol.shape == (6, 5, 4)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.8, 3.0), rtol=1e-4)
    np.testing.assert_array_equal(vol.data[:, :, 2], arr[2].T)
    assert vol.meta["dicom_files"] == 4


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    vol = read_volume(save_nifti(tmp_path / "in.nii.gz", np.ones((4, 4, 4), np.float32), np.eye(4)))
    out = tmp_path / "out"
    out.mkdir()

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError):
        write_like(vol, np.zeros((4, 4, 4), np.uint8), out / "m.nii.gz")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip" * 10), "corrupt"),
        (lambda p: p.write_bytes(b"NOT A NIFTI" * 100), "NIfTI"),
    ],
)
def test_unreadable_files_give_one_line(tmp_path, make, needle):
    p = tmp_path / "bad.nii.gz"
    make(p)
    with pytest.raises(InputError) as err:
        read_volume(p)
    assert "\n" not in str(err.value) and needle.lower() in str(err.value).lower()


def test_truncated_gzip(tmp_path):
    good = save_nifti(tmp_path / "good.nii.gz", np.random.default_rng(0).random((20, 20, 20)), np.eye(4))
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_volume(bad)


@pytest.mark.parametrize(
    "data,needle",
    [
        (np.ones((8, 8), np.float32), "2D"),
        (np.ones((4, 4, 4, 2, 2), np.float32), "5D"),
        (np.ones((1, 1, 1), np.float32), "too small"),
        (np.ones((4, 4, 4), np.complex64), "complex"),
    ],
)
def test_wrong_dimensions_and_types(tmp_path, data, needle):
    p = tmp_path / "x.nii"
    img = nib.Nifti1Image(data, np.eye(4))
    nib.save(img, str(p))
    with pytest.raises(InputError, match=needle):
        read_volume(p)


@pytest.mark.parametrize("pixdim", [(1.0, 0.0, 1.0), (0.0, 0.0, 0.0)])
def test_zero_or_missing_spacing(tmp_path, pixdim):
    p = tmp_path / "z.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4, 4, 4))
    hdr.set_data_dtype(np.float32)
    hdr["pixdim"][1:4] = pixdim
    hdr["qform_code"], hdr["sform_code"] = 0, 0
    with p.open("wb") as fh:
        hdr.write_to(fh)
        fh.write(b"\0" * (int(hdr["vox_offset"]) - fh.tell()))
        fh.write(np.arange(64, dtype=np.float32).tobytes())
    with pytest.raises(InputError, match="spacing"):
        read_volume(p)
