"""The corpus of broken inputs (tests/cli/bad_inputs.py) in one batch with good cases: each broken case is recorded
as failed with one clear line and leaves no output, the good cases finish, the exit code is 1."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from infarctsam.cli import app

from bad_inputs import BAD_INPUTS, SINGLE_ONLY
from batch_helpers import files_under, write_case

# Entries that are about one case's own files (DWI, ADC, sidecars); the others test single-case options.
BATCH_KINDS = sorted(k for k in BAD_INPUTS if k not in SINGLE_ONLY)


def _list_line(args: list[str]) -> str:
    dwi = args[0]
    adc = args[args.index("--adc") + 1] if "--adc" in args else None
    return dwi if adc is None else f"{dwi}\t{adc}"


def test_bad_inputs_in_a_batch_fail_alone(tmp_path):
    lines, bad_dwis = [], {}
    for kind in BATCH_KINDS:
        folder = tmp_path / "bad" / kind
        folder.mkdir(parents=True)
        args = BAD_INPUTS[kind](folder)
        lines.append(_list_line(args))
        bad_dwis[args[0]] = kind
    good = [write_case(tmp_path / "good", f"good{i}", seed=i) for i in range(3)]
    lines += [f"{d}\t{a}" for d, a in good]
    listing = tmp_path / "cases.tsv"
    header = "dwi\tadc\n# the corpus of broken inputs, then three good cases\n"
    listing.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"

    res = CliRunner().invoke(app, ["segment", str(listing), "-o", str(out), "--engine", "threshold"])
    assert res.exit_code == 1, res.output
    with (out / "infarctsam_summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(BATCH_KINDS) + 3
    by_kind = {bad_dwis[r["dwi"]]: r for r in rows if r["dwi"] in bad_dwis}
    assert sorted(by_kind) == BATCH_KINDS
    for kind, row in by_kind.items():
        assert row["status"] == "failed", (kind, row)
        error = row["error"]
        assert error and "\n" not in error and "unexpected" not in error and "Traceback" not in error, (kind, error)
    ok = [r for r in rows if r["status"] in ("ok", "warnings")]
    assert sorted(r["case"] for r in ok) == ["good0", "good1", "good2"]
    # outputs exist only for the good cases; the failed ones left nothing, not even a temporary file
    expected = {f"good{i}{s}" for i in range(3) for s in (".json", "_mask.nii.gz", "_qc.png")}
    assert files_under(out) == expected | {"infarctsam_run.jsonl", "infarctsam_summary.csv"}
    # the run log carries the same line per failed case, and stderr lists them
    events = [json.loads(x) for x in (out / "infarctsam_run.jsonl").read_text(encoding="utf-8").splitlines()]
    failed = {e["case"]: e["error"] for e in events if e["event"] == "case" and e["status"] == "failed"}
    assert failed == {r["case"]: r["error"] for r in rows if r["status"] == "failed"}
    stderr_failures = [ln for ln in res.stderr.splitlines() if ln.startswith("failed: ")]
    assert len(stderr_failures) == len(BATCH_KINDS)
    # a few messages say precisely what is wrong
    assert "truncated or corrupt" in by_kind["truncated_gzip"]["error"]
    assert "not found" in by_kind["missing_path"]["error"]
    assert "all zero" in by_kind["all_zero"]["error"]
    assert "no b-values" in by_kind["4d_without_bvals"]["error"]
    assert "ADC" in by_kind["adc_not_overlapping"]["error"] or "overlap" in by_kind["adc_not_overlapping"]["error"]


def test_unwritable_output_folder_stops_the_batch_in_one_line(tmp_path):
    write_case(tmp_path / "in", "c0")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    res = CliRunner().invoke(app, ["segment", str(tmp_path / "in"), "-o", str(blocker / "sub"), "--engine",
                                   "threshold"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1


def test_list_where_nothing_exists_is_refused_before_any_output(tmp_path):
    listing = tmp_path / "cases.txt"
    listing.write_text("missing_a_dwi.nii.gz\nmissing_b_dwi.nii.gz\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["segment", str(listing), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "none of the listed DWIs exists (line 1" in res.stderr
    assert not (tmp_path / "out").exists()
