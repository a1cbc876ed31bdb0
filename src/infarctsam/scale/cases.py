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

from infarctsam.errors import ConfigError, InfarctsamError
from infarctsam.io.dataset import LIST_SUFFIXES, Case, find_cases
from infarctsam.io.safety import InputGuard

if TYPE_CHECKING:
    from infarctsam.outputs.case import CasePaths

T = TypeVar("T")
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


def discover(root: str | Path) -> list[Case]:
    """The cases of a batch input (see :func:`is_batch_input`), sorted by case id.

    Raises
    ------
    InputError
        The input does not exist or holds no case.
    """
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


def input_guard(cases: Sequence[Case], *extra: Path) -> InputGuard:
    """Every input of a batch (each case's DWI, ADC and reference mask, with their sidecars) and ``extra`` files (the
    case list), protected from being overwritten by any output of the run."""
    return InputGuard([*(p for c in cases for p in (c.dwi, c.adc, c.mask)), *extra])


def plan(cases: Sequence[Case], outdir: str | Path, bids: bool = False,
         guard: InputGuard | None = None) -> list[PlannedCase]:
    """Decide every case's output paths; hostile names, output collisions and outputs that would overwrite an input
    (of any case) become per-case errors.

    Planning is done on the whole sorted list (before sharding), so every shard agrees on which case of a colliding
    pair runs.
    """
    from infarctsam.api import output_plan

    guard = guard if guard is not None else input_guard(cases)
    planned: list[PlannedCase] = []
    owner: dict[Path, str] = {}
    for case in cases:
        try:
            case_id, paths = output_plan(case.dwi, outdir, case_id=case.case_id, bids=bids)
            guard.check(paths.all())
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
