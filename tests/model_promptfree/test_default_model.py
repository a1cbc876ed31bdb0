"""The shipped default model: installed with the package, verified, the default engine, better than the baseline on
the bundled real case."""

from __future__ import annotations

import json

import pytest

from infarctsam.engines import default_weights_path, load_engine

from synthetic_cases import EXAMPLE_STEM


def test_default_model_is_installed_and_checked():
    from infarctsam.model.weights_format import load_weights

    path = default_weights_path()
    assert path is not None and path.stat().st_size < 40 * 1024 * 1024
    _, card = load_weights(path, verify=True)  # refuses a file whose tensors do not match the card's sha256
    assert card.architecture == "infarctsam-promptfree" and card.base_weights["sha256"].startswith("79d8c9dc")
    assert card.training["data"]["train_cases"] and card.training["seconds"]
    assert load_engine("auto").info.name == "sam"


def test_default_model_beats_the_threshold_engine_on_the_real_case(tmp_path):
    from infarctsam.api import segment

    dice = {}
    for engine in ("auto", "threshold"):
        res = segment(f"{EXAMPLE_STEM}_dwi.nii.gz", tmp_path / engine, adc=f"{EXAMPLE_STEM}_adc.nii.gz",
                      reference=f"{EXAMPLE_STEM}_msk.nii.gz", engine=engine, qc=False)
        dice[res.summary["engine"]] = res.summary["reference"]["dice"]
        ref_volume = res.summary["reference"]["volume_gt_ml"]
        if res.summary["engine"] == "sam":
            sam_volume = res.stats.volume_ml
    summary = json.loads((tmp_path / "auto" / "sub-strokecase0009_ses-0001.json").read_text(encoding="utf-8"))
    assert summary["engine"] == "sam" and summary["weights"].startswith("infarctsam-default")
    assert dice["sam"] > dice["threshold"] and dice["sam"] >= 0.6, dice
    assert sam_volume == pytest.approx(ref_volume, rel=0.4)
