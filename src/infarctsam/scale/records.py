"""The records of a batch run: the JSON-lines run log, the summary CSV and the table printed at the end.

* ``infarctsam_run.jsonl``: one JSON object per line (``run_start``, one ``case`` event per case, ``run_end``),
  appended with one ``write`` per line so a crash never leaves a broken line in the middle of the file.
* ``infarctsam_summary.csv``: one row per case of the run, rewritten atomically as results arrive (at most every
  few seconds) and at the end, so a killed run still leaves a complete, valid file (unfinished cases ``pending``).

With ``--shard i/N`` the two files get a ``_shard-i-of-N`` suffix, so that shards sharing an output folder (job
arrays on a network file system) never write the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from infarctsam.io.atomic import write_text

CSV_COLUMNS = ("case", "status", "volume_ml", "voxel_count", "lesion_count", "largest_lesion_ml", "warnings", "seconds",
               "engine", "weights", "dwi", "adc", "dwi_sha256", "adc_sha256", "json", "error",
               # where the lesion is (infarctsam.location.report.location_columns); empty with --no-location
               "location", "location_reliable", "dominant_territory", "dominant_share", "ACAL_ml", "ACAR_ml",
               "MCAL_ml", "MCAR_ml", "PCAL_ml", "PCAR_ml", "VBL_ml", "VBR_ml")
TABLE_COLUMNS = ("case", "status", "volume_ml", "lesion_count", "seconds")
REVIEW_COLUMNS = ("review_decision", "review_note")  # present when the output folder has infarctsam_review.csv


def record_names(shard: tuple[int, int] | None) -> tuple[str, str]:
    """File names of the run log and summary CSV (with a shard suffix when sharded)."""
    suffix = "" if shard is None else f"_shard-{shard[0]}-of-{shard[1]}"
    return f"infarctsam_run{suffix}.jsonl", f"infarctsam_summary{suffix}.csv"


class RunLog:
    """Append-only JSON-lines log; each event is written with a single ``os.write`` on an ``O_APPEND`` file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def event(self, kind: str, **fields: Any) -> None:
        """Write one event line (``event`` = kind, then the fields)."""
        line = json.dumps({"event": kind, **fields}, default=str, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))

    def close(self) -> None:
        """Flush to disk and close."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def pending_row(case_id: str, dwi: str, adc: str | None) -> dict[str, Any]:
    """The summary row of a case not processed yet."""
    return {"case": case_id, "status": "pending", "dwi": dwi, "adc": adc}


class SummaryFile:
    """The summary CSV: one row per case, in case order, rewritten atomically.

    Parameters
    ----------
    path : Path
        CSV path.
    rows : sequence of dict
        The initial rows (every case of the run, ``pending``), in the order they are written.
    every_s : float
        Minimum interval between two incremental rewrites (the final write always happens).
    review : dict, optional
        The reader's decisions (``{case: {"review_decision": ..., "review_note": ...}}``, from the review page's
        ``infarctsam_review.csv`` in the output folder): added as two more columns.
    """

    def __init__(self, path: str | Path, rows: Sequence[dict[str, Any]], every_s: float = 2.0,
                 review: dict[str, dict[str, str]] | None = None) -> None:
        self.path = Path(path)
        self.rows = {r["case"]: dict(r) for r in rows}
        self.every_s = every_s
        self.review = review or {}
        self._last = float("-inf")

    def update(self, record: dict[str, Any]) -> None:
        """Replace a case's row and rewrite the file if the last write is old enough."""
        self.rows[record["case"]] = dict(record)
        if time.monotonic() - self._last >= self.every_s:
            self.write()

    def write(self) -> Path:
        """Rewrite the whole file atomically."""
        buf = io.StringIO()
        columns = CSV_COLUMNS + (REVIEW_COLUMNS if self.review else ())
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows.values():
            row = {**row, **self.review.get(row["case"], {})}
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        write_text(self.path, buf.getvalue())
        self._last = time.monotonic()
        return self.path


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or value == "":
        return "-"
    if key == "volume_ml":
        return f"{float(value):.2f}"
    if key == "seconds":
        return f"{float(value):.1f}"
    return str(value)


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """The end-of-run table: case, status, volume_ml, lesion_count, seconds (aligned columns)."""
    cells = [list(TABLE_COLUMNS)] + [[_cell(r, k) for k in TABLE_COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    right = {"volume_ml", "lesion_count", "seconds"}
    out = []
    for line in cells:
        out.append("  ".join(c.rjust(w) if k in right else c.ljust(w)
                             for c, w, k in zip(line, widths, TABLE_COLUMNS, strict=True)).rstrip())
    return "\n".join(out)


def counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Number of cases per status."""
    out: dict[str, int] = {"ok": 0, "warnings": 0, "skipped": 0, "failed": 0, "pending": 0}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out
