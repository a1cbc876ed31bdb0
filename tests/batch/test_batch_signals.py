"""Dask worker processes clean up on SIGTERM like the local runner (issue 18): every worker process installs the
handlers, and a worker process that gets SIGTERM in the middle of writing a case removes that case's outputs and
temporary files before it ends with exit code 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from batch_helpers import HERE, TESTS, files_under, flat_cohort

CHILD = r'''
import sys, threading, time
from pathlib import Path
out, marker = Path(sys.argv[2]), Path(sys.argv[3])
import infarctsam.outputs.case as case_module
from infarctsam.io.atomic import atomic_path
from infarctsam.scale.cases import discover, plan
from infarctsam.scale.worker import CaseOptions, EngineSpec, install_signal_handlers, run_case

def stuck_write_json(path, obj):  # the mask and QC are written; the JSON is half-written when the signal comes
    with atomic_path(path) as tmp:
        tmp.write_text("{", encoding="utf-8")
        marker.write_text("writing", encoding="utf-8")
        while True:
            time.sleep(0.01)

case_module.write_json = stuck_write_json
assert install_signal_handlers()
planned = plan(discover(sys.argv[1]), out)
opts, spec = CaseOptions(outdir=str(out)), EngineSpec(name="threshold")
worker = threading.Thread(target=run_case, args=(planned[0], opts, spec), daemon=True)
worker.start()
while True:  # the main thread waits, as a Dask worker's event loop does
    time.sleep(0.05)
'''


def test_sigterm_to_a_worker_process_removes_the_case_it_was_writing(tmp_path):
    root = flat_cohort(tmp_path / "in", ["c0"])
    out, marker = tmp_path / "out", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(out), str(marker)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "the case never reached its JSON"
        partial = files_under(out)
        assert "c0_mask.nii.gz" in partial and any(n.startswith(".c0.json.") for n in partial), partial
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signal.SIGTERM, proc.stderr.read()
    assert files_under(out) == set()  # no mask without its JSON, no temporary file
    assert files_under(root) == {"c0_dwi.nii.gz", "c0_adc.nii.gz"}


def test_every_dask_worker_process_installs_the_handlers(monkeypatch):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from infarctsam.scale.distributed import DaskExecutor
    from infarctsam.scale.worker import EngineSpec

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    executor = DaskExecutor("local:1", EngineSpec(name="threshold"))
    try:
        seen = executor.client.run(lambda: getattr(signal.getsignal(signal.SIGTERM), "__qualname__", "default"))
        pids = executor.client.run(os.getpid)
    finally:
        executor.close()
    assert list(seen.values()) == ["_stop_worker"] and os.getpid() not in pids.values()
