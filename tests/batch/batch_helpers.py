"""Helpers of the batch tests: tiny cohorts in the three layouts, and test-only engines that kill or block their
own process at a chosen case (used to test worker deaths and interrupted runs deterministically).

The engine factories run inside worker processes: they are module-level functions so that Dask can pickle them by
reference (this folder is put on ``PYTHONPATH`` for the workers).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for _p in (TESTS, TESTS / "cli"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from synthetic_cases import head_phantom, save_nifti  # noqa: E402

SHAPE = (24, 26, 10)
AFFINE = np.diag([-3.0, 3.0, 6.0, 1.0])  # a flipped axis
AFFINE[:3, 3] = (40.0, -30.0, -20.0)


def write_case(folder: Path, stem: str, seed: int = 0, adc: bool = True) -> tuple[Path, Path | None]:
    """A tiny phantom case ``STEM_dwi.nii.gz`` (+ ``STEM_adc.nii.gz``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dwi, adc_map, _, _ = head_phantom(shape=SHAPE, spacing=(3.0, 3.0, 6.0), scalp=False, seed=seed)
    d = save_nifti(folder / f"{stem}_dwi.nii.gz", dwi, AFFINE)
    a = save_nifti(folder / f"{stem}_adc.nii.gz", adc_map, AFFINE) if adc else None
    return d, a


def flat_cohort(folder: Path, names: list[str]) -> Path:
    """A flat folder with one tiny case per name."""
    for i, name in enumerate(names):
        write_case(folder, name, seed=i)
    return folder


def bids_cohort(root: Path, subjects: list[str], session: str = "1") -> Path:
    """An ISLES'22-like root: ``rawdata/sub-X/ses-Y/dwi/sub-X_ses-Y_dwi.nii.gz`` (+ ADC)."""
    for i, sub in enumerate(subjects):
        write_case(root / "rawdata" / f"sub-{sub}" / f"ses-{session}" / "dwi", f"sub-{sub}_ses-{session}", seed=i)
    return root


def files_under(folder: Path) -> set[str]:
    """Every file under ``folder``, relative."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def _first_time(marker_dir: str, tag: str) -> bool:
    """True exactly once per tag across all processes (atomic O_EXCL creation of a marker holding the pid)."""
    try:
        fd = os.open(os.path.join(marker_dir, f"killed-{tag}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def make_killing_engine(marker_dir: str):
    """Threshold engine, but the first attempt of case ``*killread*`` kills its process while reading the DWI, the
    first attempt of ``*killwrite*`` kills it after the mask and QC are written, before the JSON, and every attempt
    of ``*killalways*`` kills its process (a case that crashes whatever worker runs it)."""
    import infarctsam.io.dwi as dwi_module
    import infarctsam.outputs.case as case_module
    from infarctsam.engines.threshold import ThresholdEngine

    if not getattr(dwi_module.load_dwi, "killer", False):
        load_dwi, write_json = dwi_module.load_dwi, case_module.write_json

        def killing_load_dwi(path, bval=None):
            if "killread" in Path(path).name and _first_time(marker_dir, "read"):
                os._exit(17)
            if "killalways" in Path(path).name:
                os._exit(17)
            return load_dwi(path, bval=bval)

        def killing_write_json(path, obj):
            if "killwrite" in Path(path).name and _first_time(marker_dir, "write"):
                os._exit(17)
            return write_json(path, obj)

        killing_load_dwi.killer = True
        dwi_module.load_dwi = killing_load_dwi
        case_module.write_json = killing_write_json
    return ThresholdEngine()


def make_blocking_engine(marker_dir: str):
    """Threshold engine that, on case ``*block*``, writes ``MARKER_DIR/reached`` and then waits forever (until the
    test kills the process)."""
    import infarctsam.io.dwi as dwi_module
    from infarctsam.engines.threshold import ThresholdEngine

    load_dwi = dwi_module.load_dwi

    def blocking_load_dwi(path, bval=None):
        if "block" in Path(path).name:
            Path(marker_dir, "reached").write_text(str(os.getpid()), encoding="utf-8")
            threading.Event().wait()
        return load_dwi(path, bval=bval)

    dwi_module.load_dwi = blocking_load_dwi
    return ThresholdEngine()


def make_sleeping_engine(seconds: float):
    """Threshold engine whose model step takes ``seconds`` longer (a slow model, to tell each case's own time from
    the run's)."""
    import time

    from infarctsam.engines.threshold import ThresholdEngine

    class SleepingEngine(ThresholdEngine):
        def predict(self, case, progress=None):
            time.sleep(seconds)
            return super().predict(case, progress)

    return SleepingEngine()
