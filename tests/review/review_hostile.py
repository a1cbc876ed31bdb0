"""Hostile strings for the review tests: case JSONs whose every string field holds markup or script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HOSTILE_CASE = '<img src=x onerror="window.__pwned=1">'
HOSTILE_WARNINGS = ["</script><script>window.__pwned=2</script>", '<b onmouseover="window.__pwned=3">bold</b>',
                    "\u202eRTL override <!-- not a comment", "line\nbreak & ampersand",
                    "/*__CONFIG__*/ /*__ROWS__*/ template markers"]
HOSTILE_ENGINE = '<svg onload="window.__pwned=4">'
HOSTILE_WEIGHTS = '"><iframe src="javascript:window.__pwned=5"></iframe>'
HOSTILE_QC = "javascript:window.__pwned=6"
HOSTILE_TITLE = "</title><script>window.__pwned=7</script>"



def make_hostile_page(batch_out: Path, root: Path) -> Path:
    """Copy the batch into ``root``, put the hostile strings into its case JSONs, and build its review page."""
    from infarctsam.review.page import build_review

    out = root / "out"
    shutil.copytree(batch_out, out)
    obj = json.loads((out / "alpha.json").read_text(encoding="utf-8"))
    obj.update(case=HOSTILE_CASE, warnings=HOSTILE_WARNINGS, engine=HOSTILE_ENGINE, weights=HOSTILE_WEIGHTS)
    (out / "alpha.json").write_text(json.dumps(obj), encoding="utf-8")
    obj = json.loads((out / "bravo.json").read_text(encoding="utf-8"))
    obj["outputs"]["qc"] = HOSTILE_QC
    (out / HOSTILE_QC).write_bytes((out / "bravo_qc.png").read_bytes())  # a file may carry that name, too
    (out / "bravo.json").write_text(json.dumps(obj), encoding="utf-8")
    html = root / "page" / "review.html"
    build_review([out], html, title=HOSTILE_TITLE)
    return html
