"""The location everywhere a user looks: ``infarctsam locate``, the case JSON and result line of ``segment``,
and ``evaluate``'s per-territory agreement and dominant-territory counts."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from synthetic_head import make_head, territory_points
from typer.testing import CliRunner

from infarctsam.cli import app


def _save(path, data, affine):
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def test_locate_cli_writes_json_and_picture(tmp_path):
    point = territory_points([9])[9]  # left MCA, parietal part
    dwi, affine, masks = make_head(rot_deg=(10, 0, -15), flip_x=True, blobs=[point], blob_mm=9.0)
    d = _save(tmp_path / "head_dwi.nii.gz", dwi, affine)
    m = _save(tmp_path / "reader1.nii.gz", masks[0].astype(np.uint8), affine)
    before = m.read_bytes()
    res = CliRunner().invoke(app, ["locate", str(m), "--dwi", str(d), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "left MCA" in res.stdout.splitlines()[0]
    data = json.loads((tmp_path / "out" / "reader1_location.json").read_text(encoding="utf-8"))
    loc = data["location"]
    assert loc["reliable"] and loc["dominant"]["territory"] == "MCAL"
    assert abs(sum(e["ml"] for e in loc["level2"].values()) + loc["outside_atlas"]["ml"] - data["volume_ml"]) < 1e-3
    assert loc["side"]["left"]["share"] > 0.9
    png = (tmp_path / "out" / "reader1_location.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert m.read_bytes() == before  # input untouched


def test_locate_cli_bad_input_is_one_line(tmp_path):
    dwi, affine, _ = make_head(n_slices=4)
    d = _save(tmp_path / "slab.nii.gz", dwi, affine)
    other = _save(tmp_path / "m.nii.gz", np.zeros((5, 5, 5), np.uint8), np.eye(4))
    res = CliRunner().invoke(app, ["locate", str(other), "--dwi", str(d), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and "not on the DWI grid" in res.output
    assert not (tmp_path / "o").exists()


def test_segment_records_location_in_json_and_line(tmp_path):
    point = territory_points([8])[8]  # right MCA, frontal part
    dwi, affine, _ = make_head(rot_deg=(0, 0, 12), blobs=[point], blob_mm=10.0)
    d = _save(tmp_path / "case_dwi.nii.gz", dwi, affine)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["segment", str(d), "-o", str(out), "--engine", "threshold", "--no-qc", "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(next(out.glob("*.json")).read_text(encoding="utf-8"))
    loc = data["location"]
    assert loc["reliable"], loc["registration"]
    assert loc["summary"] in res.stdout
    if data["volume_ml"] > 0:
        assert loc["side"]["right"]["share"] > loc["side"]["left"]["share"]
    res = CliRunner().invoke(app, ["segment", str(d), "-o", str(tmp_path / "out2"), "--engine", "threshold",
                                   "--no-qc", "--no-location", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(next((tmp_path / "out2").glob("*.json")).read_text(encoding="utf-8"))["location"] is None


def test_batch_summary_has_location_columns(tmp_path):
    import csv

    point = territory_points([11])[11]  # left MCA, temporal part
    dwi, affine, _ = make_head(rot_deg=(-10, 0, 0), blobs=[point], blob_mm=10.0)
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "case1_dwi.nii.gz", dwi, affine)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["segment", str(tmp_path / "in"), "-o", str(out), "--engine", "threshold",
                                   "--no-qc", "-q"])
    assert res.exit_code == 0, res.output
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["status"] in ("ok", "warnings")  # segmented (the phantom's brain mask is near
    # the adult range's upper end: 1901 mL warns)
    case = json.loads(next(out.glob("*.json")).read_text(encoding="utf-8"))
    assert rows[0]["location"] == case["location"]["summary"] and rows[0]["location_reliable"] == "True"
    for code, entry in case["location"]["level2"].items():
        if code[:2] != "LV":
            assert float(rows[0][f"{code}_ml"]) == entry["ml"]


def test_location_columns_without_location():
    from infarctsam.location.report import location_columns

    cols = location_columns(None)
    assert set(cols) >= {"location", "dominant_territory", "MCAL_ml"} and set(cols.values()) == {""}


def test_evaluate_reports_territory_agreement(tmp_path):
    """The mapping recorded in each case JSON places reference and predicted masks; Table 1b counts the cohort."""
    from infarctsam.evaluate import evaluate
    from infarctsam.report import write_report

    labels = {"c0": 7, "c1": 8, "c2": 7, "c3": 19}  # left MCA, right MCA, left MCA, left PCA
    pts = territory_points(set(labels.values()))
    pose = dict(rot_deg=(0, 0, 20), shift_mm=(5, 0, 0))
    for case, lab in labels.items():
        _, affine, masks = make_head(**pose, blobs=[pts[lab]], blob_mm=8.0)
        _, _, bigger = make_head(**pose, blobs=[pts[lab]], blob_mm=9.0)
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "pred").mkdir(exist_ok=True)
        _save(tmp_path / "gt" / f"{case}.nii.gz", masks[0].astype(np.uint8), affine)
        _save(tmp_path / "pred" / f"{case}_mask.nii.gz", bigger[0].astype(np.uint8), affine)
        from synthetic_head import rotation

        to_scanner = np.eye(4)
        to_scanner[:3, :3] = rotation(pose["rot_deg"])
        to_scanner[:3, 3] = pose["shift_mm"]
        record = {"case": case, "volume_ml": 1.0, "outputs": {"mask": f"{case}_mask.nii.gz"},
                  "location": {"reliable": True,
                               "registration": {"matrix_native_to_mni": np.linalg.inv(to_scanner).tolist()}}}
        (tmp_path / "pred" / f"{case}.json").write_text(json.dumps(record))
    result = evaluate(tmp_path / "gt", [tmp_path / "pred"], names=["m"])
    terr = result.summary["territories"]
    assert terr["n_located"] == 4 and terr["n_without_mapping"] == 0
    assert terr["dominant_counts"] == {"left MCA": 2, "right MCA": 1, "left PCA": 1}
    mcal = terr["agreement"]["m"]["MCAL"]
    assert mcal["n"] == 4 and mcal["icc_a1"] > 0.8 and mcal["ba_bias_ml"] > 0  # the method's blobs are larger
    files = write_report(result, tmp_path / "report", figures=False)
    md = (tmp_path / "report" / "summary.md").read_text(encoding="utf-8")
    assert "Table 1b" in md and "left MCA | 2 (50%)" in md and "Table 2b" in md
    assert files
