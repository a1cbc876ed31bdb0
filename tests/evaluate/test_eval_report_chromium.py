"""The HTML report renders in headless Chromium: tables and images present, images decoded, no console messages.

Two page loads are checked:

* the report itself (script-free, with its Content-Security-Policy) is screenshotted with Chromium's log on stderr;
  the report has no scripts, so ANY ``CONSOLE`` line (an error, a CSP violation, a blocked resource) is a failure,
  and the screenshot must not be blank;
* a copy of the report with a small inline probe script (the CSP widened only for inline scripts) is loaded with
  ``--dump-dom``; on ``load`` the probe writes into ``<body>`` attributes how many ``<img>`` decoded
  (``naturalWidth > 0``) and the id, row count and rendered width of every table.

A control page with a console error, a blocked remote image and a broken image proves both detectors fire.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from evalfixtures import make_cohort

from infarctsam.evaluate import evaluate
from infarctsam.report import write_report

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian package 'chromium')")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0"]
PROBE = """<script>window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var tables = Array.prototype.slice.call(document.querySelectorAll("table"));
  document.body.setAttribute("data-img-total", String(imgs.length));
  document.body.setAttribute("data-img-ok", String(ok.length));
  document.body.setAttribute("data-tables", tables.map(function (t) {
    return t.id + ":" + t.rows.length + ":" + t.getBoundingClientRect().width; }).join(","));
});</script>"""
CONSOLE = re.compile(r"CONSOLE[(:]")


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def probe(page: Path, tmp: Path) -> tuple[dict[str, str], list[str]]:
    """Load a copy of ``page`` with the probe script; return the body attributes and the console lines."""
    text = page.read_text(encoding="utf-8")
    text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    text = text.replace("</body>", PROBE + "</body>")
    probed = tmp / f"probe-{page.name}"
    probed.write_text(text, encoding="utf-8")
    res = run_chromium(["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()], tmp / f"profile-{page.stem}")
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body is not None, res.stdout[:500]
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1))), console_lines(res.stderr)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chromium")
    c = make_cohort(root / "cohort")
    clinical = root / "clinical.tsv"
    clinical.write_text("participant_id\tage\tsex\ncase00\t71\tF\ncase01\t64\tM\ncase02\tn/a\tM\ncase03\t80\tF\n",
                        encoding="utf-8")
    write_report(evaluate(c["gt"], [c["a"], c["b"]], clinical=clinical), root / "out")
    return root / "out" / "report.html"


def test_report_renders_without_console_messages(report: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    shot = tmp_path / "shot.png"
    res = run_chromium(["--window-size=1200,2600", f"--screenshot={shot}", report.as_uri()], tmp_path / "profile")
    assert res.returncode == 0, res.stderr[-2000:]
    assert console_lines(res.stderr) == []
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 2600)
    stat = ImageStat.Stat(img)
    assert stat.stddev[0] > 20  # text, tables and figures, not a blank page
    assert len(img.getcolors(maxcolors=256 * 256) or []) > 50
    lower = img.crop((0, 1300, 1200, 2600))  # the figures sit below the tables
    assert ImageStat.Stat(lower).stddev[0] > 20


def test_report_tables_and_images_load(report: Path, tmp_path: Path) -> None:
    attrs, console = probe(report, tmp_path)
    assert console == []
    assert attrs["data-img-total"] == "5" and attrs["data-img-ok"] == "5"
    tables = {t.split(":")[0]: (int(t.split(":")[1]), float(t.split(":")[2])) for t in attrs["data-tables"].split(",")}
    assert set(tables) == {"table1", "table2", "comparisons", "bland-altman", "cases"}
    assert tables["table2"][0] == 3 and tables["comparisons"][0] == 2  # header + 2 methods, header + 1 pair
    assert tables["table1"][0] > 5 and tables["cases"][0] == 11
    assert all(width > 100 for name, (_, width) in tables.items() if name != "cases")  # rendered, not collapsed


def test_detectors_catch_console_errors_and_broken_images(tmp_path: Path) -> None:
    from infarctsam.report.html import CSP

    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head><body>'
        '<table id="t"><tr><td>x</td></tr></table><img src="data:image/png;base64,AAAA" alt="broken">'
        '<img src="https://example.invalid/x.png" alt="remote"><script>console.error("boom")</script></body></html>'
    , encoding="utf-8")
    res = run_chromium(["--dump-dom", bad.as_uri()], tmp_path / "profile-bad")
    assert len(console_lines(res.stderr)) >= 2  # the blocked remote image and the blocked inline script
    attrs, console = probe(bad, tmp_path)
    assert attrs["data-img-total"] == "2" and attrs["data-img-ok"] == "0"
    assert any("boom" in line for line in console)
