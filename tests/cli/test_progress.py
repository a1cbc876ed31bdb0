"""Progress feedback: stages with elapsed time on a terminal only, silenced by --quiet; JSON provenance fields."""

from __future__ import annotations

import io
import json
import re

from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.cli.progress import StageProgress

from synthetic_cases import EXAMPLE_STEM


def test_stage_lines_and_bar_redrawn_in_place():
    out = io.StringIO()
    p = StageProgress(enabled=True, stream=out)
    p("loading")
    p("encoding slices", 8, 20)
    p("encoding slices", 16, 20)
    p("decoding")  # an open bar is closed by the next stage
    p("encoding slices", 20, 20)
    p.finish()
    text = out.getvalue()
    lines = text.split("\n")
    assert re.fullmatch(r"\[\s+\d+\.\d s\] loading", lines[0])
    assert "\r" in lines[1] and lines[1].endswith("| 16/20") and "8/20" in lines[1]
    assert lines[2].endswith("decoding") and lines[3].endswith("| 20/20") and lines[4].endswith("done")
    assert text.endswith("\n")


def test_disabled_and_not_a_terminal_print_nothing(monkeypatch):
    out = io.StringIO()
    quiet = StageProgress(enabled=False, stream=out)
    quiet("loading")
    quiet("encoding slices", 1, 2)
    assert out.getvalue() == ""
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert not StageProgress.for_terminal(quiet=False).enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_enables_unless_quiet(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Tty())
    assert StageProgress.for_terminal(quiet=False).enabled
    assert not StageProgress.for_terminal(quiet=True).enabled


def test_segment_reports_each_stage_in_order_and_json_provenance(tmp_path):
    from infarctsam.api import segment

    seen: list[tuple[str, int, int]] = []
    result = segment(f"{EXAMPLE_STEM}_dwi.nii.gz", tmp_path / "o", adc=f"{EXAMPLE_STEM}_adc.nii.gz",
                     engine="threshold", location=False, progress=lambda *a: seen.append(a))
    stages = [s for s, _, _ in seen]
    order = ["reading", "brain mask", "loading the threshold engine", "segmenting", "drawing the QC", "writing"]
    positions = [next(i for i, s in enumerate(stages) if s.startswith(o)) for o in order]
    assert positions == sorted(positions), stages
    summary = json.loads((tmp_path / "o" / f"{result.case_id}.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", summary["created_utc"])
    dwi = summary["inputs"]["dwi"]
    assert dwi["used"] == "the single 3D volume (b = 800 s/mm^2, from the JSON sidecar)"
    assert dwi["volume_indices_used"] == [0] and len(dwi["sha256"]) == 64


def test_cli_without_terminal_prints_no_progress(tmp_path):
    res = CliRunner().invoke(app, ["segment", f"{EXAMPLE_STEM}_dwi.nii.gz", "--engine", "threshold", "--no-qc",
                                   "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "loading" not in res.stderr and "[" not in res.stderr  # only the 'wrote ...' lines
    assert res.stderr.startswith("wrote ") and "mL" in res.stdout
