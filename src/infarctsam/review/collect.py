"""Finding the cases of a batch output folder (or given case JSONs) and the images each one refers to.

A case JSON is one written by ``infarctsam segment``: it has ``case``, ``volume_ml`` and ``outputs.mask``. The DWI,
ADC and reference paths are the ones recorded in it (absolute, or relative to the folder the command ran in or to
the JSON's folder). Cases the batch summary CSV marks ``failed`` have no JSON; they are listed too, with their error
as a warning, so the reader sees them first.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infarctsam.errors import InputError

SUMMARY_GLOB = "infarctsam_summary*.csv"


@dataclass
class ReviewCase:
    """One row of the review.

    Attributes
    ----------
    case : str
        Case identifier.
    summary : dict
        The case JSON (empty for a failed case).
    json_path : Path or None
        Where the JSON is.
    images : dict
        ``dwi``, ``adc``, ``mask``, ``reference``: resolved paths (None when absent or not found).
    warnings : list of str
        Plausibility warnings from the JSON, the batch error of a failed case, and missing files.
    status : str
        ``ok`` or ``failed``.
    """

    case: str
    summary: dict[str, Any] = field(default_factory=dict)
    json_path: Path | None = None
    images: dict[str, Path | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    status: str = "ok"


def is_case_json(obj: Any) -> bool:
    """True for the JSON summary of a segmented case."""
    return isinstance(obj, dict) and "case" in obj and "volume_ml" in obj and isinstance(obj.get("outputs"), dict)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _resolve(recorded: str | None, base: Path) -> Path | None:
    if not recorded:
        return None
    p = Path(recorded)
    for cand in ((p,) if p.is_absolute() else (Path.cwd() / p, base / p)):
        if cand.exists():
            return cand
    return None


def case_from_json(path: Path, obj: dict[str, Any]) -> ReviewCase:
    """A review case from a case JSON: its images resolved, its warnings gathered."""
    base = path.parent
    inputs = obj.get("inputs") or {}
    recorded = {
        "dwi": (inputs.get("dwi") or {}).get("path"),
        "adc": (inputs.get("adc") or {}).get("path"),
        "reference": (obj.get("reference") or {}).get("path"),
    }
    images: dict[str, Path | None] = {"mask": base / obj["outputs"]["mask"] if obj["outputs"].get("mask") else None}
    warnings = [str(w) for w in obj.get("warnings") or []]
    for key, value in recorded.items():
        images[key] = _resolve(value, base)
        if value and images[key] is None:
            warnings.append(f"{key.upper()} not found: {value}")
    if images["mask"] is not None and not images["mask"].is_file():
        warnings.append(f"mask not found: {images['mask'].name}")
        images["mask"] = None
    return ReviewCase(case=str(obj["case"]), summary=obj, json_path=path, images=images, warnings=warnings)


def _failed_rows(folder: Path) -> list[ReviewCase]:
    out = []
    for csv_path in sorted(folder.glob(SUMMARY_GLOB)):
        try:
            with csv_path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            if row.get("status") == "failed" and row.get("case"):
                out.append(ReviewCase(case=row["case"], status="failed",
                                      warnings=[f"segmentation failed: {row.get('error') or 'no reason recorded'}"],
                                      summary={"engine": row.get("engine") or None,
                                               "weights": row.get("weights") or None}))
    return out


def collect_cases(inputs: list[Path]) -> list[ReviewCase]:
    """Every case found in the given output folders and case JSON files.

    Parameters
    ----------
    inputs : list of Path
        Batch or single-case output folders (searched recursively, so BIDS-derivatives layouts work) and case JSON
        files.

    Returns
    -------
    list of ReviewCase
        Sorted by case identifier; a case found twice is kept once (the first JSON).

    Raises
    ------
    InputError
        An input does not exist, a given file is not a case JSON, or no case is found at all.
    """
    found: dict[str, ReviewCase] = {}
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(item.rglob("*.json")):
                obj = _load_json(path)
                if is_case_json(obj):
                    found.setdefault(str(obj["case"]), case_from_json(path, obj))
            for failed in _failed_rows(item):
                found.setdefault(failed.case, failed)
        elif item.is_file():
            obj = _load_json(item)
            if not is_case_json(obj):
                raise InputError(f"{item.name}: not a case JSON written by infarctsam segment")
            found.setdefault(str(obj["case"]), case_from_json(item, obj))
        else:
            raise InputError(f"not found: {item}")
    if not found:
        raise InputError(f"no segmented case found in {', '.join(str(p) for p in inputs)} (expected the case JSONs "
                         "written by infarctsam segment)")
    return [found[k] for k in sorted(found)]
