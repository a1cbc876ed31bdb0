"""Writing one case's outputs: mask, optional probability map, JSON summary and QC montage.

Everything is computed before the first byte is written; each file is written atomically, and if any write fails
the files already written for this case are removed, so a case is either complete or absent.

Plain naming (default), in OUTDIR::

    CASE_mask.nii.gz  CASE_prob.nii.gz  CASE.json  CASE_qc.png

BIDS-derivatives naming (``bids=True``)::

    OUTDIR/dataset_description.json
    OUTDIR/sub-X/[ses-Y/]dwi/sub-X[_ses-Y]_space-orig_desc-infarct_mask.nii.gz  (+ _probseg.nii.gz, _mask.json, _qc.png)
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam._version import __version__
from infarctsam.errors import OutputError
from infarctsam.io.atomic import atomic_path, write_json
from infarctsam.io.volume import Volume
from infarctsam.io.write import write_like


@dataclass(frozen=True)
class CasePaths:
    """Where a case's outputs go."""

    mask: Path
    probability: Path
    summary: Path
    qc: Path

    def all(self) -> tuple[Path, ...]:
        """Every output path."""
        return (self.mask, self.probability, self.summary, self.qc)


def case_paths(outdir: Path, case_id: str, bids: bool = False, subject: str | None = None,
               session: str | None = None) -> CasePaths:
    """Output paths of a case (see the module docstring). ``case_id`` must already be safe for file names."""
    outdir = Path(outdir)
    if bids and subject:
        stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
        folder = outdir / f"sub-{subject}" / (f"ses-{session}" if session else "") / "dwi"
        base = f"{stem}_space-orig_desc-infarct"
        paths = CasePaths(folder / f"{base}_mask.nii.gz", folder / f"{base}_probseg.nii.gz",
                          folder / f"{base}_mask.json", folder / f"{base}_qc.png")
    else:
        paths = CasePaths(outdir / f"{case_id}_mask.nii.gz", outdir / f"{case_id}_prob.nii.gz",
                          outdir / f"{case_id}.json", outdir / f"{case_id}_qc.png")
    root = outdir.resolve()
    for p in paths.all():
        if root not in p.resolve().parents:
            raise OutputError(f"case identifier {case_id!r} would write outside the output folder")
    return paths


def dataset_description(engine_name: str) -> dict[str, Any]:
    """BIDS ``dataset_description.json`` for a derivatives folder."""
    return {
        "Name": "infarctsam infarct segmentation",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "infarctsam", "Version": __version__,
                         "Description": f"prompt-free follow-up infarct segmentation, engine {engine_name}"}],
    }


def check_writable(outdir: Path) -> None:
    """Create ``outdir`` if needed and make sure files can be created in it; one-line OutputError otherwise."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from exc
    if not outdir.is_dir():
        raise OutputError(f"output path {outdir} is not a folder")
    probe = outdir / f".infarctsam-write-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output folder {outdir} is not writable: {exc.strerror or exc}") from exc


def write_case(
    paths: CasePaths,
    reference_grid: Volume,
    mask: np.ndarray,
    summary: dict[str, Any],
    qc_png: bytes | None,
    probability: np.ndarray | None = None,
    extra: dict[str, tuple[Path, bytes]] | None = None,
) -> list[Path]:
    """Write a case's files (mask, JSON, optional QC and probability) all-or-nothing.

    Parameters
    ----------
    paths : CasePaths
        Destinations.
    reference_grid : Volume
        The input DWI: the mask and probability map are written on exactly its grid and header.
    mask : numpy.ndarray
        uint8 lesion mask in the input's voxel order.
    summary : dict
        JSON content.
    qc_png : bytes or None
        QC montage.
    probability : numpy.ndarray, optional
        Lesion probability in the input's voxel order.
    extra : dict, optional
        More files, ``{key: (path, content)}`` (the DICOM SEG and SR), listed under ``outputs`` by key.

    Returns
    -------
    list of Path
        The files written.
    """
    written: list[Path] = []
    try:
        write_like(reference_grid, mask.astype(np.uint8), paths.mask, dtype="uint8")
        written.append(paths.mask)
        if probability is not None:
            write_like(reference_grid, probability.astype(np.float32), paths.probability, dtype="float32")
            written.append(paths.probability)
        if qc_png is not None:
            with atomic_path(paths.qc) as tmp:
                tmp.write_bytes(qc_png)
            written.append(paths.qc)
        for path, content in (extra or {}).values():
            with atomic_path(path) as tmp:
                tmp.write_bytes(content)
            written.append(path)
        named = (("mask", paths.mask), ("probability", paths.probability), ("qc", paths.qc),
                 *((k, p) for k, (p, _) in (extra or {}).items()))
        summary = {**summary, "outputs": {k: p.name for k, p in named if p in written}}
        write_json(paths.summary, summary)
        written.append(paths.summary)
    except BaseException as exc:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write outputs in {paths.mask.parent}: {exc.strerror or exc}") from exc
        raise
    return written
