"""Inputs that are what they claim: a DWI with bright fluid (a b0, T2 or ADC image), an ADC with dark fluid (a DWI),
swapped images and masks are refused in one line; an ADC computed from a b0 image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.errors import InputError
from infarctsam.io.dwi import adc_from_b0, load_dwi
from infarctsam.io.volume import Volume
from infarctsam.preprocess import preprocess
from infarctsam.preprocess.image_kind import (
    MAX_DWI_BRIGHT_CSF,
    MIN_ADC_BRIGHT_CSF,
    check_image_kinds,
    check_not_a_mask,
    symmetric_bright_fraction,
)

from synthetic_cases import head_phantom, save_nifti

SPACING = (3.0, 3.0, 6.0)
AFFINE = np.diag([-3.0, 3.0, 6.0, 1.0])  # a flipped axis


def _case():
    dwi, adc, brain, les = head_phantom(shape=(40, 44, 16), spacing=SPACING, scalp=False)
    b0 = dwi * np.exp(1000.0 * adc * 1e-6)  # the same tissue without diffusion weighting (S0 = S_b e^{b ADC})
    return dwi, adc, b0.astype(np.float32), les


def _pre(image, adc=None):
    return preprocess(Volume(image, AFFINE), None if adc is None else Volume(adc, AFFINE))


def test_the_figure_separates_a_dwi_from_an_adc_and_a_b0():
    dwi, adc, b0, _ = _case()
    pre = _pre(dwi, adc)
    assert symmetric_bright_fraction(pre.dwi, pre.brain) <= MAX_DWI_BRIGHT_CSF  # the lesion is one-sided
    assert symmetric_bright_fraction(pre.adc, pre.brain) >= MIN_ADC_BRIGHT_CSF  # the ventricles are bright
    kinds, warnings = check_image_kinds(pre.dwi, pre.adc, pre.brain, "dwi.nii.gz", "adc.nii.gz")
    assert warnings == [] and kinds.dwi_bright_csf == symmetric_bright_fraction(pre.dwi, pre.brain)
    for other in (adc, b0):
        p = _pre(other)
        assert symmetric_bright_fraction(p.dwi, p.brain) > MAX_DWI_BRIGHT_CSF


def test_a_symmetric_bright_pair_counts_and_a_one_sided_one_does_not():
    image = np.ones((20, 10, 4), np.float32)
    brain = np.ones(image.shape, bool)
    image[3:5, 4:6, 1:3] = 3.0  # one side only
    assert symmetric_bright_fraction(image, brain) == 0.0
    image[15:17, 4:6, 1:3] = 3.0  # its mirror twin: both count
    assert symmetric_bright_fraction(image, brain) == pytest.approx(16 / image.size)


@pytest.mark.parametrize("case, needle", [
    ("adc_as_dwi", "dwi.nii.gz: looks like a b0, T2 or ADC image, not a b~1000 DWI"),
    ("b0_as_dwi", "dwi.nii.gz: looks like a b0, T2 or ADC image, not a b~1000 DWI"),
    ("swapped", "DWI and ADC look swapped: dwi.nii.gz looks like an ADC map"),
    ("dwi_as_adc", "--adc adc.nii.gz: looks like a diffusion-weighted image, not an ADC map"),
])
def test_wrong_images_are_refused_in_one_line_or_warned_when_allowed(case, needle):
    dwi, adc, b0, _ = _case()
    given = {"adc_as_dwi": (adc, None), "b0_as_dwi": (b0, None), "swapped": (adc, dwi), "dwi_as_adc": (dwi, dwi)}
    first, second = given[case]
    pre = _pre(first, second)
    with pytest.raises(InputError) as err:
        check_image_kinds(pre.dwi, pre.adc, pre.brain, "dwi.nii.gz", "adc.nii.gz")
    text = str(err.value)
    assert text.startswith(needle) and "\n" not in text and text.endswith("--allow-unusual-images to use them anyway")
    _, warnings = check_image_kinds(pre.dwi, pre.adc, pre.brain, "dwi.nii.gz", "adc.nii.gz", allow=True)
    assert len(warnings) == 1 and warnings[0].startswith(needle) and "used anyway" in warnings[0]


def test_a_mask_is_named_as_a_mask():
    _, _, _, les = _case()
    with pytest.raises(InputError, match=r"m.nii.gz: looks like a mask or label image \(2 distinct values\)"):
        check_not_a_mask(les.astype(np.float32), "DWI", "m.nii.gz")
    check_not_a_mask(_case()[0], "DWI", "dwi.nii.gz")  # an acquisition has many values


def test_adc_from_b0_inverts_the_decay():
    dwi, adc, b0, _ = _case()
    vol = Volume(dwi, AFFINE)
    out = adc_from_b0(b0, vol, 1000.0, "--b0 b0.nii.gz")
    inside = dwi > 0
    np.testing.assert_allclose(out.data[inside], adc[inside], rtol=1e-3, atol=0.5)
    assert (out.data[~inside] == 0).all() and out.meta["adc_unit"] == "1e-6 mm2/s"
    assert "b = 1000 s/mm^2" in out.meta["adc_source"] and "--b0 b0.nii.gz" in out.meta["adc_source"]
    assumed = adc_from_b0(b0, vol, None, "x")
    assert "1000 s/mm^2 assumed" in assumed.meta["adc_source"]


def test_a_4d_dwi_keeps_its_b0_for_the_adc(tmp_path):
    dwi, adc, b0, _ = _case()
    path = save_nifti(tmp_path / "s_dwi.nii.gz", np.stack([b0, dwi, dwi], -1), AFFINE)
    (tmp_path / "s_dwi.bval").write_text("0 1000 1000\n", encoding="utf-8")
    vol, info = load_dwi(path)
    assert info.used_volumes == (1, 2) and vol.meta["b0_volumes"] == (0,)
    np.testing.assert_allclose(vol.meta["b0"], b0, rtol=1e-6)


def test_segment_with_b0_computes_and_records_the_adc(tmp_path):
    dwi, adc, b0, _ = _case()
    d = save_nifti(tmp_path / "c_dwi.nii.gz", dwi, AFFINE)
    b = save_nifti(tmp_path / "c_b0.nii.gz", b0, AFFINE)
    # this phantom's uniform tissue anti-correlates weakly with any ADC, its own too (-0.23): the anatomy check is
    # told to let it through, the image-kind checks are not
    res = CliRunner().invoke(app, ["segment", str(d), "--b0", str(b), "-o", str(tmp_path / "out"), "--engine",
                                   "threshold", "--no-qc", "--no-location", "--allow-mismatched-adc"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "c.json").read_text(encoding="utf-8"))
    entry = summary["inputs"]["adc"]
    assert entry["path"] is None and entry["b0"]["path"].endswith("c_b0.nii.gz") and len(entry["b0"]["sha256"]) == 64
    assert entry["source"].startswith("computed as ln(S0/S_b)/b from --b0 c_b0.nii.gz")
    assert entry["bright_csf_fraction"] >= MIN_ADC_BRIGHT_CSF
    assert summary["inputs"]["dwi"]["bright_csf_fraction"] <= MAX_DWI_BRIGHT_CSF


@pytest.mark.parametrize("what", ["b0", "mask", "both"])
def test_wrong_images_on_the_command_line_exit_2_and_write_nothing(tmp_path, what):
    dwi, adc, b0, les = _case()
    d = save_nifti(tmp_path / "c_dwi.nii.gz", dwi, AFFINE)
    b = save_nifti(tmp_path / "c_b0.nii.gz", b0, AFFINE)
    m = save_nifti(tmp_path / "c_msk.nii.gz", les.astype(np.float32), AFFINE)
    a = save_nifti(tmp_path / "c_adc.nii.gz", adc, AFFINE)
    args = {"b0": [str(b)], "mask": [str(m)], "both": [str(d), "--adc", str(a), "--b0", str(b)]}[what]
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["segment", *args, "-o", str(out), "--engine", "threshold"])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert {"b0": "looks like a b0, T2 or ADC image", "mask": "looks like a mask",
            "both": "not both"}[what] in lines[0]
    assert not out.exists() or not any(out.iterdir())
