"""Test helper: write a volume as a single-frame MR Image Storage series (one file per slice) with pydicom.

The geometry follows the volume's RAS affine exactly (converted to DICOM's LPS): voxel (i, j, k) is column i, row j
of slice k, so an oblique, flipped, anisotropic grid gives oblique ImageOrientationPatient vectors and unequal
PixelSpacing values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_mr_series(folder: Path, data: np.ndarray, affine: np.ndarray, *, patient_id: str = "PHANTOM01",
                    description: str = "DWI trace b1000", seed: int = 0) -> list[Path]:
    """Write ``data`` (i, j, k) on the RAS ``affine`` as an MR series in ``folder``; return the file paths."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lps = LPS @ affine
    col_vec, row_vec, slice_vec = (lps[:3, n] for n in range(3))
    dx, dy, dz = (float(np.linalg.norm(v)) for v in (col_vec, row_vec, slice_vec))
    orientation = [*(col_vec / dx), *(row_vec / dy)]
    values = np.clip(np.nan_to_num(np.asarray(data, dtype=np.float64)), 0, None)
    values = values * (4000.0 / max(float(values.max()), 1e-6))  # stored integers, no Modality LUT
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"IM{k + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.AccessionNumber = f"A{int(rng.integers(0, 999999)):06d}"
        ds.Modality = "MR"
        ds.Laterality = ""
        ds.Manufacturer = "infarctsam-tests"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "stroke follow-up"
        ds.SeriesDescription = description
        ds.PatientName = "Phantom^Test"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19500101"
        ds.PatientSex = "O"
        ds.ScanningSequence = "EP"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime = 80
        ds.RepetitionTime = 5000
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 3
        ds.SliceThickness = round(dz, 6)
        ds.SpacingBetweenSlices = round(dz, 6)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyID = "1"
        ds.SeriesNumber = 7
        ds.InstanceNumber = k + 1
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [round(float(x), 6) for x in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
        ds.ImageOrientationPatient = [round(float(x), 8) for x in orientation]
        ds.PixelSpacing = [round(dy, 6), round(dx, 6)]  # row spacing (between rows), column spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(data.shape[1]), int(data.shape[0])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        frame_k = np.round(values[:, :, k].T).astype(np.uint16)
        ds.PixelData = np.ascontiguousarray(frame_k).tobytes()
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
