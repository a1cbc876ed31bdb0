"""The shipped default model: installed with the package, verified, the default engine, better than the baseline on
the bundled real case."""

from __future__ import annotations

import json

import pytest

from infarctsam.engines import default_weights_path, load_engine

from synthetic_cases import real_slab


def test_default_model_is_installed_and_checked():
    from infarctsam.model.weights_format import load_weights

    path = default_weights_path()
    assert path is not None and path.stat().st_size < 40 * 1024 * 1024
    _, card = load_weights(path, verify=True)  # refuses a file whose tensors do not match the card's sha256
    assert card.architecture == "infarctsam-promptfree" and card.base_weights["sha256"].startswith("79d8c9dc")
    assert card.training["data"]["train_cases"] and card.training["seconds"]
    assert load_engine("auto").info.name == "sam"


def test_default_model_beats_the_threshold_engine_on_a_real_scan(tmp_path):
    """Ten slices through the bundled case's lesion (the whole case takes minutes on 2 cores: its figures, and those
    of the other real cases, come from ``python benchmarks/real_check.py``). Measured on 2026-12-04: Dice 0.844 with
    the default model against 0.591 with the threshold engine, 2.40 mL against 2.79 mL drawn."""
    from infarctsam.api import segment

    dwi, adc, msk = real_slab(tmp_path / "in", 34, 44)
    dice = {}
    for engine in ("auto", "threshold"):
        res = segment(dwi, tmp_path / engine, adc=adc, reference=msk, engine=engine, qc=False, location=False)
        dice[res.summary["engine"]] = res.summary["reference"]["dice"]
        ref_volume = res.summary["reference"]["volume_gt_ml"]
        if res.summary["engine"] == "sam":
            sam_volume = res.stats.volume_ml
    summary = json.loads((tmp_path / "auto" / "slab.json").read_text(encoding="utf-8"))
    assert summary["engine"] == "sam" and summary["weights"].startswith("infarctsam-default")
    assert dice["sam"] > dice["threshold"] + 0.1 and dice["sam"] >= 0.75, dice
    assert sam_volume == pytest.approx(ref_volume, rel=0.3)
