"""``infarctsam evaluate`` and ``infarctsam.evaluate.evaluate`` on a tiny synthetic cohort."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from evalfixtures import AFFINE, gt_mask, make_cohort, save_mask
from typer.testing import CliRunner

from infarctsam.cli.evaluate import register
from infarctsam.errors import InputError
from infarctsam.evaluate import evaluate
from infarctsam.report import write_report

REQUIRED_COLUMNS = ["case", "method", "dice", "volume_gt_ml", "volume_pred_ml", "avd_ml", "lesion_f1",
                    "lesion_count_diff", "hd95_mm", "assd_mm", "sensitivity", "precision", "n_lesions_gt",
                    "n_lesions_pred", "n_lesions_detected"]
METHOD_KEYS = {"dice_mean", "dice_sd", "dice_median", "dice_iqr", "icc_a1", "icc_c1", "bland_altman",
               "lesion_f1_mean", "avd_ml_mean"}
VOXEL_ML = 0.9 * 1.1 * 3.0 / 1000


def make_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def run_cli(*args: str):
    return CliRunner().invoke(make_app(), ["evaluate", *args])


def test_cli_writes_every_output_and_lists_missing_case(cohort: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("--gt", str(cohort["gt"]), "--pred", str(cohort["a"]), "--pred", str(cohort["b"]),
                  "-o", str(out))
    assert res.exit_code == 0, res.output + res.stderr
    assert "case05" in res.stderr and "methodA" in res.stderr  # missing case listed on stderr
    assert "evaluated 5 cases" in res.stdout
    for name in ("cases.csv", "summary.json", "summary.md", "report.html", "dice.png", "bland_altman.png",
                 "paired_dice.png", "volume_scatter.png", "overlays.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    assert not list(out.glob(".*"))  # no temporary files left by the atomic writes

    rows = list(csv.DictReader((out / "cases.csv").open(encoding="utf-8")))
    assert list(rows[0])[: len(REQUIRED_COLUMNS)] == REQUIRED_COLUMNS
    assert len(rows) == 10 and {r["method"] for r in rows} == {"methodA", "methodB"}
    by = {(r["case"], r["method"]): r for r in rows}
    # case00: reference box 3x3x2 = 18 voxels; methodA shifts it one voxel along i -> overlap 12: Dice 24/36.
    assert float(by[("case00", "methodA")]["dice"]) == pytest.approx(24 / 36, rel=1e-5)
    assert float(by[("case00", "methodA")]["volume_gt_ml"]) == pytest.approx(18 * VOXEL_ML, rel=1e-5)
    assert float(by[("case00", "methodA")]["hd95_mm"]) == pytest.approx(0.9, rel=1e-5)  # one 0.9 mm voxel
    # methodB = reference + one distant voxel: 19 voxels, lesion F1 = 1 / (1 + 1/2), count difference 1.
    assert float(by[("case00", "methodB")]["dice"]) == pytest.approx(36 / 37, rel=1e-5)
    assert float(by[("case00", "methodB")]["lesion_f1"]) == pytest.approx(2 / 3, rel=1e-5)
    assert by[("case00", "methodB")]["lesion_count_diff"] == "1"
    assert by[("case02", "methodA")]["n_lesions_gt"] == "2"

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases"] == 5
    assert set(summary["methods"]) == {"methodA", "methodB"}
    for m in summary["methods"].values():
        assert METHOD_KEYS <= set(m)
        assert len(m["dice_iqr"]) == 2 and set(m["icc_a1"]) >= {"value", "ci95"} and len(m["icc_c1"]["ci95"]) == 2
        assert set(m["bland_altman"]) >= {"bias", "loa"} and len(m["bland_altman"]["loa"]) == 2
    assert summary["methods"]["methodA"]["bland_altman"]["bias"] == pytest.approx(0.0, abs=1e-9)  # shift keeps volume
    assert summary["methods"]["methodB"]["avd_ml_mean"] == pytest.approx(VOXEL_ML, rel=1e-5)
    (comp,) = summary["comparisons"]
    assert (comp["a"], comp["b"], comp["metric"]) == ("methodA", "methodB", "dice")
    assert comp["wilcoxon_p"] == pytest.approx(0.0625)  # 5 pairs, all favour methodB: exact 2 / 2^5

    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "| methodA | 5 |" in md and "case05" in md and "No clinical table" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 5 and "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and 'id="table2"' in html and "case05" in html


def test_cli_mismatched_grid_is_an_error_naming_the_case(tmp_path: Path) -> None:
    c = make_cohort(tmp_path / "c", missing=None, mismatch=3)
    res = run_cli("--gt", str(c["gt"]), "--pred", str(c["a"]), "-o", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert "case03" in res.stderr and "grid" in res.stderr and "Traceback" not in res.output + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "report.html").exists()


def test_cli_non_binary_labels_need_label_any(tmp_path: Path) -> None:
    c = make_cohort(tmp_path / "c", n=3, missing=None)
    labels = gt_mask(1) * 2
    save_mask(c["b"] / "case01.nii.gz", labels)
    res = run_cli("--gt", str(c["gt"]), "--pred", str(c["b"]), "-o", str(tmp_path / "o1"))
    assert res.exit_code == 2 and "case01.nii.gz" in res.stderr and "--label-any" in res.stderr
    res = run_cli("--gt", str(c["gt"]), "--pred", str(c["b"]), "-o", str(tmp_path / "o2"), "--label-any",
                  "--no-figures", "--name", "B")
    assert res.exit_code == 0, res.stderr
    rows = {r["case"]: r for r in csv.DictReader((tmp_path / "o2" / "cases.csv").open(encoding="utf-8"))}
    assert float(rows["case01"]["dice"]) == pytest.approx(1.0) and rows["case01"]["method"] == "B"


def test_cli_strict_and_option_errors(cohort: dict[str, Path], tmp_path: Path) -> None:
    base = ["--gt", str(cohort["gt"]), "--pred", str(cohort["a"]), "-o", str(tmp_path / "o")]
    res = run_cli(*base, "--strict")
    assert res.exit_code == 2 and "case05" in res.stderr
    res = run_cli(*base, "--name", "x", "--name", "y")
    assert res.exit_code == 2 and "--name" in res.stderr
    res = run_cli(*base, "--ba-transform", "sqrt")
    assert res.exit_code == 2 and "--ba-transform" in res.stderr
    res = run_cli(*base, "--cases", "case01,nope")
    assert res.exit_code == 2 and "nope" in res.stderr


def test_api_log_transform_clinical_cohorts_and_chosen_overlays(cohort: dict[str, Path], tmp_path: Path) -> None:
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("case,age,sex,site\ncase00,70,M,A\ncase01,80,F,A\ncase02,60,M,B\ncase03,,F,B\n"
                        "case04,65,M,B\ncase99,50,F,A\n", encoding="utf-8")
    messages: list[str] = []
    res = evaluate(cohort["gt"], [cohort["b"]], names=["B"], clinical=clinical, cohort_column="site",
                   ba_transform="log", log=messages.append)
    assert not (tmp_path / "o").exists()  # evaluate computes; the report is written only by write_report
    outputs = write_report(res, tmp_path / "o", overlay_cases=["case01"], log_axes=True)
    assert res.summary["n_cases"] == 6 and res.methods == ["B"]
    assert messages == []  # methodB has every case
    ba = res.summary["methods"]["B"]["bland_altman"]
    assert ba["transform"] == "log" and ba["bias"] > 0
    # log ratio of (V + 1 voxel) / V averaged over references of 18, 50, 98 + 1, 18, 50, 98 voxels
    expected = np.mean([math.log((n + 1) / n) for n in (18, 50, 99, 18, 50, 98)])
    assert ba["bias"] == pytest.approx(expected, rel=1e-6)
    assert res.table1 is not None and res.table1.columns == ["All (n=5)", "A (n=2)", "B (n=3)"]
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert 'id="table1"' in html and "A (n=2)" in html and "ln(mL)" in html
    assert any("case05" in n for n in res.table1.notes)  # evaluated case without a clinical row
    assert "paired_dice.png" not in outputs and "overlays.png" in outputs
    with pytest.raises(InputError, match="nope"):
        write_report(res, tmp_path / "o2", overlay_cases=["nope"])
    assert not (tmp_path / "o2").exists()


def test_api_writes_nothing_and_flipped_grid_volumes(tmp_path: Path) -> None:
    gt = np.zeros((6, 6, 4), dtype=np.uint8)
    gt[1:3, 1:3, 1:3] = 1  # 8 voxels
    flipped = AFFINE.copy()
    flipped[:3, :3] = AFFINE[:3, [1, 0, 2]]  # permuted and flipped axes: |det| still 2.97 mm^3
    save_mask(tmp_path / "g" / "x_msk.nii.gz", gt, flipped)
    save_mask(tmp_path / "p" / "x.nii.gz", gt, flipped)
    res = evaluate(tmp_path / "g", [tmp_path / "p"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "p"]
    row = res.cases.iloc[0]
    assert row["dice"] == 1.0 and row["volume_gt_ml"] == pytest.approx(8 * VOXEL_ML)
    assert row["hd95_mm"] == 0.0 and row["lesion_f1"] == 1.0
    with pytest.raises(InputError, match="at least one"):
        evaluate(tmp_path / "g", [])


def test_real_isles22_case_against_a_dilated_prediction_in_segment_layout(tmp_path: Path) -> None:
    """The real ISLES'22 case that ships in examples/ (so this runs on every machine, without ../shared)."""
    from synthetic_cases import EXAMPLE

    case_dir = EXAMPLE
    import nibabel as nib
    from scipy import ndimage

    img = nib.load(str(case_dir / "sub-strokecase0009_ses-0001_msk.nii.gz"))
    dilated = ndimage.binary_dilation(np.asarray(img.dataobj) > 0)
    out = tmp_path / "pred" / "sub-strokecase0009" / "ses-0001" / "dwi"
    save_mask(out / "sub-strokecase0009_ses-0001_space-orig_desc-infarct_mask.nii.gz", dilated, img.affine)
    res = evaluate(case_dir, [tmp_path / "pred"], names=["dilated"])
    write_report(res, tmp_path / "o")
    row = res.cases.iloc[0]
    assert row["case"] == "sub-strokecase0009_ses-0001"
    assert row["volume_gt_ml"] == pytest.approx(4.18, abs=0.01)  # the expert mask's volume (shared README)
    assert row["sensitivity"] == 1.0 and row["volume_pred_ml"] > row["volume_gt_ml"]
    assert row["hd95_mm"] == pytest.approx(2.0)  # one 2 mm voxel of dilation everywhere
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "on the DWI;" in html  # the DWI beside the expert mask was found for the overlay background


def test_cli_units_old_outdir_alias_and_table_numbers_with_one_method(cohort: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    res = run_cli("--gt", str(cohort["gt"]), "--pred", str(cohort["b"]), "--outdir", str(tmp_path / "o"),
                  "--no-figures")
    assert res.exit_code == 0, res.stderr
    assert "volume bias 0.00 mL (prediction - reference)" in res.stdout  # methodB adds 1 voxel: 0.003 mL
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Table 3. Bland-Altman" in html and "Table 4" not in html  # no gap without a paired comparison
    res = run_cli("--gt", str(cohort["gt"]), "--pred", str(cohort["b"]), "--no-figures")
    assert res.exit_code == 2 and "--output" in res.stderr
    from infarctsam.cli import app

    help_text = CliRunner().invoke(app, ["evaluate", "--help"]).stdout
    assert "--output" in help_text and "--outdir" not in help_text and "<" not in help_text.replace(
        "<none|log|cbrt>", "")


def test_api_progress_counts_cases(cohort: dict[str, Path]) -> None:
    calls: list[tuple[str, int, int]] = []
    res = evaluate(cohort["gt"], [cohort["a"]], progress=lambda *a: calls.append(a))
    n = res.summary["n_cases"]
    assert calls == [("reading masks", i, n) for i in range(1, n + 1)]


def _inputs_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the inputs and anything written beside them)."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["gt", "pred_sub", "clinical_named_like_output", "hardlink_in_output"])
def test_output_never_replaces_or_writes_into_an_input(cohort: dict[str, Path], tmp_path: Path, where: str) -> None:
    import os

    clinical = tmp_path / "cohort" / "clinical.csv"
    clinical.write_text("case,age\ncase00,70\n", encoding="utf-8")
    args = ["--gt", str(cohort["gt"]), "--pred", str(cohort["a"]), "--no-figures"]
    if where == "gt":
        out = cohort["gt"]
    elif where == "pred_sub":
        out = cohort["a"] / "report"
    elif where == "clinical_named_like_output":
        out = tmp_path / "cohort"
        clinical = clinical.rename(out / "cases.csv")
        args += ["--clinical", str(clinical)]
    else:
        out = tmp_path / "linked"
        out.mkdir()
        os.link(cohort["gt"] / "case00_msk.nii.gz", out / "summary.json")
    before = _inputs_digest(tmp_path)
    res = run_cli(*args, "-o", str(out))
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: output ") and len(err.splitlines()) == 1, err
    assert "input" in err and "evaluated" not in res.stdout
    assert _inputs_digest(tmp_path) == before  # nothing replaced, nothing written beside the inputs
    # the Python API refuses too
    if where in ("gt", "pred_sub"):
        from infarctsam.errors import OutputError

        result = evaluate(cohort["gt"], [cohort["a"]])
        with pytest.raises(OutputError):
            write_report(result, out, figures=False)
        assert _inputs_digest(tmp_path) == before
