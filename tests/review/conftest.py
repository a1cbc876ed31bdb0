"""A small batch output folder for the review tests: three phantom cases segmented by the threshold engine, one with
plausibility warnings added to its JSON (as the plausibility guard writes them), one case that failed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthetic_cases import head_phantom, oblique_affine, save_nifti


def make_batch(root: Path) -> Path:
    """Segment a tiny cohort (one case with a reference mask) and return the output folder."""
    from infarctsam.scale.runner import run_batch

    cases = root / "cases"
    cases.mkdir(parents=True)
    aff = oblique_affine(spacing=(3.0, 3.0, 6.0))
    for i, name in enumerate(("alpha", "bravo", "charlie")):
        dwi, adc, _, les = head_phantom(shape=(24, 26, 10), spacing=(3.0, 3.0, 6.0), scalp=False, seed=i)
        save_nifti(cases / f"{name}_dwi.nii.gz", dwi, aff)
        save_nifti(cases / f"{name}_adc.nii.gz", adc, aff)
    (cases / "delta_dwi.nii.gz").write_bytes(b"not a nifti")  # fails in the batch
    out = root / "out"
    run_batch(cases, out, engine="threshold")
    # fixed warnings whatever the plausibility guard said about the phantoms: two on bravo, none elsewhere
    for name, warnings in (("alpha", []), ("bravo", ["lesion volume implausible for the brain volume",
                                                     "lesion outside the brain mask"]), ("charlie", [])):
        summary = out / f"{name}.json"
        obj = json.loads(summary.read_text(encoding="utf-8"))
        obj["warnings"] = warnings
        summary.write_text(json.dumps(obj), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def batch_out(tmp_path_factory) -> Path:
    return make_batch(tmp_path_factory.mktemp("review-batch"))


@pytest.fixture(scope="session")
def review_page(batch_out, tmp_path_factory) -> Path:
    from infarctsam.review.page import build_review

    html = tmp_path_factory.mktemp("review-page") / "review.html"
    build_review([batch_out], html, title="phantom cohort")
    return html


@pytest.fixture
def marker_volume():
    """A volume with one bright voxel at the patient's right, anterior, superior corner region on an oblique grid."""
    aff = oblique_affine(spacing=(2.0, 2.5, 5.0), flip=(True, False, True))
    data = np.zeros((20, 22, 8), np.float32)
    world = aff[:3, :3] @ np.indices(data.shape).reshape(3, -1) + aff[:3, 3:4]
    centre = world.mean(axis=1, keepdims=True)
    rel = world - centre
    score = rel[0] + rel[1] + rel[2]  # most right (+x), anterior (+y), superior (+z)
    idx = np.unravel_index(int(np.argmax(score)), data.shape)
    data[idx] = 1.0
    return data, aff



@pytest.fixture(scope="session")
def hostile_page(batch_out, tmp_path_factory) -> Path:
    """The review page of a copy of the batch whose case JSONs hold markup and script in every string field."""
    from review_hostile import make_hostile_page

    return make_hostile_page(batch_out, tmp_path_factory.mktemp("review-hostile"))
