"""`infarctsam train`: a tiny two-stage run end to end, exact resume, torchrun DDP on CPU (gloo), config errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from infarctsam.errors import ConfigError
from infarctsam.train.config import load_config

# Two clinical-preset phantoms (25 slices of 5 mm; one for training, one held out): a validation decodes ~23 slices
# instead of the ~70 of an ISLES-like case, which is most of a run's time at this model size.
TINY = {
    "name": "tiny",
    "seed": 5,
    "start": "random",
    "model": {"image_size": 32, "memory_attention_ffn": 128},
    "data": [{"kind": "synth", "n": 2, "preset": "clinical"}],
    "val_fraction": 0.5,
    "stage1": {"steps": 4, "batch_size": 3, "warmup": 1},
    "stage2": {"steps": 2, "batch_size": 2, "clip_length": 3, "warmup": 1},
    "checkpoint_every": 2,
    "log_every": 1,
    "val_every": 2,
    "threads": 1,
}


def write_config(folder: Path, **changes) -> Path:
    cfg = {**TINY, **changes, "output": str(folder / "run")}
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One complete two-stage run through the CLI (phantoms, slice cache, both stages, validation, export)."""
    from infarctsam.cli import app

    folder = tmp_path_factory.mktemp("tiny")
    res = CliRunner().invoke(app, ["train", str(write_config(folder)), "--quiet"])
    assert res.exit_code == 0, res.output
    return folder / "run"


def reuse_cache(tiny_run: Path, folder: Path) -> None:
    """Give a new run folder the finished slice cache of ``tiny_run`` (same data configuration, so the run reuses it
    exactly as a rerun or a resume does) instead of rendering the phantoms and encoding their slices again."""
    shutil.copytree(tiny_run / "cache", folder / "run" / "cache")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_stage_run_end_to_end(tiny_run):
    from infarctsam.model.build import build_model

    run = tiny_run
    resolved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert resolved["software_version"] and resolved["model"]["image_size"] == 32
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["train"]) == 1 and len(manifest["val"]) == 1
    assert not {m["patient"] for m in manifest["train"]} & {m["patient"] for m in manifest["val"]}
    rows = list(csv.DictReader((run / "logs" / "train.csv").open(encoding="utf-8")))
    assert [(int(r["stage"]), int(r["step"])) for r in rows] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2)]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    val = list(csv.DictReader((run / "logs" / "val.csv").open(encoding="utf-8")))
    assert len(val) == 3 and all(0.0 <= float(v["dice"]) <= 1.0 for v in val)
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    card = json.loads((run / "tiny.json").read_text(encoding="utf-8"))
    assert card["architecture"] == "infarctsam-promptfree" and card["training"]["data"]["train_cases"] == {"synth": 1}
    assert set(card["training"]["seconds"]) == {"1", "2"} and card["metrics"]["selected_stage"] in (1, 2)
    model, info = build_model(None, run / "tiny.safetensors")  # what the engine loads: checksum, strict tensors
    assert model.sam.config.image_size == 32 and info["sha256"] == card["tensors_sha256"]


class _Stop(Exception):
    pass


def test_resume_is_exact(tiny_run, tmp_path, monkeypatch):
    from infarctsam.train import loop

    straight = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)["model"]  # the same config, run
    reuse_cache(tiny_run, tmp_path)                                                            # straight through

    original = loop.Trainer._log

    def interrupt(self, stage, step, *args):
        original(self, stage, step, *args)
        if (stage, step) == (1, 3):
            raise _Stop  # killed after the step-2 checkpoint, one step later

    monkeypatch.setattr(loop.Trainer, "_log", interrupt)
    with pytest.raises(_Stop):
        loop.train(load_config(write_config(tmp_path)), progress=False)
    monkeypatch.setattr(loop.Trainer, "_log", original)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["run"]["step"] == 2
    loop.train(load_config(write_config(tmp_path)), resume=True, progress=False)
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=1e-5, atol=1e-6, msg=key)


def test_torchrun_ddp_two_processes_on_cpu(tiny_run, tmp_path):
    """Rank 0 prepares the run (config, manifest, slice cache: here the finished cache of ``tiny_run``, whose data
    configuration is the same) while the other rank waits at the barrier, then both train."""
    config = write_config(tmp_path, stage1={"steps": 2, "batch_size": 2, "warmup": 0},
                          stage2={"steps": 1, "batch_size": 1, "clip_length": 2, "warmup": 0})
    reuse_cache(tiny_run, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "infarctsam", "train", str(config), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["world_size"] == 2
    assert json.loads((run / "result.json").read_text(encoding="utf-8"))["weights"].endswith("tiny.safetensors")
    rows = list(csv.DictReader((run / "logs" / "train.csv").open(encoding="utf-8")))
    assert len(rows) == 3  # only rank 0 logs


@pytest.mark.parametrize("change,needle", [
    ({"data": []}, None),
    ({"data": [{"kind": "synth"}]}, "needs n"),
    ({"stage1": {"steps": -1}}, "stage1.steps"),
    ({"model": {"backbone": "resnet"}}, "model.backbone"),
    ({"surprise": 1}, "surprise"),
])
def test_config_errors_are_one_line(tmp_path, change, needle):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}), encoding="utf-8")
    if needle is None:  # an empty data list is valid for the schema but yields no case to train on
        from infarctsam.train.data import collect_cases

        assert collect_cases(load_config(path)) == []
        return
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
