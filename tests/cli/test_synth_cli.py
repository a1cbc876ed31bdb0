"""``infarctsam synth`` writes a readable cohort whose masks have the stated volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.io.dataset import find_cases
from infarctsam.io.volume import read_volume


def test_synth_cohort_bids(tmp_path):
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "c"), "--n", "2", "--seed", "3", "--preset", "isles"])
    assert res.exit_code == 0, res.output
    cases = find_cases(tmp_path / "c")
    assert len(cases) == 2 and all(c.adc is not None and c.mask is not None for c in cases)
    manifest = json.loads((tmp_path / "c" / "synth_manifest.json").read_text(encoding="utf-8"))
    entries = {e["case_id"]: e for e in manifest["cases"]}
    assert manifest["n"] == 2 and manifest["seed"] == 3
    for case in cases:
        entry = entries[f"sub-{case.subject}"]
        mask = read_volume(case.mask)
        assert mask.shape == (112, 112, 73)
        vol = float(np.sum(mask.data > 0) * mask.voxel_volume_ml)
        assert vol == pytest.approx(entry["lesion_volume_ml"], rel=1e-5)


def test_synth_rejects_unknown_preset(tmp_path):
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "c"), "--preset", "mri"])
    assert res.exit_code == 2 and "'mri' is not one of 'isles', 'clinical', 'random'" in res.stderr
    assert not (tmp_path / "c").exists()
