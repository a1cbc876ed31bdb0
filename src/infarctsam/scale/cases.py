"""Which cases a batch runs, in which shard, and where each one's outputs go.

A batch input is a dataset root that :func:`infarctsam.io.dataset.find_cases` understands (BIDS / ISLES'22 or a
flat folder; a folder holding one DICOM series stays a single case) or a text file listing cases. Case lists are
read here rather than by ``find_cases`` so that a listed file that is missing becomes one failed case instead of
stopping the whole cohort.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from infarctsam.errors import ConfigError, InfarctsamError, InputError
from infarctsam.io.dataset import Case, case_id_from_path, find_cases, parse_entities

if TYPE_CHECKING:
    from infarctsam.outputs.case import CasePaths

T = TypeVar("T")
LIST_SUFFIXES = (".txt", ".tsv", ".csv", ".lst")
_HEADER_WORDS = {"dwi", "dwi_path", "path", "image", "case", "file"}
_DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")


@dataclass(frozen=True)
class PlannedCase:
    """A case with its output paths decided, or the reason it cannot run.

    Attributes
    ----------
    case : Case
        The input files.
    case_id : str
        Identifier used in output names and in the run records.
    paths : CasePaths or None
        Output paths (None when ``error`` is set).
    error : str or None
        Why the case cannot run (unsafe name, output collision); it is then recorded as failed.
    """

    case: Case
    case_id: str
    paths: CasePaths | None
    error: str | None = None


def _looks_like_dicom_folder(folder: Path, probe: int = 16) -> bool:
    """True when the folder's first files are DICOM (``.dcm`` names or the ``DICM`` magic at byte 128)."""
    checked = 0
    for entry in sorted(folder.iterdir()):
        if not entry.is_file():
            continue
        if entry.suffix.lower() in _DICOM_SUFFIXES:
            return True
        try:
            with entry.open("rb") as fh:
                fh.seek(128)
                if fh.read(4) == b"DICM":
                    return True
        except OSError:
            pass
        checked += 1
        if checked >= probe:
            break
    return False


def is_batch_input(path: str | Path) -> bool:
    """Whether ``infarctsam segment PATH`` is a batch: a text file of cases or a folder that is not a DICOM series.

    Parameters
    ----------
    path : str or Path
        What the user gave as input.

    Returns
    -------
    bool
    """
    path = Path(path)
    try:
        if path.is_file():
            return path.suffix.lower() in LIST_SUFFIXES
        if path.is_dir():
            return not _looks_like_dicom_folder(path)
    except OSError:  # unreadable: the single-case path reports it in one line
        return False
    return False


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    out = []
    for case in sorted(cases, key=lambda c: (c.case_id, str(c.dwi))):
        n = seen.get(case.case_id, 0)
        seen[case.case_id] = n + 1
        if n:
            case = Case(f"{case.case_id}-{n + 1}", case.dwi, case.adc, case.mask, case.subject, case.session)
        out.append(case)
    return out


def read_case_list(listing: str | Path) -> list[Case]:
    """Read a text file of cases: one ``DWI [ADC]`` per line (tab, comma or space separated).

    Relative paths are relative to the list's folder; blank lines, ``#`` comments and a header line (``dwi,adc``)
    are skipped. A listed file that does not exist is kept (the batch records it as a failed case), but a list in
    which no listed DWI exists is refused.

    Parameters
    ----------
    listing : str or Path
        The ``.txt`` / ``.tsv`` / ``.csv`` / ``.lst`` file.

    Returns
    -------
    list of Case
        Sorted by case id, ids made unique.

    Raises
    ------
    InputError
        Unreadable file, no case, or none of the listed DWIs exists.
    """
    listing = Path(listing)
    try:
        lines = listing.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{listing.name}: cannot read the case list ({exc})") from exc
    cases: list[Case] = []
    missing: tuple[int, Path] | None = None
    first = True
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in re.split(r"[\t,]|\s+", line) if f]
        if first and fields[0].lower() in _HEADER_WORDS:
            first = False
            continue
        first = False
        paths = [Path(f) if Path(f).is_absolute() else listing.parent / f for f in fields[:2]]
        if not paths[0].exists() and missing is None:
            missing = (n, paths[0])
        ent = parse_entities(paths[0].name)
        cases.append(Case(case_id=case_id_from_path(paths[0]), dwi=paths[0], adc=paths[1] if len(paths) > 1 else None,
                          subject=ent.get("sub"), session=ent.get("ses")))
    if not cases:
        raise InputError(f"{listing.name}: the case list is empty")
    if missing is not None and not any(c.dwi.exists() for c in cases):
        raise InputError(f"{listing.name}: none of the listed DWIs exists (line {missing[0]}: {missing[1]} not found); "
                         "relative paths are read from the list's folder")
    return _unique(cases)


def discover(root: str | Path) -> list[Case]:
    """The cases of a batch input (see :func:`is_batch_input`), sorted by case id.

    Raises
    ------
    InputError
        The input does not exist or holds no case.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() in LIST_SUFFIXES:
        return read_case_list(root)
    return find_cases(root)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``i/N`` (0 <= i < N) for job arrays.

    Raises
    ------
    ConfigError
        Not of the form ``i/N`` with integers, N < 1 or i outside 0..N-1.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"--shard {index}/{count}: the shard count must be at least 1")
    if index >= count:
        raise ConfigError(f"--shard {index}/{count}: the index must be between 0 and {count - 1} (shards are "
                          "numbered from 0)")
    return index, count


def select_shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """Item k of the (sorted) sequence goes to shard ``k mod count``; return shard ``index``."""
    return [item for k, item in enumerate(items) if k % count == index]


def plan(cases: Sequence[Case], outdir: str | Path, bids: bool = False) -> list[PlannedCase]:
    """Decide every case's output paths; hostile names and output collisions become per-case errors.

    Planning is done on the whole sorted list (before sharding), so every shard agrees on which case of a colliding
    pair runs.
    """
    from infarctsam.api import output_plan

    planned: list[PlannedCase] = []
    owner: dict[Path, str] = {}
    for case in cases:
        try:
            case_id, paths = output_plan(case.dwi, outdir, case_id=case.case_id, bids=bids)
        except InfarctsamError as exc:
            planned.append(PlannedCase(case, case.case_id, None, str(exc)))
            continue
        key = paths.summary.resolve()
        if key in owner:
            hint = "; BIDS naming keeps only sub/ses, run without --bids" if bids else ""
            planned.append(PlannedCase(case, case_id, None, f"its outputs would overwrite those of case {owner[key]}"
                                                            f"{hint}"))
            continue
        owner[key] = case_id
        planned.append(PlannedCase(case, case_id, paths))
    return planned
