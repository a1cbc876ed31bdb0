"""Writing the review page: ``review.html`` (table, viewer, decisions; scripts and styles inlined) and, beside it,
``review_files/`` with one small script per case holding its compressed slices (loaded when the case is opened, so
a page of a thousand cases opens at once). Everything works from ``file://``, with no server and no network.

The page is written all-or-nothing: the case files go to a temporary folder that replaces ``review_files/`` only
when complete, then ``review.html`` is replaced atomically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from infarctsam._version import __version__
from infarctsam.errors import OutputError
from infarctsam.io.atomic import write_text
from infarctsam.review.collect import ReviewCase, collect_cases
from infarctsam.review.decisions import REVIEW_CSV, decisions_beside
from infarctsam.review.slices import case_slices

FILES_DIR = "review_files"


@dataclass
class ReviewPage:
    """What :func:`build_review` wrote.

    Attributes
    ----------
    html : Path
        The page.
    files : Path
        The folder of per-case slice scripts.
    n_cases : int
        Rows in the table.
    n_warnings : int
        Cases with at least one warning.
    """

    html: Path
    files: Path
    n_cases: int
    n_warnings: int


def _asset(name: str) -> str:
    return resources.files("infarctsam.review").joinpath("assets", name).read_text(encoding="utf-8")


def _number(value: Any, digits: int) -> float | None:
    try:
        return None if value is None or value == "" else round(float(value), digits)
    except (TypeError, ValueError):
        return None


def case_row(case: ReviewCase, key: str, thumb: bytes | None, data_file: str | None, base: Path) -> dict[str, Any]:
    """The table row of a case (what the page shows and exports); links are relative to ``base``, the page's folder."""
    s = case.summary
    ref = s.get("reference") or {}
    qc = (s.get("outputs") or {}).get("qc")
    # the QC picture beside the JSON, by its bare name: a recorded "javascript:..." or "/etc/..." never becomes a link
    qc_path = None if case.json_path is None or not isinstance(qc, str) else case.json_path.parent / Path(qc).name
    if qc_path is not None and not qc_path.is_file():
        qc_path = None
    return {
        "id": key, "case": case.case, "status": case.status,
        "volume_ml": _number(s.get("volume_ml"), 3), "lesion_count": _number(s.get("lesion_count"), 0),
        "largest_lesion_ml": _number(s.get("largest_lesion_ml"), 3),
        "engine": s.get("engine"), "weights": s.get("weights"), "dice": _number(ref.get("dice"), 3),
        "location": (s.get("location") or {}).get("summary"),
        "location_reliable": (s.get("location") or {}).get("reliable"),
        "warnings": case.warnings,
        "thumb": None if thumb is None else "data:image/png;base64," + base64.b64encode(thumb).decode("ascii"),
        "data": data_file,
        "qc": None if qc_path is None else quote(Path(os.path.relpath(qc_path.resolve(), base.resolve())).as_posix()),
    }


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: ``<``, ``>`` and ``&`` as ``\\u`` escapes (still valid JSON, so no string
    can close the element or open a comment)."""
    text = json.dumps(obj, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """The page: the template with its styles, script, rows and configuration inlined."""
    import re

    parts = {"CSS": _asset("review.css"), "JS": _asset("review.js"), "ROWS": _script_json(rows),
             "CONFIG": _script_json(config)}
    # one pass over the template: a marker inside a case's text is never replaced in turn
    return re.sub(r"/\*__(CSS|JS|ROWS|CONFIG)__\*/", lambda m: parts[m.group(1)], _asset("review.html"))


def build_review(inputs: list[Path], output: Path, *, title: str | None = None, max_side: int = 256,
                 log: Callable[[str], None] | None = None) -> ReviewPage:
    """Build the review page of batch / single-case output folders or case JSONs.

    Parameters
    ----------
    inputs : list of Path
        Output folders of ``infarctsam segment`` (batch or single case) and/or case JSON files.
    output : Path
        The HTML file to write; ``review_files/`` is written beside it.
    title : str, optional
        Page title (default: the first input's name).
    max_side : int
        Largest in-plane size of the slices kept in the page.
    log : callable, optional
        Receives one line per case whose images could not all be shown.

    Returns
    -------
    ReviewPage

    Raises
    ------
    InputError
        No case found, or an input that is neither an output folder nor a case JSON.
    OutputError
        The page cannot be written.
    """
    cases = collect_cases([Path(p) for p in inputs])
    output = Path(output)
    folder = output.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{FILES_DIR}-", dir=folder))
        tmp.chmod(0o755)  # mkdtemp makes it private; the page's folder is meant to be shared like the other outputs
    except OSError as exc:
        raise OutputError(f"cannot write the review page in {folder}: {exc.strerror or exc}") from exc
    try:
        rows = []
        for n, case in enumerate(cases, start=1):
            key = f"c{n:05d}"
            payload, thumb, notes = case_slices(case, max_side=max_side) if case.status == "ok" else ({}, None, [])
            if notes:
                case.warnings.extend(notes)
                if log is not None:
                    log(f"{case.case}: {'; '.join(notes)}")
            data_file = None
            if payload:
                (tmp / f"{key}.js").write_text(f"infarctsamCase({json.dumps(key)},{_script_json(payload)});\n",
                                               encoding="utf-8")
                data_file = f"{FILES_DIR}/{key}.js"
            rows.append(case_row(case, key, thumb, data_file, folder))
        decisions = {}
        for item in inputs:
            if Path(item).is_dir():
                decisions.update(decisions_beside(item))
        config = {"title": title or Path(inputs[0]).resolve().name, "version": __version__,
                  "storage_key": "infarctsam-review:" + hashlib.sha1(str(output.resolve()).encode()).hexdigest()[:16],
                  "decisions": decisions, "export_name": REVIEW_CSV}
        html = render_html(rows, config)
        final = folder / FILES_DIR
        old = None
        if final.exists():
            old = folder / f".{FILES_DIR}-old-{tmp.name.rsplit('-', 1)[-1]}"
            final.rename(old)
        tmp.rename(final)
        write_text(output, html)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(f"cannot write the review page {output}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
    return ReviewPage(html=output, files=folder / FILES_DIR, n_cases=len(rows),
                      n_warnings=sum(1 for r in rows if r["warnings"]))
