"""Finding masks in flat folders and BIDS / ISLES'22 roots and pairing them by case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evalfixtures import SHAPE, save_mask

from infarctsam.errors import InputError
from infarctsam.evaluate.pairing import find_background, find_masks, flat_key, pair_masks

M = np.zeros(SHAPE, dtype=np.uint8)


@pytest.mark.parametrize(
    ("stem", "key"),
    [
        ("case01_mask", "case01"),
        ("case01_msk", "case01"),
        ("case01", "case01"),
        ("case01_lesion", "case01"),
        ("case01_seg", "case01"),
        ("case01_label", "case01"),
        ("case01_pred", "case01"),
        ("case01_space-orig_desc-infarct_mask", "case01"),
        ("case_01_desc-lesion_seg", "case_01"),
    ],
)
def test_flat_key_strips_mask_tokens(stem: str, key: str) -> None:
    assert flat_key(stem)[0] == key


def test_flat_folder_ignores_images_and_sidecars(tmp_path: Path) -> None:
    for name in ("case01_mask", "case02", "case03_msk", "case01_dwi", "case01_adc", "case02_0000", "case03_probseg"):
        save_mask(tmp_path / f"{name}.nii.gz", M)
    (tmp_path / "case01.json").write_text("{}", encoding="utf-8")
    (tmp_path / ".case04_mask.nii.gz.tmp.nii.gz").write_text("partial", encoding="utf-8")
    found = find_masks(tmp_path).masks
    assert sorted(found) == ["case01", "case02", "case03"]
    assert found["case01"].name == "case01_mask.nii.gz"


def test_flat_folder_prefers_the_mask_named_file_and_rejects_ambiguity(tmp_path: Path) -> None:
    save_mask(tmp_path / "a" / "case01.nii.gz", M)
    save_mask(tmp_path / "a" / "case01_mask.nii.gz", M)
    assert find_masks(tmp_path / "a").masks["case01"].name == "case01_mask.nii.gz"
    save_mask(tmp_path / "b" / "case01_mask.nii.gz", M)
    save_mask(tmp_path / "b" / "case01_msk.nii.gz", M)
    with pytest.raises(InputError, match="several masks for case case01"):
        find_masks(tmp_path / "b")


def test_isles22_root_and_segment_outputs_pair_by_subject_session(tmp_path: Path) -> None:
    isles = tmp_path / "isles"
    for sub in ("strokecase0001", "strokecase0002"):
        save_mask(isles / "rawdata" / f"sub-{sub}" / "ses-0001" / "dwi" / f"sub-{sub}_ses-0001_dwi.nii.gz", M)
        save_mask(isles / "derivatives" / f"sub-{sub}" / "ses-0001" / f"sub-{sub}_ses-0001_msk.nii.gz", M)
    ours = tmp_path / "ours"
    save_mask(ours / "sub-strokecase0001" / "ses-0001" / "dwi"
              / "sub-strokecase0001_ses-0001_space-orig_desc-infarct_mask.nii.gz", M)
    save_mask(ours / "sub-strokecase0001" / "ses-0001" / "dwi"
              / "sub-strokecase0001_ses-0001_space-orig_desc-brain_mask.nii.gz", M)
    save_mask(ours / "sub-strokecase0002_ses-0001_space-orig_desc-infarct_mask.nii.gz", M)
    gt = find_masks(isles)
    assert sorted(gt.masks) == ["sub-strokecase0001_ses-0001", "sub-strokecase0002_ses-0001"]
    assert all("derivatives" in str(p) for p in gt.masks.values())
    pred = find_masks(ours)
    assert "desc-infarct" in pred.masks["sub-strokecase0001_ses-0001"].name
    pairing = pair_masks(gt, {"ours": pred})
    assert pairing.cases == ["sub-strokecase0001_ses-0001", "sub-strokecase0002_ses-0001"]
    assert pairing.missing == {}
    bg = find_background("sub-strokecase0002_ses-0001", [isles])
    assert bg is not None and bg.name == "sub-strokecase0002_ses-0001_dwi.nii.gz"


def test_single_session_subject_matches_subject_with_session(tmp_path: Path) -> None:
    for sub in ("01", "02", "03"):
        save_mask(tmp_path / "gt" / f"sub-{sub}_ses-1_msk.nii.gz", M)
    save_mask(tmp_path / "pred" / "sub-01_mask.nii.gz", M)
    save_mask(tmp_path / "pred" / "sub-02_ses-1_mask.nii.gz", M)
    save_mask(tmp_path / "pred" / "sub-03_ses-1.nii.gz", M)  # entities only (e.g. nnU-Net style output names)
    save_mask(tmp_path / "pred" / "sub-03_ses-1_dwi.nii.gz", M)  # an image, not a mask
    pairing = pair_masks(find_masks(tmp_path / "gt"), {"p": find_masks(tmp_path / "pred")})
    assert pairing.cases == ["sub-01_ses-1", "sub-02_ses-1", "sub-03_ses-1"]
    assert pairing.preds["p"]["sub-03_ses-1"].name == "sub-03_ses-1.nii.gz"


def test_missing_cases_listed_strict_and_no_overlap(tmp_path: Path) -> None:
    for c in ("c1", "c2", "c3"):
        save_mask(tmp_path / "gt" / f"{c}_msk.nii.gz", M)
    for c in ("c1", "c2", "c4"):
        save_mask(tmp_path / "p" / f"{c}_mask.nii.gz", M)
    gt, p = find_masks(tmp_path / "gt"), find_masks(tmp_path / "p")
    pairing = pair_masks(gt, {"p": p})
    assert pairing.cases == ["c1", "c2"]
    assert pairing.missing == {"gt": ["c4"], "p": ["c3"]}
    lines = pairing.missing_lines()
    assert any("reference" in line and "c4" in line for line in lines)
    assert any("'p'" in line and "c3" in line for line in lines)
    with pytest.raises(InputError, match="--strict"):
        pair_masks(gt, {"p": p}, strict=True)
    save_mask(tmp_path / "q" / "zz_mask.nii.gz", M)
    with pytest.raises(InputError, match="no case is found"):
        pair_masks(gt, {"q": find_masks(tmp_path / "q")})


def test_missing_or_empty_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        find_masks(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no lesion masks"):
        find_masks(tmp_path / "empty")


def test_find_background_flat_and_excluded_mask(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "case01.nii.gz", M)
    save_mask(tmp_path / "case02_0000.nii.gz", M)
    assert find_background("case01", [tmp_path], exclude={mask}) is None
    assert find_background("case02", [tmp_path]).name == "case02_0000.nii.gz"
