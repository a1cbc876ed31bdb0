"""Reading a clinical CSV/TSV and matching its rows to the evaluated cases for Table 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infarctsam.errors import InputError
from infarctsam.stats import Table1, table1

ID_COLUMNS = ("participant_id", "case", "case_id", "subject", "subject_id", "id")
NA_VALUES = ["n/a", "N/A", "NA", "na", "", "NaN", "nan", "missing", "."]
# Free-text columns of the review page's decisions CSV (infarctsam_review.csv), which also serves as a clinical table:
# not described in Table 1 (review_decision, volume_ml, lesion_count, engine and weights are).
FREE_TEXT_COLUMNS = ("review_note", "reviewed_at", "warnings")


def read_clinical(path: str | Path) -> Any:
    """Read a clinical table (``.csv``, ``.tsv``/``.tab``, or sniffed) as a pandas DataFrame of strings/numbers.

    BIDS ``n/a`` and the usual spellings of missing values become NaN.

    Raises
    ------
    InputError
        Missing, unreadable or empty table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"clinical table not found: {path}")
    suffix = path.suffix.lower()
    sep: str | None = "\t" if suffix in (".tsv", ".tab") else "," if suffix == ".csv" else None
    try:
        df = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c", na_values=NA_VALUES,
                         keep_default_na=True, dtype=str)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path.name}: cannot read the clinical table ({' '.join(str(exc).split())[:160]})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty or len(df.columns) < 1:
        raise InputError(f"{path.name}: the clinical table has no rows")
    return df


def _id_column(df: Any, id_column: str | None) -> str:
    if id_column is not None:
        if id_column not in df.columns:
            raise InputError(f"clinical table has no column {id_column!r} (columns: {', '.join(df.columns[:12])})")
        return id_column
    lower = {c.lower(): c for c in df.columns}
    return next((lower[c] for c in ID_COLUMNS if c in lower), df.columns[0])


def _case_subject(case: str) -> str:
    return case.split("_ses-")[0] if case.startswith("sub-") else case


def clinical_table1(
    df: Any, cases: list[str], id_column: str | None = None, cohort_column: str | None = None
) -> Table1:
    """Table 1 of the clinical rows that belong to the evaluated cases.

    A row matches a case when its identifier equals the case id, or the case's subject (``sub-X`` of
    ``sub-X_ses-Y``), with or without the ``sub-`` prefix. When no row matches, every row is described and a note
    says so.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`read_clinical`.
    cases : list of str
        Evaluated case ids.
    id_column : str, optional
        Identifier column (default: ``participant_id``, ``case``, ``case_id``, ``subject``, ``subject_id``, ``id``,
        else the first column).
    cohort_column : str, optional
        Column defining cohorts (one column group each).
    """
    if cohort_column is not None and cohort_column not in df.columns:
        raise InputError(
            f"clinical table has no cohort column {cohort_column!r} (columns: {', '.join(df.columns[:12])})"
        )
    idc = _id_column(df, id_column)
    ids = df[idc].astype(str).str.strip()
    wanted = set(cases) | {_case_subject(c) for c in cases}
    wanted |= {w[len("sub-"):] for w in wanted if w.startswith("sub-")}
    matched = ids.isin(wanted)
    notes: list[str] = []
    if matched.any():
        rows = df[matched]
        seen = set(ids[matched])
        without = [c for c in cases if not ({c, _case_subject(c), _case_subject(c).removeprefix("sub-")} & seen)]
        notes.append(f"{int(matched.sum())} of {len(df)} rows of the clinical table match evaluated cases "
                     f"(identifier column '{idc}').")
        if without:
            notes.append(f"{len(without)} evaluated case(s) have no clinical row: {', '.join(without[:10])}"
                         + (" ..." if len(without) > 10 else "") + ".")
    else:
        rows = df
        notes.append(f"No row of the clinical table matches an evaluated case id (identifier column '{idc}'); "
                     f"Table 1 describes all {len(df)} rows.")
    free_text = [c for c in FREE_TEXT_COLUMNS if c in df.columns and c != cohort_column]
    table = table1(rows.reset_index(drop=True), cohort_column=cohort_column, exclude=[idc, *free_text])
    table.notes.extend(notes)
    return table
