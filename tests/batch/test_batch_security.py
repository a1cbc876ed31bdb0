"""Security: checkpoints carrying pickled code are refused unexecuted; hostile case names never write outside the
output folder; nothing is fetched from the network."""

from __future__ import annotations

import json
import pickle
import socket
import warnings

import pytest
import torch
from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.errors import WeightsError
from infarctsam.model.checkpoint import read_torch_checkpoint

from batch_helpers import files_under, write_case
from synthetic_cases import EXAMPLE_STEM, real_slab

runner = CliRunner()


class RunsCode:
    """Unpickling this object executes Python source (creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _evil_checkpoints(folder, marker):
    payload = {"image_encoder.weight": torch.zeros(2, 2), "hook": RunsCode(marker)}
    zipped, legacy, raw = folder / "evil_zip.pt", folder / "evil_legacy.pth", folder / "evil_raw.pt"
    torch.save(payload, zipped)
    torch.save(payload, legacy, _use_new_zipfile_serialization=False)
    raw.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    return [zipped, legacy, raw]


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoints(tmp_path, marker)
    for path in evil:
        with pytest.raises(WeightsError) as info:
            read_torch_checkpoint(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)
        assert not marker.exists(), path
    for path in evil:
        res = runner.invoke(app, ["weights", "inspect", str(path)])
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1
        assert not marker.exists(), path
    dwi, _ = write_case(tmp_path / "in", "c0")
    res = runner.invoke(app, ["segment", str(dwi), "--engine", "sam", "--weights", str(evil[0]), "-o",
                              str(tmp_path / "out")])
    assert res.exit_code != 0 and res.stderr.startswith("error: ") and not marker.exists()
    # the payload is real: an unrestricted load runs it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(evil[0], weights_only=False)
    assert marker.read_text(encoding="utf-8") == "pwned"


def test_hostile_case_names_never_write_outside_the_output_folder(tmp_path):
    work = tmp_path / "work"
    # BIDS entities with odd characters (a literal %2f and dots) in folder and file names
    hostile = work / "isles" / "rawdata" / "sub-..%2f.." / "ses-1" / "dwi"
    write_case(hostile, "sub-..%2f.._ses-1")
    write_case(work / "isles" / "rawdata" / "sub-02" / "ses-1" / "dwi", "sub-02_ses-1")
    # a symbolic link planted in the output folder that points outside it
    outside = work / "outside"
    outside.mkdir(parents=True)
    out = work / "out"
    out.mkdir()
    (out / "sub-02").symlink_to(outside, target_is_directory=True)
    # a case list reaching up with '..' and naming an absolute path
    write_case(work, "evil")
    abs_dwi, _ = write_case(work / "elsewhere", "..abs")
    lists = work / "a" / "b"
    lists.mkdir(parents=True)
    (lists / "cases.txt").write_text(f"../../evil_dwi.nii.gz\n{abs_dwi}\n", encoding="utf-8")
    before = files_under(work)

    res_bids = runner.invoke(app, ["segment", str(work / "isles"), "-o", str(out), "--bids", "--no-qc",
                                   "--engine", "threshold"])
    res_list = runner.invoke(app, ["segment", str(lists / "cases.txt"), "-o", str(out), "--engine", "threshold"])
    created = files_under(work) - before
    assert created and all(p.startswith("out/") for p in created), created
    assert list(outside.iterdir()) == []
    assert (res_bids.exit_code, res_list.exit_code) == (1, 0), (res_bids.output, res_list.output)
    # the hostile BIDS label became a safe name inside OUT; the symlinked subject was refused, alone
    events = [json.loads(x) for x in (out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    cases = {e["case"]: e for e in events if e["event"] == "case" and e["run"] == events[0]["run"]}
    assert cases["sub-02_ses-1"]["status"] == "failed" and "outside the output folder" in cases["sub-02_ses-1"]["error"]
    safe = [c for c in cases if c != "sub-02_ses-1"]
    assert len(safe) == 1 and cases[safe[0]]["status"] == "warnings" and "/" not in safe[0] and ".." not in safe[0]
    assert {"out/evil.json", "out/evil_mask.nii.gz", "out/abs.json"} <= created


def test_nothing_is_fetched_from_the_network(tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    from infarctsam.api import segment

    # every output (location in MNI, QC pictures, reference overlap) on the whole real case, with the threshold engine
    result = segment(f"{EXAMPLE_STEM}_dwi.nii.gz", tmp_path / "one", adc=f"{EXAMPLE_STEM}_adc.nii.gz",
                     reference=f"{EXAMPLE_STEM}_msk.nii.gz", engine="threshold")
    assert result.stats.volume_ml > 0 and (tmp_path / "one" / "sub-strokecase0009_ses-0001_qc.png").exists()
    assert result.summary["location"]["reliable"]
    # the default model (its weights from the installed package, its compiled parts exported or read from the
    # cache), on three real slices one at a time and in a batch
    dwi, adc, _ = real_slab(tmp_path / "in", 38, 41)
    assert segment(dwi, tmp_path / "sam", adc=adc, engine="auto", qc=False).summary["engine"] == "sam"
    res = runner.invoke(app, ["segment", str(tmp_path / "in"), "-o", str(tmp_path / "many"), "--engine", "auto"])
    assert res.exit_code == 0, res.output
    assert attempts == []
