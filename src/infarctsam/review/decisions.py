"""The reader's decisions exported by the review page, read back by the page builder and the batch summary.

The page exports ``infarctsam_review.csv`` with one row per decided case::

    case,review_decision,review_note,reviewed_at,volume_ml,lesion_count,engine,weights,warnings

``review_decision`` is ``accept``, ``reject`` or ``needs-edit``. The ``case`` column is also the identifier column
``infarctsam evaluate --clinical`` looks for, so the file serves as a clinical table (decision counts in Table 1,
``--cohort-column review_decision`` for one column per decision).
"""

from __future__ import annotations

import csv
from pathlib import Path

from infarctsam.errors import InputError

REVIEW_CSV = "infarctsam_review.csv"
DECISIONS = ("accept", "reject", "needs-edit")
EXPORT_COLUMNS = ("case", "review_decision", "review_note", "reviewed_at", "volume_ml", "lesion_count", "engine",
                  "weights", "warnings")
SUMMARY_COLUMNS = ("review_decision", "review_note")


def read_decisions(path: str | Path) -> dict[str, dict[str, str]]:
    """Read a decisions CSV.

    Parameters
    ----------
    path : str or Path
        CSV exported by the review page (UTF-8, header row with at least ``case`` and ``review_decision``).

    Returns
    -------
    dict
        ``{case: {"review_decision": ..., "review_note": ..., "reviewed_at": ...}}``; rows without a decision are
        left out.

    Raises
    ------
    InputError
        Unreadable file, missing columns, or a decision other than accept / reject / needs-edit.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path.name}: cannot read the review decisions ({exc})") from exc
    if rows and not {"case", "review_decision"} <= set(header):
        raise InputError(f"{path.name}: a review decisions file needs the columns case and review_decision")
    out: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, start=2):
        case, decision = (row.get("case") or "").strip(), (row.get("review_decision") or "").strip().lower()
        if not case or not decision:
            continue
        if decision not in DECISIONS:
            raise InputError(f"{path.name}, line {n}: unknown decision {decision!r} (expected "
                             f"{', '.join(DECISIONS)})")
        out[case] = {"review_decision": decision, "review_note": (row.get("review_note") or "").strip(),
                     "reviewed_at": (row.get("reviewed_at") or "").strip()}
    return out


def decisions_beside(folder: str | Path) -> dict[str, dict[str, str]]:
    """The decisions in ``folder/infarctsam_review.csv``, or an empty dict when there is no such file."""
    path = Path(folder) / REVIEW_CSV
    return read_decisions(path) if path.is_file() else {}
