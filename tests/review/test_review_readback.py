"""The decisions CSV exported by the review page is read back by the batch summary and by
``infarctsam evaluate --clinical``."""

from __future__ import annotations

import csv
import shutil

from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.evaluate.clinical import clinical_table1, read_clinical
from infarctsam.review.decisions import REVIEW_CSV

runner = CliRunner()
EXPORT = ("case,review_decision,review_note,reviewed_at,volume_ml,lesion_count,engine,weights,warnings\n"
          "alpha,accept,,2024-05-01T10:00:00Z,1.5,1,threshold,none,\n"
          'bravo,needs-edit,"misses the posterior part, redo",2024-05-01T10:01:00Z,2.5,2,threshold,none,'
          "lesion outside the brain mask\n"
          "charlie,reject,artefact,2024-05-01T10:02:00Z,0.5,1,threshold,none,\n")


def test_batch_summary_gets_the_decisions(batch_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(batch_out, out)
    (out / REVIEW_CSV).write_text(EXPORT, encoding="utf-8")
    res = runner.invoke(app, ["segment", str(batch_out.parent / "cases"), "-o", str(out), "--engine", "threshold",
                              "-q"])
    assert res.exit_code == 1, res.output  # delta still fails; the others are skipped as finished
    with (out / "infarctsam_summary.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["alpha"]["status"] == "skipped" and rows["alpha"]["review_decision"] == "accept"
    assert rows["bravo"]["review_decision"] == "needs-edit"
    assert rows["bravo"]["review_note"] == "misses the posterior part, redo"
    assert rows["delta"]["review_decision"] == "" and rows["delta"]["status"] == "failed"


def test_bad_decisions_file_stops_the_batch_before_writing(batch_out, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / REVIEW_CSV).write_text("case,review_decision\nalpha,perhaps\n", encoding="utf-8")
    res = runner.invoke(app, ["segment", str(batch_out.parent / "cases"), "-o", str(out), "--engine", "threshold"])
    assert res.exit_code == 2 and "unknown decision 'perhaps'" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == [REVIEW_CSV]


def test_clinical_table1_reads_the_decisions(tmp_path):
    path = tmp_path / REVIEW_CSV
    path.write_text(EXPORT, encoding="utf-8")
    table = clinical_table1(read_clinical(path), ["alpha", "bravo", "charlie"], cohort_column="review_decision")
    labels = [r.label for r in table.rows]
    assert "volume_ml, median [IQR]" in labels and "engine, n (%)" in labels
    assert not any(lbl.startswith(("review_note", "reviewed_at", "warnings")) for lbl in labels)
    assert table.columns == ["All (n=3)", "accept (n=1)", "needs-edit (n=1)", "reject (n=1)"]
    assert any("3 of 3 rows" in n for n in table.notes)


def test_evaluate_cli_accepts_the_decisions_as_clinical_table(batch_out, tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for folder in (gt, pred):
        folder.mkdir()
        for case in ("alpha", "bravo", "charlie"):
            shutil.copy(batch_out / f"{case}_mask.nii.gz", folder / f"{case}_mask.nii.gz")
    path = tmp_path / REVIEW_CSV
    path.write_text(EXPORT, encoding="utf-8")
    res = runner.invoke(app, ["evaluate", "--gt", str(gt), "--pred", str(pred), "-o", str(tmp_path / "ev"),
                              "--clinical", str(path), "--cohort-column", "review_decision", "--no-figures"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "ev" / "summary.md").read_text(encoding="utf-8")
    assert "needs-edit (n=1)" in md and "review_note" not in md
