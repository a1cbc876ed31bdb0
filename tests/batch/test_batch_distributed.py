"""A batch on a local Dask cluster of 2 worker processes in which workers die in the middle of a case: one while
reading its input, one after writing the mask but before the JSON, and a case that kills every worker that runs it.
Every other case must end complete and valid, retried on another worker process, with no half-written file left;
the crashing case is recorded as failed and leaves nothing."""

from __future__ import annotations

import functools
import json
import os

import nibabel as nib
import numpy as np

from infarctsam.scale import run_batch
from infarctsam.scale.distributed import parse_scheduler

import batch_helpers
from batch_helpers import HERE, TESTS, files_under, flat_cohort

NAMES = ["c0", "c1", "c2-killread", "c3", "c4-killwrite", "c5"]
CRASHER = "c6-killalways"


def test_worker_killed_mid_case_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    root = flat_cohort(tmp_path / "in", [*NAMES, CRASHER])
    out, markers = tmp_path / "out", tmp_path / "markers"
    markers.mkdir()
    factory = functools.partial(batch_helpers.make_killing_engine, str(markers))
    report = run_batch(root, out, scheduler="local:2", engine_factory=factory)

    assert report.counts == {"ok": 0, "warnings": 6, "skipped": 0, "failed": 1, "pending": 0}, report.records
    assert report.exit_code == 1
    by_case = {r["case"]: r for r in report.records}
    assert by_case[CRASHER]["status"] == "failed" and "died repeatedly" in by_case[CRASHER]["error"]
    # both kills happened, and the killed cases were finished by another worker process
    killed = {tag: int((markers / f"killed-{tag}").read_text(encoding="utf-8")) for tag in ("read", "write")}
    assert by_case["c2-killread"]["pid"] != killed["read"]
    assert by_case["c4-killwrite"]["pid"] != killed["write"]
    assert len({r["pid"] for r in report.records if r["case"] != CRASHER} | set(killed.values())) >= 3
    # every case complete and valid; nothing else in the folder (no temporary or orphaned file)
    expected = {f"{n}{suffix}" for n in NAMES for suffix in (".json", "_mask.nii.gz", "_qc.png")}
    assert files_under(out) == expected | {"infarctsam_run.jsonl", "infarctsam_summary.csv"}
    for name in NAMES:
        summary = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        mask = np.asanyarray(nib.load(str(out / f"{name}_mask.nii.gz")).dataobj)
        assert summary["voxel_count"] == int(mask.sum()) > 0
        assert (out / f"{name}_qc.png").read_bytes()[:4] == b"\x89PNG"
    events = [json.loads(line) for line in (out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    cases = [e for e in events if e["event"] == "case"]
    assert sorted(e["case"] for e in cases) == sorted([*NAMES, CRASHER])
    assert {e["case"] for e in cases if e["status"] == "warnings"} == set(NAMES)
    assert events[0]["scheduler"] == "local:2" and events[-1]["status"] == "finished"


def test_scheduler_spec_parsing():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    assert parse_scheduler("local")[0] == "local"
    for bad in ("local:0", "local:x", "  "):
        try:
            parse_scheduler(bad)
        except Exception as exc:  # noqa: BLE001 - checked below
            assert type(exc).__name__ == "ConfigError" and "\n" not in str(exc)
        else:
            raise AssertionError(bad)
