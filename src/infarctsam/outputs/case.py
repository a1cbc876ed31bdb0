"""Writing one case's outputs: mask, optional probability map, JSON summary and QC montage.

Everything is computed before the first byte is written; each file is written atomically, and if any write fails
(or the run is interrupted) the files already written for this case are removed, so a case is either complete or
absent. The JSON is written last: a stale JSON of an earlier run is removed before the first new file is written.

An output never replaces a file that infarctsam did not write (an expert's mask, a sidecar that happens to share
the name): :func:`check_replaceable` recognises our files by their content (NIfTI description, PNG text chunk,
JSON ``software`` field) and refuses anything else before any write.

Plain naming (default), in OUTDIR::

    CASE_mask.nii.gz  CASE_prob.nii.gz  CASE.json  CASE_qc.png

BIDS-derivatives naming (``bids=True``)::

    OUTDIR/dataset_description.json
    OUTDIR/sub-X/[ses-Y/]dwi/sub-X[_ses-Y]_space-orig_desc-infarct_mask.nii.gz  (+ _probseg.nii.gz, _mask.json, _qc.png)
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam._version import __version__
from infarctsam.errors import OutputError
from infarctsam.io.atomic import atomic_path, write_json
from infarctsam.io.safety import read_json_limited
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
    """Make sure ``outdir`` is, or can be created as, a writable folder, without creating it.

    Raises
    ------
    OutputError
        One line: the path (or a parent) is a file, or the folder (or its nearest existing parent) is not writable.
    """
    outdir = Path(outdir)
    existing = outdir
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"output path {outdir} is not a folder ({existing} is a file)")
    if existing == outdir:
        probe = outdir / f".infarctsam-write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
        except OSError as exc:
            raise OutputError(f"output folder {outdir} is not writable: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create output folder {outdir}: {existing} is not writable")


def ensure_folder(outdir: Path) -> None:
    """Create ``outdir`` (and its parents); one-line OutputError when that fails."""
    try:
        Path(outdir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from exc


_PNG_TAG = b"Software\x00infarctsam"
NIFTI_TAG = b"infarctsam"


def tag_png(png: bytes) -> bytes:
    """Insert a ``tEXt`` chunk ``Software: infarctsam`` after the PNG header, so reruns recognise the file."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) < 33:
        return png
    chunk = b"tEXt" + _PNG_TAG
    return png[:33] + struct.pack(">I", len(_PNG_TAG)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def _ours(path: Path, listed: set[str]) -> bool:
    """Whether an existing output file was written by infarctsam."""
    if path.name in listed:
        return True
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            return bytes(nib.load(str(path)).header["descrip"]).startswith(NIFTI_TAG)
        if name.endswith(".png"):
            with path.open("rb") as fh:
                return _PNG_TAG in fh.read(256)
        if name.endswith(".json"):
            data = read_json_limited(path, "output", max_bytes=16 << 20)
            return isinstance(data, dict) and isinstance(data.get("software"), dict) and \
                data["software"].get("name") == "infarctsam"
    except Exception:  # unreadable or foreign: not ours
        return False
    return False


def check_replaceable(paths: CasePaths) -> None:
    """Refuse, before any write, when an output path holds a file that infarctsam did not write.

    Files listed in an existing infarctsam JSON of the case (an earlier run) are ours, and so are masks, probability
    maps, QC pictures and JSON recognised by their content (an interrupted run's leftovers).

    Raises
    ------
    OutputError
        Naming the file that would be replaced.
    """
    listed: set[str] = set()
    if paths.summary.is_file() and not paths.summary.is_symlink() and _ours(paths.summary, set()):
        with contextlib.suppress(Exception):
            outputs = read_json_limited(paths.summary, "output", max_bytes=16 << 20).get("outputs") or {}
            listed = {str(v) for v in outputs.values()} | {paths.summary.name}
    for p in paths.all():
        if not (p.exists() or p.is_symlink()):
            continue
        if p.is_symlink() or not p.is_file() or not _ours(p, listed):
            raise OutputError(f"{p} already exists and was not written by infarctsam; it is left untouched (choose "
                              "another --output folder or --case-id)")


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
    written: list[Path] = []  # every file attempted: one interrupted right after its rename is removed too
    created = _missing_folders(paths.summary.parent)
    try:
        if paths.summary.exists():
            paths.summary.unlink()  # the case is incomplete until its new JSON is written
        written.append(paths.mask)
        write_like(reference_grid, mask.astype(np.uint8), paths.mask, dtype="uint8")
        if probability is not None:
            written.append(paths.probability)
            write_like(reference_grid, probability.astype(np.float32), paths.probability, dtype="float32")
        if qc_png is not None:
            written.append(paths.qc)
            with atomic_path(paths.qc) as tmp:
                tmp.write_bytes(tag_png(qc_png))
        for path, content in (extra or {}).values():
            written.append(path)
            with atomic_path(path) as tmp:
                tmp.write_bytes(content)
        named = (("mask", paths.mask), ("probability", paths.probability), ("qc", paths.qc),
                 *((k, p) for k, (p, _) in (extra or {}).items()))
        summary = {**summary, "outputs": {k: p.name for k, p in named if p in written}}
        written.append(paths.summary)
        write_json(paths.summary, summary)
    except BaseException as exc:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write outputs in {paths.mask.parent}: {exc.strerror or exc}") from exc
        raise
    return written


def _missing_folders(folder: Path) -> list[Path]:
    """The folders of ``folder``'s chain that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
