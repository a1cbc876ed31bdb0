"""``infarctsam segment ROOT -o OUT`` on a whole cohort: records, resume, shards, BIDS naming, option checks."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.cli import app

from batch_helpers import bids_cohort, files_under, flat_cohort, write_case

runner = CliRunner()
NAMES = ["c0", "c1", "c2"]


def _segment(*args):
    return runner.invoke(app, ["segment", *map(str, args), "--engine", "threshold"])


def _csv(path):
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _log(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _statuses(out):
    return {r["case"]: r["status"] for r in _csv(out / "infarctsam_summary.csv")}


def test_batch_flat_folder_records_table_and_outputs(tmp_path):
    root = flat_cohort(tmp_path / "in", NAMES)
    out = tmp_path / "out"
    res = _segment(root, "-o", out)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["case", "status", "volume_ml", "lesion_count", "seconds"]
    assert [ln.split()[:2] for ln in lines[1:4]] == [[n, "warnings"] for n in NAMES]
    assert "3 segmented" in lines[4]
    for name in NAMES:
        summary = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        mask = nib.load(str(out / f"{name}_mask.nii.gz"))
        assert np.array_equal(mask.affine, nib.load(str(root / f"{name}_dwi.nii.gz")).affine)
        assert summary["volume_ml"] > 0 and summary["inputs"]["adc"] is not None
        assert (out / f"{name}_qc.png").exists()
    rows = _csv(out / "infarctsam_summary.csv")
    assert [r["case"] for r in rows] == NAMES and {r["status"] for r in rows} == {"warnings"}
    assert all(float(r["volume_ml"]) > 0 and int(r["lesion_count"]) >= 1 and len(r["dwi_sha256"]) == 64 for r in rows)
    events = _log(out / "infarctsam_run.jsonl")
    assert [e["event"] for e in events] == ["run_start", "case", "case", "case", "run_end"]
    start, case = events[0], events[1]
    assert start["engine"] == "threshold" and start["weights"] == "none" and start["cases"] == 3
    for key in ("case", "status", "error", "dwi_sha256", "adc_sha256", "engine", "weights", "time", "host", "pid"):
        assert key in case, key
    assert events[-1]["counts"] == {"ok": 0, "warnings": 3, "skipped": 0, "failed": 0, "pending": 0}
    assert not [p for p in files_under(out) if p.startswith(".") or ".tmp" in p]


def test_rerun_skips_finished_and_redoes_partial_or_stale_cases(tmp_path):
    names = ["c0", "c1", "c2", "c3", "c4", "c5"]
    root = flat_cohort(tmp_path / "in", names)
    out = tmp_path / "out"
    assert _segment(root, "-o", out, "--no-qc").exit_code == 0
    stamps = {n: (out / f"{n}.json").stat().st_mtime_ns for n in names}
    res = _segment(root, "-o", out, "--no-qc")
    assert res.exit_code == 0 and set(_statuses(out).values()) == {"skipped"}
    assert {n: (out / f"{n}.json").stat().st_mtime_ns for n in names} == stamps
    assert "0 segmented, 6 already done" in res.stdout

    (out / "c0.json").unlink()  # a mask without its JSON: an interrupted case
    (out / ".c0_mask.nii.gz.x1y2.tmp.nii.gz").write_bytes(b"half a mask")  # a temporary file a kill left behind
    for name, edit in (("c1", lambda s: s.update(weights="other.safetensors:1234abcd")),
                       ("c2", lambda s: s.update(engine="sam")),
                       ("c3", lambda s: s["inputs"]["adc"].update(sha256="0" * 64))):
        summary = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        edit(summary)
        (out / f"{name}.json").write_text(json.dumps(summary), encoding="utf-8")
    write_case(root, "c4", seed=42)  # the input changed since the last run
    res = _segment(root, "-o", out, "--no-qc")
    assert res.exit_code == 0, res.output
    assert _statuses(out) == {**dict.fromkeys(names[:5], "warnings"), "c5": "skipped"}
    for name in names[:5]:
        summary = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert summary["engine"] == "threshold" and summary["weights"] == "none"
    assert not (out / ".c0_mask.nii.gz.x1y2.tmp.nii.gz").exists()
    # --force redoes everything; a request for the probability map redoes cases that lack it
    assert _segment(root, "-o", out, "--no-qc", "--save-probability").exit_code == 0
    assert set(_statuses(out).values()) == {"warnings"} and (out / "c5_prob.nii.gz").exists()
    assert _segment(root, "-o", out, "--no-qc", "--save-probability", "--force").exit_code == 0
    assert set(_statuses(out).values()) == {"warnings"}
    events = _log(out / "infarctsam_run.jsonl")
    assert sum(e["event"] == "run_start" for e in events) == 5


def test_shards_split_the_sorted_list_without_overlap(tmp_path):
    names = [f"s{i}" for i in range(5)]
    root = flat_cohort(tmp_path / "in", names)
    out = tmp_path / "out"
    seen = []
    for i in range(3):
        res = _segment(root, "-o", out, "--shard", f"{i}/3", "--no-qc", "-q")
        assert res.exit_code == 0, res.output
        rows = _csv(out / f"infarctsam_summary_shard-{i}-of-3.csv")
        assert [r["case"] for r in rows] == names[i::3]
        assert (out / f"infarctsam_run_shard-{i}-of-3.jsonl").exists()
        seen += [r["case"] for r in rows]
    assert sorted(seen) == names
    assert not (out / "infarctsam_summary.csv").exists()
    # the gather run after a job array: everything already done, one summary of the whole cohort
    res = _segment(root, "-o", out, "--no-qc")
    assert res.exit_code == 0 and _statuses(out) == dict.fromkeys(names, "skipped")


@pytest.mark.parametrize("spec", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_is_refused_in_one_line(tmp_path, spec):
    root = flat_cohort(tmp_path / "in", ["c0"])
    res = _segment(root, "-o", tmp_path / "out", f"--shard={spec}")
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1
    assert "shard" in res.stderr


def test_bids_root_with_bids_output_naming(tmp_path):
    root = bids_cohort(tmp_path / "isles", ["strokecase0001", "strokecase0002"])
    out = tmp_path / "deriv"
    res = _segment(root, "-o", out, "--bids", "--no-qc")
    assert res.exit_code == 0, res.output
    for sub in ("strokecase0001", "strokecase0002"):
        folder = out / f"sub-{sub}" / "ses-1" / "dwi"
        base = f"sub-{sub}_ses-1_space-orig_desc-infarct"
        assert (folder / f"{base}_mask.nii.gz").exists() and (folder / f"{base}_mask.json").exists()
    assert json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))["DatasetType"] == "derivative"
    rows = _csv(out / "infarctsam_summary.csv")
    assert [r["json"] for r in rows] == [f"sub-{s}/ses-1/dwi/sub-{s}_ses-1_space-orig_desc-infarct_mask.json"
                                         for s in ("strokecase0001", "strokecase0002")]
    assert _segment(root, "-o", out, "--bids", "--no-qc").exit_code == 0
    assert set(_statuses(out).values()) == {"skipped"}


def test_bids_name_collision_fails_the_second_case_only(tmp_path):
    folder = tmp_path / "in" / "rawdata" / "sub-01" / "ses-1" / "dwi"
    write_case(folder, "sub-01_ses-1_run-1")
    write_case(folder, "sub-01_ses-1_run-2", seed=3)
    out = tmp_path / "out"
    res = _segment(tmp_path / "in", "-o", out, "--bids", "--no-qc")
    assert res.exit_code == 1
    rows = _csv(out / "infarctsam_summary.csv")
    assert [r["status"] for r in rows] == ["warnings", "failed"]
    assert "would overwrite those of case sub-01_ses-1" in rows[1]["error"]


@pytest.mark.parametrize("option", [["--adc", "x_adc.nii.gz"], ["--case-id", "x"], ["--reference", "m.nii.gz"]])
def test_single_case_options_are_refused_in_a_batch(tmp_path, option):
    root = flat_cohort(tmp_path / "in", ["c0"])
    res = _segment(root, "-o", tmp_path / "out", *option)
    assert res.exit_code == 2 and res.stderr.startswith("error: " + option[0])
    assert not (tmp_path / "out").exists()


def test_batch_options_are_refused_for_one_dwi(tmp_path):
    dwi, _ = write_case(tmp_path, "one")
    res = _segment(dwi, "-o", tmp_path / "out", "--shard", "0/2")
    assert res.exit_code == 2 and "--shard applies to a batch" in res.stderr


def test_output_inside_flat_input_is_refused(tmp_path):
    root = flat_cohort(tmp_path / "in", ["c0"])
    res = _segment(root, "-o", root)
    assert res.exit_code == 2 and "must not be the input folder" in res.stderr


def test_dicom_series_folder_is_still_one_case(tmp_path):
    import SimpleITK as sitk

    folder = tmp_path / "dicom"
    folder.mkdir()
    vol, _, _, _ = write_dicom_volume()
    for k in range(vol.shape[0]):
        img = sitk.GetImageFromArray(vol[k : k + 1].astype(np.int16))
        img.SetSpacing((2.0, 2.0, 5.0))
        img.SetOrigin((0.0, 0.0, 5.0 * k))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in (("0020|000e", "1.2.826.0.1.3680043.2.1125.1"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{5.0 * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0008|0060", "MR")):
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(img)
    # the phantom's lesion lies on the midline here, its own mirror twin: bright on both sides, like a b0's fluid
    res = _segment(folder, "-o", tmp_path / "out", "--no-qc", "--allow-unusual-images")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "dicom.json").exists()  # a single case named after its folder, no batch records
    assert not (tmp_path / "out" / "infarctsam_summary.csv").exists()


def write_dicom_volume():
    """A phantom in (slice, row, column) order, for writing as a DICOM series."""
    from synthetic_cases import head_phantom

    dwi, adc, brain, les = head_phantom(shape=(10, 40, 44), spacing=(5.0, 2.0, 2.0), scalp=False)
    return dwi * 10, adc, brain, les


def _stderr_on_a_terminal(args, size=None):
    """Run the command line with stderr on a pseudo-terminal (of ``size`` rows, columns, or one that reports no size);
    return (exit code, what the terminal received)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "infarctsam", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    return proc.wait(), received.decode(errors="replace")


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(tmp_path):
    root = flat_cohort(tmp_path / "in", ["c0", "c1"])
    for out, size in (("a", (30, 120)), ("a2", None)):
        code, shown = _stderr_on_a_terminal(["segment", root, "-o", tmp_path / out, "--engine", "threshold",
                                             "--no-qc", "--no-location"], size)
        assert code == 0 and "2/2" in shown and "case" in shown and "<" in shown, shown  # count, unit and ETA
    code, shown = _stderr_on_a_terminal(["segment", root, "-o", tmp_path / "b", "--engine", "threshold", "--no-qc",
                                         "--no-location", "--quiet"])
    assert code == 0 and "2/2" not in shown
    res = _segment(root, "-o", tmp_path / "c", "--no-qc", "--no-location")  # stderr is not a terminal here
    assert res.exit_code == 0 and "2/2" not in res.stderr and "%|" not in res.stderr
