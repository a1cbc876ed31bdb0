"""Dataset discovery: BIDS / ISLES'22 layout, flat folders, case lists, safe identifiers."""

from __future__ import annotations

import numpy as np
import pytest

from infarctsam.errors import InputError
from infarctsam.io.dataset import find_cases, parse_entities, safe_id

from synthetic_cases import save_nifti


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_nifti(path, np.ones((3, 3, 3), np.float32), np.eye(4))


def test_isles22_layout(tmp_path):
    for sub in ("strokecase0001", "strokecase0002"):
        d = tmp_path / "rawdata" / f"sub-{sub}" / "ses-0001" / "dwi"
        _img(d / f"sub-{sub}_ses-0001_dwi.nii.gz")
        _img(d / f"sub-{sub}_ses-0001_adc.nii.gz")
    _img(tmp_path / "derivatives" / "sub-strokecase0001" / "ses-0001" / "sub-strokecase0001_ses-0001_msk.nii.gz")
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["sub-strokecase0001_ses-0001", "sub-strokecase0002_ses-0001"]
    assert cases[0].adc.name.endswith("_adc.nii.gz") and cases[0].mask.name.endswith("_msk.nii.gz")
    assert cases[1].mask is None and cases[1].subject == "strokecase0002" and cases[1].session == "0001"


def test_flat_folder_pairs_by_stem(tmp_path):
    for name in ("a_dwi", "a_adc", "a_mask", "b_dwi", "b_flair"):
        _img(tmp_path / f"{name}.nii.gz")
    cases = find_cases(tmp_path)
    assert [(c.case_id, c.adc is not None, c.mask is not None) for c in cases] == [("a", True, True),
                                                                                   ("b", False, False)]


def test_flat_folder_of_untagged_images(tmp_path):
    _img(tmp_path / "dwi.nii.gz")
    _img(tmp_path / "adc.nii.gz")
    (cases,) = find_cases(tmp_path)
    assert cases.case_id == tmp_path.name and cases.adc.name == "adc.nii.gz"


def test_case_list_file(tmp_path):
    a = _img(tmp_path / "x" / "p1_dwi.nii.gz")
    b = _img(tmp_path / "x" / "p1_adc.nii.gz")
    listing = tmp_path / "cases.txt"
    listing.write_text(f"# dwi adc\n{a}\t{b}\nx/p1_dwi.nii.gz\n", encoding="utf-8")
    cases = find_cases(listing)
    assert len(cases) == 2 and cases[0].adc == b and {c.case_id for c in cases} == {"p1", "p1-2"}


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(InputError, match="no cases"):
        find_cases(tmp_path)
    with pytest.raises(InputError, match="not found"):
        find_cases(tmp_path / "nope")


def test_entities_and_safe_ids():
    assert parse_entities("sub-01_ses-2_space-orig_desc-infarct_mask.nii.gz") == {
        "sub": "01", "ses": "2", "space": "orig", "desc": "infarct", "suffix": "mask"}
    assert safe_id("../../etc/passwd") == "etc_passwd"
    assert "/" not in safe_id("a/../b") and not safe_id(".hidden").startswith(".")
    with pytest.raises(InputError):
        safe_id("../..")
