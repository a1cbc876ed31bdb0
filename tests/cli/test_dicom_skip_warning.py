"""A DICOM DWI whose SEG/SR cannot be written still gives its NIfTI outputs, and says why in one warning line on
stderr with the fix (issue 18): without the ``dicom`` extra here; a series without a Frame of Reference UID in
tests/outputs/test_dicom_out.py (it needs pydicom to write one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from infarctsam.cli import app

from synthetic_cases import head_phantom


def sitk_series(folder: Path) -> Path:
    """A phantom DWI written slice by slice as a DICOM series with SimpleITK (no pydicom needed)."""
    import SimpleITK as sitk

    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    vol = np.round(np.clip(dwi, 0, None) / max(float(dwi.max()), 1e-6) * 4000).astype(np.int16)
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(vol.shape[2]):
        sl = sitk.GetImageFromArray(np.ascontiguousarray(vol[:, :, k].T))
        sl.SetSpacing((3.0, 3.0))
        for tag, val in (("0008|0060", "MR"), ("0020|000d", "1.2.826.0.1.3680043.8.498.1"),
                         ("0020|000e", "1.2.826.0.1.3680043.8.498.2"), ("0020|0052", "1.2.826.0.1.3680043.8.498.3"),
                         ("0020|0013", str(k + 1)), ("0020|0032", f"0\\0\\{k * 6.0}"),
                         ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", "3\\3"), ("0018|0050", "6")):
            sl.SetMetaData(tag, val)
        writer.SetFileName(str(folder / f"IM{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


def test_dicom_dwi_without_the_dicom_extra_warns_once_with_the_fix(tmp_path, monkeypatch):
    series = sitk_series(tmp_path / "series")
    monkeypatch.setitem(sys.modules, "highdicom", None)  # as if the extra were not installed: import fails
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["segment", str(series), "--engine", "threshold", "--case-id", "ph", "-o", str(out),
                                   "--no-qc"])
    assert res.exit_code == 0, res.output
    said = [line for line in res.stderr.splitlines() if "SEG/SR" in line]
    assert len(said) == 1, res.stderr
    assert said[0].startswith("warning: DICOM SEG/SR not written") and "pip install 'infarctsam[dicom]'" in said[0]
    summary = json.loads((out / "ph.json").read_text(encoding="utf-8"))
    assert "highdicom" in summary["dicom"]["skipped"] and summary["dicom"]["warning"] in summary["warnings"]
    assert (out / "ph_mask.nii.gz").is_file() and not list(out.glob("*.dcm"))
