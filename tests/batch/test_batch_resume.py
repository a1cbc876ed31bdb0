"""A batch killed with SIGKILL in the middle of a case leaves valid records and no half-written output; the rerun
skips the finished cases and redoes the rest."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
from typer.testing import CliRunner

from infarctsam.cli import app

from batch_helpers import HERE, files_under, flat_cohort

SCRIPT = """
import functools, sys
sys.path.insert(0, sys.argv[1])
import batch_helpers
from infarctsam.scale import run_batch
run_batch(sys.argv[2], sys.argv[3], engine_factory=functools.partial(batch_helpers.make_blocking_engine, sys.argv[4]),
          summary_every_s=0)
"""


def _wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the batch never reached the blocking case"
        time.sleep(0.05)


def _wait_for_records(log, n, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not log.exists() or log.read_text(encoding="utf-8").count('"event":"case"') < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} cases were recorded"
        time.sleep(0.05)


def test_killed_run_leaves_valid_records_and_resumes(tmp_path):
    names = ["c0", "c1", "c2-block", "c3"]
    root = flat_cohort(tmp_path / "in", names)
    out, markers = tmp_path / "out", tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(HERE), str(root), str(out), str(markers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(markers / "reached", proc)
        _wait_for_records(out / "infarctsam_run.jsonl", 2, proc)  # c2 is read while c0 and c1 are written
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    # what a killed run leaves: a complete CSV (finished cases ok, the rest pending) and a log of whole lines
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert {k: r["status"] for k, r in rows.items()} == {"c0": "warnings", "c1": "warnings", "c2-block": "pending",
                                                         "c3": "pending"}
    events = [json.loads(line) for line in (out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["event"] for e in events] == ["run_start", "case", "case"]
    produced = files_under(out)
    assert not [p for p in produced if p.startswith("c2") or p.startswith("c3") or p.startswith(".")], produced

    # a kill in the middle of writing c3 would have left its mask without JSON and a temporary file
    (out / "c3_mask.nii.gz").write_bytes((out / "c0_mask.nii.gz").read_bytes())
    (out / ".c3.json.abcd.tmp.json").write_text('{"case": "c3", "volume', encoding="utf-8")
    res = CliRunner().invoke(app, ["segment", str(root), "-o", str(out), "--engine", "threshold"])
    assert res.exit_code == 0, res.output
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        statuses = {r["case"]: r["status"] for r in csv.DictReader(fh)}
    assert statuses == {"c0": "skipped", "c1": "skipped", "c2-block": "warnings", "c3": "warnings"}
    for name in names:
        assert json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["case"] == name
        assert nib.load(str(out / f"{name}_mask.nii.gz")).get_fdata().shape == (24, 26, 10)
    assert not [p for p in files_under(out) if p.startswith(".")]
    assert json.loads((out / "c3.json").read_text(encoding="utf-8"))["inputs"]["dwi"]["path"].endswith("c3_dwi.nii.gz")


def test_interrupted_run_closes_its_records(tmp_path):
    import pytest

    from infarctsam.scale import run_batch

    root = flat_cohort(tmp_path / "in", ["c0", "c1", "c2"])
    out = tmp_path / "out"

    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(root, out, engine="threshold", qc=False, on_record=interrupt)
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # the first case is done; a later one is done exactly when the writer finished its JSON before the interrupt
    assert rows[0]["status"] == "warnings"
    assert [r["status"] != "pending" for r in rows] == [(out / f"{r['case']}.json").exists() for r in rows]
    pending = sum(r["status"] == "pending" for r in rows)
    end = json.loads((out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert end["event"] == "run_end" and end["status"] == "interrupted" and end["counts"]["pending"] == pending >= 1
