"""Issue 11: a user's data is never lost or overwritten, whatever ``-o`` and whichever signal arrives.

* outputs never replace an input, a file read with it, or a file infarctsam did not write (single case and batch);
* SIGTERM and SIGHUP end a run like Ctrl-C: one line, exit 128+signal, no temporary file, no half case, a batch's
  ``run_end`` record; temporary files of a killed run are removed by the rerun;
* inputs are checked before any model is loaded, and a failed call leaves no output folder;
* smaller ones: names only in non-Latin script, third-party stderr captured, a training configuration from a device.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from input_safety import tree_digest
from typer.testing import CliRunner

from infarctsam.cli import app

from synthetic_cases import REPO, head_phantom, save_nifti

runner = CliRunner()
AFFINE = np.diag([3.0, 3.0, 6.0, 1.0])
SRC = str(REPO / "src")


def _case(folder: Path, name: str, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dwi, adc, _, les = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False, seed=seed)
    save_nifti(folder / f"{name}_adc.nii.gz", adc, AFFINE)
    return save_nifti(folder / f"{name}_dwi.nii.gz", dwi, AFFINE)


def _lab(folder: Path) -> Path:
    """A core lab's folder: two cases, an expert mask with the name our mask would take, a BIDS sidecar."""
    _case(folder, "case01")
    _case(folder, "p2", seed=1)
    save_nifti(folder / "case01_mask.nii.gz", np.zeros((24, 26, 10), np.uint8), AFFINE)
    (folder / "case01_dwi.json").write_text(json.dumps({"DiffusionBValue": 1000}), encoding="utf-8")
    return folder


def _unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    assert {k: after.get(k) for k in before} == before  # every file that was there is byte-identical


def test_output_in_the_input_folder_never_overwrites_an_input_single_case(tmp_path):
    lab = _lab(tmp_path / "lab")
    before = tree_digest(lab)
    dwi = str(lab / "case01_dwi.nii.gz")
    refused = [
        ["segment", dwi, "-o", str(lab)],  # the mask would replace the expert's case01_mask.nii.gz
        ["segment", dwi, "-o", str(lab), "--case-id", "case01_dwi"],  # the JSON would replace the sidecar
        ["segment", dwi, "-o", str(lab), "--case-id", "case01_dwi", "--no-qc"],
    ]
    for args in refused:
        res = runner.invoke(app, [*args, "--engine", "threshold"])
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1, args
        assert tree_digest(lab) == before, args
    # a free name in the same folder works, and a rerun replaces only its own outputs
    for _ in range(2):
        res = runner.invoke(app, ["segment", dwi, "-o", str(lab), "--case-id", "fresh", "--engine", "threshold"])
        assert res.exit_code == 0, res.output
        _unchanged(before, tree_digest(lab))
    assert {"fresh_mask.nii.gz", "fresh.json", "fresh_qc.png"} <= set(tree_digest(lab))


def test_output_in_the_images_folder_never_overwrites_an_input_batch(tmp_path):
    lab = _lab(tmp_path / "lab")
    (lab / "cases.txt").write_text("case01_dwi.nii.gz\tcase01_adc.nii.gz\np2_dwi.nii.gz\tp2_adc.nii.gz\n",
                                   encoding="utf-8")
    before = tree_digest(lab)
    res = runner.invoke(app, ["segment", str(lab / "cases.txt"), "-o", str(lab), "--engine", "threshold"])
    assert res.exit_code == 1, res.output
    _unchanged(before, tree_digest(lab))
    with (lab / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["p2"]["status"] == "warnings"
    assert rows["case01"]["status"] == "failed" and "not written by infarctsam" in rows["case01"]["error"]
    # a rerun skips p2 and still leaves the expert's mask alone
    res = runner.invoke(app, ["segment", str(lab / "cases.txt"), "-o", str(lab), "--engine", "threshold"])
    assert res.exit_code == 1
    _unchanged(before, tree_digest(lab))
    # a case list named like the run's own summary is refused before anything is written
    listing = tmp_path / "other" / "infarctsam_summary.csv"
    listing.parent.mkdir()
    listing.write_text(f"{lab / 'p2_dwi.nii.gz'}\n", encoding="utf-8")
    res = runner.invoke(app, ["segment", str(listing), "-o", str(listing.parent), "--engine", "threshold"])
    assert res.exit_code == 2 and "would overwrite the input" in res.stderr
    assert sorted(p.name for p in listing.parent.iterdir()) == ["infarctsam_summary.csv"]


def _default_sigint() -> None:
    """A child started from a background job inherits an ignored SIGINT (POSIX shells do that to asynchronous
    commands); give it the default disposition, as an interactive user's process has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SINGLE_SCRIPT = """
import os, signal, sys
import infarctsam.outputs.case as case_module
write_json = case_module.write_json
SIG = int(sys.argv[1])

def write_json_then_signal(path, obj):
    os.kill(os.getpid(), SIG)  # arrives after the mask and QC are written, before the JSON
    return write_json(path, obj)

case_module.write_json = write_json_then_signal
sys.argv = ["infarctsam", *sys.argv[2:]]
from infarctsam.cli import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_during_a_single_case_leaves_nothing(tmp_path, sig):
    lab = _lab(tmp_path / "lab")
    before = tree_digest(lab)
    for out in (tmp_path / "out", lab):  # a fresh output folder, and the input folder itself
        proc = subprocess.run([sys.executable, "-c", SINGLE_SCRIPT, str(int(sig)), "segment",
                               str(lab / "p2_dwi.nii.gz"), "-o", str(out), "--engine", "threshold",
                               "--no-location"],  # too small a scan to be registered: the step only costs time
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": SRC},
                              preexec_fn=_default_sigint)
        name = signal.Signals(sig).name
        expected = "error: interrupted" if sig == signal.SIGINT else f"error: interrupted ({name})"
        assert (proc.returncode, proc.stderr.strip()) == (128 + sig, expected), proc.stderr
        assert not (tmp_path / "out").exists()  # no mask without JSON, no .tmp file, no empty folder
        assert tree_digest(lab) == before


BATCH_SCRIPT = """
import os, sys, threading
from pathlib import Path
import infarctsam.io.dwi as dwi_module
load_dwi = dwi_module.load_dwi
MARKERS = sys.argv[1]

def blocking_load_dwi(path, bval=None):
    if "block" in Path(path).name:
        Path(MARKERS, "reached").write_text(str(os.getpid()), encoding="utf-8")
        threading.Event().wait(600)
    return load_dwi(path, bval=bval)

dwi_module.load_dwi = blocking_load_dwi
sys.argv = ["infarctsam", *sys.argv[2:]]
from infarctsam.cli import main
main()
"""


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the batch never reached the blocking case"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_a_batch_closes_its_records_and_leaves_inputs_alone(tmp_path, sig):
    lab = tmp_path / "lab"
    for i, name in enumerate(["c0", "c1-block", "c2"]):
        _case(lab, name, seed=i)
    (lab / "cases.txt").write_text("c0_dwi.nii.gz\nc1-block_dwi.nii.gz\nc2_dwi.nii.gz\n", encoding="utf-8")
    before = tree_digest(lab)
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", BATCH_SCRIPT, str(markers), "segment", str(lab / "cases.txt"),
                             "-o", str(lab), "--engine", "threshold", "--no-qc"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    try:
        _wait_for(markers / "reached", proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig and err.strip().splitlines()[-1] == \
        f"error: interrupted ({signal.Signals(sig).name})", err
    _unchanged(before, tree_digest(lab))
    events = [json.loads(x) for x in (lab / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[-1]["event"] == "run_end" and events[-1]["status"] == "interrupted"
    # the pipeline reads ahead and writes behind: at the signal the first case may or may not be written yet
    counts = events[-1]["counts"]
    assert counts["failed"] == counts["skipped"] == counts["ok"] == 0 and counts["warnings"] <= 1, counts
    assert counts["warnings"] + counts["pending"] == 3, counts
    with (lab / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        statuses = [r["status"] for r in csv.DictReader(fh)]
    assert statuses == ["warnings"] * counts["warnings"] + ["pending"] * counts["pending"], statuses
    new = set(tree_digest(lab)) - set(before)
    records = {"infarctsam_run.jsonl", "infarctsam_summary.csv"}
    # the first case's outputs: there when it was recorded; when the signal came between writing them and recording
    # the case, they may be there too (each written whole: a rerun finds them), or not yet written
    first = {"c0.json", "c0_mask.nii.gz"}
    assert records <= new and new - records in ([first] if counts["warnings"] else [first, set()]), new
    if "c0.json" in new:
        assert "volume_ml" in json.loads((lab / "c0.json").read_text(encoding="utf-8"))  # written whole


def test_temporary_files_of_a_killed_run_are_removed_by_the_rerun(tmp_path):
    lab = tmp_path / "lab"
    dwi = _case(lab, "c0")
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = 2**22 + 12345  # above Linux's largest process id: no such process
        stale = [out / f".infarctsam_summary.csv.{dead}.ab12.tmp.csv", out / ".infarctsam_summary.csv.xy.tmp.csv",
                 out / f".c0_mask.nii.gz.{dead}.cd34.tmp.nii.gz", out / f".c0.json.{dead}.ef56.tmp.json"]
        live = out / f".infarctsam_summary.csv.{sleeper.pid}.gh78.tmp.csv"  # a writer that still runs
        for p in [*stale, live]:
            p.write_text("half written", encoding="utf-8")
        res = runner.invoke(app, ["segment", str(dwi), "-o", str(out), "--engine", "threshold", "--no-qc"])
        assert res.exit_code == 0, res.output
        assert not any(p.exists() for p in stale[2:])  # the single case removed its own leftovers
        res = runner.invoke(app, ["segment", str(lab), "-o", str(out), "--engine", "threshold", "--no-qc"])
        assert res.exit_code == 0, res.output
        assert not any(p.exists() for p in stale) and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_missing_input_fails_before_any_model_loads(tmp_path):
    out = tmp_path / "out"
    code = ("import sys, time\n"
            "from infarctsam.api import segment\n"
            "from infarctsam.errors import InputError\n"
            "t = time.perf_counter()\n"
            "try:\n"
            f"    segment({str(tmp_path / 'nope_dwi.nii.gz')!r}, {str(out)!r}, engine='auto')\n"
            "except InputError as exc:\n"
            "    print(str(exc), 'torch' in sys.modules, round(time.perf_counter() - t, 3))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": SRC})
    message, torch_loaded, _ = proc.stdout.rsplit(" ", 2)
    assert message.startswith("DWI not found: ") and torch_loaded == "False", proc.stdout + proc.stderr
    assert not out.exists()
    # a valid DWI with a missing ADC fails the same way, before reading anything heavy
    dwi = _case(tmp_path / "lab", "c0")
    res = runner.invoke(app, ["segment", str(dwi), "--adc", str(tmp_path / "nope_adc.nii.gz"), "-o", str(out)])
    assert res.exit_code == 2 and res.stderr.startswith("error: --adc") and "ADC not found" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not out.exists()


def test_name_only_in_non_latin_script_gets_a_safe_derived_id(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    dwi, _, _, _ = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False)
    path = save_nifti(lab / "脑卒中_dwi.nii.gz", dwi, AFFINE)
    res = runner.invoke(app, ["segment", str(path), "-o", str(tmp_path / "out"), "--engine", "threshold"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    case = names[0].split(".")[0]
    assert case.startswith("case-") and case.isascii() and names == [f"{case}.json", f"{case}_mask.nii.gz",
                                                                    f"{case}_qc.png"]
    # the same name gives the same id (reruns find their outputs)
    res = runner.invoke(app, ["segment", str(path), "-o", str(tmp_path / "out"), "--engine", "threshold"])
    assert res.exit_code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == names


def test_third_party_stderr_is_captured():
    import warnings

    from infarctsam.io.capture import captured_stderr, summary

    with captured_stderr() as said:
        os.write(2, b"WARNING: In /build/itkFoo.cxx, line 12\nFoo (0x55d1c0ffee): Non uniform sampling\n\n")
        warnings.warn("overflow encountered in cast", RuntimeWarning, stacklevel=1)
    assert said == ["Foo: Non uniform sampling", "overflow encountered in cast"]
    assert summary(said) == "Foo: Non uniform sampling; overflow encountered in cast"


def test_training_configuration_from_a_device_or_fifo_is_refused(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        res = runner.invoke(app, ["train", path])
        assert res.exit_code == 2 and "not a regular file" in res.stderr and len(res.stderr.splitlines()) == 1


def test_model_card_nested_too_deeply_is_one_line(tmp_path):
    import torch
    from safetensors.torch import save_file

    weights = tmp_path / "deep.safetensors"
    save_file({"a": torch.zeros(1)}, str(weights))
    weights.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    dwi = _case(tmp_path / "lab", "c0")
    res = runner.invoke(app, ["segment", str(dwi), "--engine", "sam", "--weights", str(weights), "-o",
                              str(tmp_path / "out")])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1
    assert "unexpected" not in res.stderr and not (tmp_path / "out").exists()
