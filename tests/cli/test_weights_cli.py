"""``infarctsam weights inspect`` on a SAM 2.1-tiny-shaped checkpoint and on a broken one."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from infarctsam.cli import app


def test_inspect_good_and_bad(tmp_path):
    from infarctsam.model.sam2 import build_sam2, hiera_tiny

    sd = build_sam2(hiera_tiny(256)).state_dict()
    torch.save({"model": sd}, tmp_path / "sam2.1_hiera_tiny.pt")
    runner = CliRunner()
    good = runner.invoke(app, ["weights", "inspect", str(tmp_path / "sam2.1_hiera_tiny.pt")])
    assert good.exit_code == 0, good.output
    assert "architecture: sam2.1-hiera-tiny" in good.stdout and "471 tensors" in good.stdout
    bad = dict(sd)
    bad["image_encoder.trunk.blocks.0.attn.qkv.weight"] = torch.zeros(10, 96)
    del bad["no_obj_ptr"]
    bad["extra.weight"] = torch.zeros(3)
    torch.save({"model": bad}, tmp_path / "broken.pt")
    res = runner.invoke(app, ["weights", "inspect", str(tmp_path / "broken.pt")])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: broken.pt does not fit sam2.1-hiera-tiny")
    for needle in ("no_obj_ptr", "qkv.weight", "extra.weight"):
        assert needle in err
