"""DICOM SEG + SR output: written for a DICOM series input (and for NIfTI with --dicom-reference), read back with
highdicom / pydicom, frames checked against the source slices' geometry, and validated with dciodvfy."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.api import segment
from infarctsam.cli import app
from infarctsam.io.volume import read_volume

from dicom_series import write_mr_series
from synthetic_cases import EXAMPLE_STEM, head_phantom, oblique_affine

hd = pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")
pydicom = pytest.importorskip("pydicom")
DCIODVFY = shutil.which("dciodvfy")
runner = CliRunner()


@pytest.fixture
def oblique_series(tmp_path):
    """An MR series of a phantom on an oblique, flipped, anisotropic grid: (folder, data, affine)."""
    aff = oblique_affine(spacing=(1.5, 1.2, 4.0))
    dwi, _, _, _ = head_phantom(spacing=(1.5, 1.2, 4.0), scalp=False)
    folder = tmp_path / "series"
    write_mr_series(folder, dwi, aff)
    return folder, dwi, aff


def _stored(data: np.ndarray) -> np.ndarray:
    """What write_mr_series stores: the values scaled to 0..4000 and rounded."""
    v = np.clip(np.asarray(data, dtype=np.float64), 0, None)
    return np.round(v * (4000.0 / v.max()))


def _world_centres(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    ijk = np.indices(shape).reshape(3, -1)
    return affine[:3, :3] @ ijk + affine[:3, 3:4]


def test_reader_reads_the_oblique_series_on_the_same_world_grid(oblique_series):
    folder, data, aff = oblique_series
    vol = read_volume(folder)
    assert vol.spatial_shape == data.shape
    np.testing.assert_allclose(vol.spacing, (1.5, 1.2, 4.0), atol=1e-4)
    # the same set of voxel centres in the world, and each one carries the same value
    perm = np.rint(np.linalg.inv(aff) @ vol.affine).astype(int)  # voxel index map read -> written
    np.testing.assert_allclose(np.linalg.inv(aff) @ vol.affine, perm, atol=1e-4)
    ijk = np.indices(vol.spatial_shape).reshape(3, -1)
    src = perm[:3, :3] @ ijk + perm[:3, 3:4]
    assert np.array_equal(vol.data.reshape(-1), _stored(data)[tuple(src)])


def _expected_frames(series: Path, mask_nifti: Path) -> dict[str, np.ndarray]:
    """Independent of infarctsam: the mask frame of every source image, through SimpleITK's own geometry (the series'
    pixel (c, r) of slice k -> world -> the NIfTI mask's voxel index)."""
    import SimpleITK as sitk

    mask = sitk.ReadImage(str(mask_nifti))
    data = sitk.GetArrayFromImage(mask)  # (z, y, x)
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(series))
    reader.SetFileNames(files)
    img = reader.Execute()
    out = {}
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        origin = np.array(img.TransformIndexToPhysicalPoint((0, 0, k)))
        assert np.allclose(origin, np.asarray(ds.ImagePositionPatient, dtype=float), atol=1e-3)
        corner = [np.array(mask.TransformPhysicalPointToContinuousIndex(img.TransformIndexToPhysicalPoint(p)))
                  for p in ((0, 0, k), (1, 0, k), (0, 1, k))]
        step_c, step_r = corner[1] - corner[0], corner[2] - corner[0]
        r, c = np.mgrid[0:int(ds.Rows), 0:int(ds.Columns)]
        xyz = np.rint(corner[0][:, None, None] + step_c[:, None, None] * c + step_r[:, None, None] * r).astype(int)
        out[str(ds.SOPInstanceUID)] = data[xyz[2], xyz[1], xyz[0]].astype(np.uint8)
    return out


def _check_seg_geometry(seg_path: Path, series: Path, mask_nifti: Path) -> int:
    """Every SEG frame lands on its source slice: same position, orientation, spacing and Frame of Reference, and the
    pixels equal the mask on that slice; slices without a frame hold no lesion. Returns the number of frames."""
    seg = hd.seg.segread(seg_path)
    sources = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(p, stop_before_pixels=True)
                                                   for p in sorted(series.iterdir()))}
    first = next(iter(sources.values()))
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.PatientID == first.PatientID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               first.ImageOrientationPatient, atol=1e-6)
    np.testing.assert_allclose(shared.PixelMeasuresSequence[0].PixelSpacing, first.PixelSpacing, atol=1e-6)
    assert (seg.Rows, seg.Columns) == (first.Rows, first.Columns)
    expected = _expected_frames(series, mask_nifti)
    pixels = seg.pixel_array if seg.NumberOfFrames > 1 else seg.pixel_array[None]
    seen = set()
    for n, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient,
                                   sources[uid].ImagePositionPatient, atol=1e-4)
        assert np.array_equal(pixels[n], expected[uid]), f"frame {n + 1} differs from the mask on its slice"
        seen.add(uid)
    assert all(not expected[uid].any() for uid in set(expected) - seen)
    assert sum(int(f.sum()) for f in expected.values()) == int(pixels.sum()) > 0
    return int(seg.NumberOfFrames)


def _content_items(seq) -> list[tuple[str, str]]:
    """(concept name, text value) of every TEXT / UIDREF item of an SR content tree."""
    out = []
    for item in seq:
        if "ConceptNameCodeSequence" in item and ("TextValue" in item or "UID" in item):
            out.append((item.ConceptNameCodeSequence[0].CodeMeaning, str(item.get("TextValue") or item.UID)))
        if "ContentSequence" in item:
            out += _content_items(item.ContentSequence)
    return out


def test_dicom_series_in_gives_seg_and_sr_on_the_source_geometry(oblique_series, tmp_path):
    folder, _, _ = oblique_series
    out = tmp_path / "out"
    res = segment(folder, out, engine="threshold", case_id="phantom")
    names = {p.name for p in res.files}
    assert {"phantom_seg.dcm", "phantom_sr.dcm", "phantom_mask.nii.gz"} <= names
    summary = json.loads((out / "phantom.json").read_text(encoding="utf-8"))
    assert summary["outputs"]["dicom_seg"] == "phantom_seg.dcm" and summary["dicom"]["series"] == str(folder)
    n = _check_seg_geometry(out / "phantom_seg.dcm", folder, out / "phantom_mask.nii.gz")
    assert n == int((np.asanyarray(nib.load(str(out / "phantom_mask.nii.gz")).dataobj).sum(axis=(0, 1)) > 0).sum())
    sr = pydicom.dcmread(out / "phantom_sr.dcm")
    seg = pydicom.dcmread(out / "phantom_seg.dcm", stop_before_pixels=True)
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    items = _content_items(sr.ContentSequence)
    assert ("Algorithm Name", "infarctsam threshold") in items
    report = hd.sr.srread(out / "phantom_sr.dcm")
    group = report.content.get_volumetric_roi_measurement_groups()[0]
    values = {m.name.meaning: float(m.value) for m in group.get_measurements()}
    assert values["Volume"] == pytest.approx(summary["volume_ml"], abs=1e-4)
    assert values["Quantity"] == summary["lesion_count"]
    assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID


def test_nifti_with_dicom_reference_real_case(tmp_path):
    """The bundled real ISLES'22 case as a DICOM series; its NIfTI segmented with --dicom-reference."""
    img = nib.load(f"{EXAMPLE_STEM}_dwi.nii.gz")
    series = tmp_path / "series"
    write_mr_series(series, np.asanyarray(img.dataobj), img.affine, patient_id="strokecase0009")
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", f"{EXAMPLE_STEM}_dwi.nii.gz", "--engine", "threshold", "-o", str(out),
                              "--dicom-reference", str(series), "--no-location"])  # the SEG/SR carry no location
    assert res.exit_code == 0, res.output
    stem = "sub-strokecase0009_ses-0001"
    assert _check_seg_geometry(out / f"{stem}_seg.dcm", series, out / f"{stem}_mask.nii.gz") > 0
    summary = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    values = {m.name.meaning: float(m.value) for m in hd.sr.srread(out / f"{stem}_sr.dcm").content
              .get_volumetric_roi_measurement_groups()[0].get_measurements()}
    assert values["Volume"] == pytest.approx(summary["volume_ml"], abs=1e-4)


def test_reference_series_on_another_grid_is_refused_without_output(tmp_path):
    img = nib.load(f"{EXAMPLE_STEM}_dwi.nii.gz")
    shifted = img.affine.copy()
    shifted[:3, 3] += (0.7, 0.0, 0.0)  # a third of a voxel: not the same grid
    series = tmp_path / "series"
    write_mr_series(series, np.asanyarray(img.dataobj), shifted)
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", f"{EXAMPLE_STEM}_dwi.nii.gz", "--engine", "threshold", "-o", str(out),
                              "--dicom-reference", str(series), "--no-location"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "does not lie on the segmented grid" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_dicom_reference_only_for_one_case(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    res = runner.invoke(app, ["segment", str(root), "-o", str(tmp_path / "o"), "--dicom-reference", str(root)])
    assert res.exit_code == 2 and "--dicom-reference applies to one DWI" in res.stderr


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (Debian package dicom3tools)")
@pytest.mark.parametrize("empty", [False, True])
def test_dciodvfy_finds_no_error(oblique_series, tmp_path, empty):
    from infarctsam.outputs.dicom_out import DicomReport, dicom_outputs

    folder, data, aff = oblique_series
    vol = read_volume(folder)
    mask = np.zeros(vol.spatial_shape, np.uint8)
    if not empty:
        mask[10:20, 12:22, 5:9] = 1
    seg, sr = dicom_outputs(folder, mask, vol.affine, DicomReport(1.23, 0 if empty else 1, "sam", "w.safetensors"))
    for name, content in (("seg.dcm", seg), ("sr.dcm", sr)):
        path = tmp_path / name
        path.write_bytes(content)
        res = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, encoding="utf-8",
                             errors="replace", check=False)
        lines = (res.stdout + res.stderr).splitlines()
        assert lines and lines[0] in ("Segmentation", "Comprehensive3DSR"), lines
        errors = [ln for ln in lines if ln.startswith("Error")]
        assert not errors, "\n".join(lines)
    items = _content_items(pydicom.dcmread(tmp_path / "sr.dcm").ContentSequence)
    assert ("Algorithm Name", "infarctsam sam") in items and ("Algorithm Parameters", "weights=w.safetensors") in items


def test_series_without_frame_of_reference_warns_once_and_writes_the_nifti_outputs(tmp_path):
    aff = oblique_affine(spacing=(3.0, 3.0, 6.0))
    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    folder = tmp_path / "series"
    for path in write_mr_series(folder, dwi, aff):
        ds = pydicom.dcmread(path)
        del ds.FrameOfReferenceUID
        ds.save_as(path, enforce_file_format=True)
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", str(folder), "--engine", "threshold", "--case-id", "nofor", "-o", str(out),
                              "--no-qc"])
    assert res.exit_code == 0, res.output
    said = [line for line in res.stderr.splitlines() if "SEG/SR" in line]
    assert len(said) == 1 and said[0].startswith("warning: DICOM SEG/SR not written"), res.stderr
    assert "Frame of Reference UID" in said[0] and "export the series" in said[0]
    summary = json.loads((out / "nofor.json").read_text(encoding="utf-8"))
    assert "Frame of Reference" in summary["dicom"]["skipped"]
    assert (out / "nofor_mask.nii.gz").is_file() and not list(out.glob("*.dcm"))


def test_hostile_dicom_tags_and_folder_name_never_reach_a_path_or_a_line(tmp_path):
    aff = oblique_affine(spacing=(3.0, 3.0, 6.0))
    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    folder = tmp_path / "in" / "evil <script>alert(1)</script> \u202e..%2f\n"
    write_mr_series(folder, dwi, aff, patient_id="../../evil\n<script>", description="<img src=x onerror=alert(1)>"
                    "../../x\x1b[2J")
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", str(folder), "--engine", "threshold", "-o", str(out), "--no-qc"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.rglob("*"))
    assert names and all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", n) for n in names), names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # nothing written elsewhere
    assert all(line.isprintable() for line in (res.stdout + res.stderr).splitlines())
