"""The local batch pipeline: the next case is read while the model runs, results and records are those of the
one-at-a-time runner, a failure stays with its case."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import numpy as np

from batch_helpers import files_under, flat_cohort

_EVENTS: dict[str, threading.Event] = {}


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("seconds", "time", "pid", "host"):
            row.pop(key, None)
    return rows


def test_pipelined_and_serial_runs_give_the_same_outputs_and_records(tmp_path):
    import nibabel as nib

    from infarctsam.scale import run_batch

    root = flat_cohort(tmp_path / "in", ["c0", "c1", "c2", "c3"])
    (root / "c2_dwi.nii.gz").write_bytes(b"not a nifti")  # fails alone
    serial = run_batch(root, tmp_path / "serial", engine="threshold", read_ahead=0)
    piped = run_batch(root, tmp_path / "piped", engine="threshold", read_ahead=2)
    assert serial.counts == piped.counts == {"ok": 0, "warnings": 3, "skipped": 0, "failed": 1,
                                                 "pending": 0}  # the phantoms carry the small-brain warning
    assert _rows(tmp_path / "serial") == _rows(tmp_path / "piped")
    assert files_under(tmp_path / "serial") == files_under(tmp_path / "piped")
    for case in ("c0", "c1", "c3"):
        a, b = (nib.load(tmp_path / run / f"{case}_mask.nii.gz") for run in ("serial", "piped"))
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        ja, jb = (json.loads((tmp_path / run / f"{case}.json").read_text(encoding="utf-8"))
                  for run in ("serial", "piped"))
        assert ja["volume_ml"] == jb["volume_ml"] and ja["engine_config"] == jb["engine_config"]
    assert [r["status"] for r in piped.records] == ["warnings", "warnings", "failed", "warnings"]


def overlap_engine():
    """Threshold engine whose first prediction waits until the reading of the next case has begun."""
    import infarctsam.io.dwi as dwi_module
    from infarctsam.engines.threshold import ThresholdEngine

    load_dwi = dwi_module.load_dwi

    def watched_load_dwi(path, bval=None):
        if Path(path).name.startswith("c1"):
            _EVENTS["read_c1"].set()
        return load_dwi(path, bval=bval)

    class Watched(ThresholdEngine):
        def predict(self, case, progress=None):
            if not _EVENTS["first"].is_set():
                _EVENTS["first"].set()
                _EVENTS["overlapped"] = threading.Event()
                if _EVENTS["read_c1"].wait(20):
                    _EVENTS["overlapped"].set()
            return super().predict(case, progress)

    dwi_module.load_dwi = watched_load_dwi
    engine = Watched()
    engine.restore = lambda: setattr(dwi_module, "load_dwi", load_dwi)
    return engine


def test_the_next_case_is_read_while_the_model_runs(tmp_path):
    from infarctsam.scale import run_batch

    _EVENTS.update(read_c1=threading.Event(), first=threading.Event())
    root = flat_cohort(tmp_path / "in", ["c0", "c1", "c2"])
    engines = []

    def factory():
        engines.append(overlap_engine())
        return engines[-1]

    try:
        report = run_batch(root, tmp_path / "out", engine_factory=factory, qc=False, read_ahead=1)
    finally:
        for engine in engines:
            engine.restore()
    assert report.counts["warnings"] == 3  # segmented; the phantoms carry the small-brain warning
    assert _EVENTS["overlapped"].is_set()  # case c1 was being read while the model ran on c0
    deadline = time.monotonic() + 10
    while [t for t in threading.enumerate() if t.name in ("infarctsam-read", "infarctsam-write")]:
        assert time.monotonic() < deadline, "a pipeline thread outlived the run"
        time.sleep(0.01)
