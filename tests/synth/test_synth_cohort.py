"""write_cohort: BIDS / ISLES'22 and flat layouts, readable files, exact truth volumes, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infarctsam.errors import ConfigError
from infarctsam.io.volume import read_volume
from infarctsam.synth import make_phantom, write_cohort
from infarctsam.synth.cohort import case_seed, synthetic_participant


def test_bids_layout(tmp_path, fast_config):
    out = tmp_path / "cohort"
    manifest = write_cohort(out, 2, seed=5, config=fast_config)
    assert [m["case_id"] for m in manifest] == ["sub-synth001", "sub-synth002"]
    for m in manifest:
        sub = m["case_id"]
        assert m["dwi"] == f"rawdata/{sub}/ses-01/dwi/{sub}_ses-01_dwi.nii.gz"
        assert m["adc"] == f"rawdata/{sub}/ses-01/dwi/{sub}_ses-01_adc.nii.gz"
        assert m["mask"] == f"derivatives/{sub}/ses-01/{sub}_ses-01_msk.nii.gz"
        dwi, adc, mask = (read_volume(out / m[k]) for k in ("dwi", "adc", "mask"))
        assert dwi.same_grid(adc) and dwi.same_grid(mask)
        assert set(np.unique(mask.data)) <= {0, 1}
        assert m["lesion_volume_ml"] == pytest.approx(float(mask.data.sum()) * mask.voxel_volume_ml, rel=1e-6)
        assert (out / f"rawdata/{sub}/ses-01/dwi/{sub}_ses-01_dwi.json").is_file()
        # The file holds exactly the phantom of this case's seed.
        ph = make_phantom(m["seed"], fast_config)
        assert np.allclose(dwi.data, ph.dwi.data) and np.allclose(dwi.affine, ph.dwi.affine, atol=1e-5)
    lines = (out / "participants.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["participant_id", "age", "sex", "nihss"]
    assert [ln.split("\t")[0] for ln in lines[1:]] == ["sub-synth001", "sub-synth002"]
    for ln in lines[1:]:
        _, age, sex, nihss = ln.split("\t")
        assert 18 <= int(age) <= 100 and sex in ("M", "F") and 0 <= int(nihss) <= 42
    desc = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    assert desc["BIDSVersion"] and desc["DatasetType"] == "raw"
    saved = json.loads((out / "synth_manifest.json").read_text(encoding="utf-8"))
    assert saved["cases"] == json.loads(json.dumps(manifest))


def test_flat_layout_and_prefix_stability(tmp_path, fast_config):
    out = tmp_path / "flat"
    calls: list[tuple[str, int, int]] = []
    manifest = write_cohort(out, 1, seed=5, config=fast_config, layout="flat", write_brain=True,
                            progress=lambda *a: calls.append(a))
    assert calls == [("loading the lesion library and template", 0, 0), ("writing cases", 1, 1)]
    m = manifest[0]
    assert (m["dwi"], m["adc"], m["mask"], m["brain"]) == (
        "synth001_dwi.nii.gz", "synth001_adc.nii.gz", "synth001_mask.nii.gz", "synth001_brainmask.nii.gz")
    for key in ("dwi", "adc", "mask", "brain"):
        assert read_volume(out / m[key]).spatial_shape == tuple(fast_config.shape)
    assert m["seed"] == case_seed(5, 0)
    assert case_seed(5, 0) != case_seed(5, 1) and case_seed(5, 0) != case_seed(6, 0)


def test_bad_layout_and_size(tmp_path, fast_config):
    with pytest.raises(ConfigError):
        write_cohort(tmp_path, 1, seed=0, config=fast_config, layout="nnunet")
    with pytest.raises(ConfigError):
        write_cohort(tmp_path, 0, seed=0, config=fast_config)


def test_participants_use_donor_values_when_known():
    rng = np.random.default_rng(0)
    assert synthetic_participant(rng, {"age": 71.0, "sex": "F", "nihss": 4.0}) == {"age": 71, "sex": "F", "nihss": 4}
    drawn = [synthetic_participant(np.random.default_rng(i)) for i in range(200)]
    ages = np.array([d["age"] for d in drawn])
    assert 60 < ages.mean() < 76 and ages.min() >= 20 and ages.max() <= 95
    assert {d["sex"] for d in drawn} == {"M", "F"}
    assert synthetic_participant(np.random.default_rng(3)) == synthetic_participant(np.random.default_rng(3))
