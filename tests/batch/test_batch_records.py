"""Batch records tell the truth: each case's own time (not the run's time so far), and every case whose JSON was
written before an interrupt is recorded done."""

from __future__ import annotations

import csv
import functools
import json
import time

import pytest

from batch_helpers import flat_cohort, make_sleeping_engine


def _rows(out):
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def test_each_case_reports_its_own_time_not_the_runs(tmp_path):
    """A 0.5 s model step per case: with the pipeline each case's seconds stay near its own steps' time, where the
    run's elapsed time reaches 3 s by the sixth case."""
    from infarctsam.scale import run_batch

    root = flat_cohort(tmp_path / "in", [f"c{i}" for i in range(6)])
    out = tmp_path / "out"
    t0 = time.perf_counter()
    report = run_batch(root, out, qc=False, location=False,
                       engine_factory=functools.partial(make_sleeping_engine, 0.5))
    wall = time.perf_counter() - t0
    seconds = [float(r["seconds"]) for r in _rows(out).values()]
    elapsed = [json.loads((out / f"c{i}.json").read_text(encoding="utf-8"))["elapsed_s"] for i in range(6)]
    assert report.counts["pending"] == 0
    assert all(0.5 <= s < 2.5 for s in seconds), seconds
    assert all(0.5 <= e <= s + 0.05 for e, s in zip(elapsed, seconds, strict=True)), (elapsed, seconds)
    assert sum(seconds) <= 1.5 * wall, (seconds, wall)  # not the run's elapsed time summed (about 3.5x the wall)


def test_cases_written_before_an_interrupt_are_recorded_done(tmp_path):
    """Interrupted while the second case is written behind the first one's record: the summary and the run log say
    done for every case whose JSON exists, pending for the rest, and a rerun skips the done ones."""
    from infarctsam.scale import run_batch

    root = flat_cohort(tmp_path / "in", ["c0", "c1", "c2", "c3"])
    out = tmp_path / "out"

    def interrupt(record):
        deadline = time.monotonic() + 30
        while not (out / "c1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(root, out, qc=False, location=False, on_record=interrupt,
                  engine_factory=functools.partial(make_sleeping_engine, 0.2))
    rows = _rows(out)
    written = {c for c in rows if (out / f"{c}.json").exists()}
    assert {"c0", "c1"} <= written
    assert {c for c, r in rows.items() if r["status"] != "pending"} == written
    lines = [json.loads(line) for line in (out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {e["case"] for e in lines if e["event"] == "case"} == written
    assert lines[-1]["event"] == "run_end" and lines[-1]["counts"]["pending"] == 4 - len(written)

    run_batch(root, out, qc=False, location=False, engine_factory=functools.partial(make_sleeping_engine, 0.0))
    statuses = {c: r["status"] for c, r in _rows(out).items()}
    assert all(statuses[c] == "skipped" for c in written) and "pending" not in statuses.values()
