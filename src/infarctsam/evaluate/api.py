"""``evaluate(...)``: compare predicted infarct masks with reference masks.

The result is data only; :func:`infarctsam.report.write_report` renders it (files, figures, HTML). Data flows one
way: ``evaluate`` -> ``report``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam._version import __version__
from infarctsam.errors import InputError
from infarctsam.evaluate.pairing import MaskSet, Pairing, find_masks, one_case, pair_masks
from infarctsam.evaluate.summary import Comparison, MethodStats, compare_methods, method_stats, summary_dict
from infarctsam.io.volume import Volume, read_volume, strip_image_suffix
from infarctsam.metrics import METRIC_COLUMNS, case_metrics
from infarctsam.stats import BA_TRANSFORMS, Table1

CSV_COLUMNS = ("case", "method", *METRIC_COLUMNS, "gt_file", "pred_file")


@dataclass
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes
    ----------
    cases : pandas.DataFrame
        One row per case and method (the ``cases.csv`` columns).
    summary : dict
        The ``summary.json`` content.
    methods : list of str
        Method names, in the order given.
    stats : list of MethodStats
        Per-method statistics (Dice summary, ICCs, Bland-Altman with per-case arrays).
    comparisons : list of Comparison
        Paired Wilcoxon tests of Dice, every pair of methods.
    pairing : Pairing
        Matched files and the cases missing on some side.
    table1 : Table1 or None
        Demographics, when a clinical table was given.
    gt_root : Path
        The reference folder.
    pred_roots : dict
        Method name -> prediction folder.
    """

    cases: Any
    summary: dict[str, Any]
    methods: list[str]
    stats: list[MethodStats]
    comparisons: list[Comparison]
    pairing: Pairing
    table1: Table1 | None
    gt_root: Path
    pred_roots: dict[str, Path]
    ba_transform: str = "none"


def load_mask(path: Path, label_any: bool = False) -> Volume:
    """Read a lesion mask as a boolean volume.

    Raises
    ------
    InputError
        Not 3D (a 4D image with one volume is accepted), or labels other than 0/1 without ``label_any``.
    """
    vol = read_volume(path)
    data = np.asarray(vol.data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path.name}: a lesion mask must be 3D, got shape {data.shape}")
    if label_any:
        mask = np.nan_to_num(data.astype(np.float64, copy=False), nan=0.0) > 0
    else:
        binary = (data == 0) | (data == 1)
        if not binary.all():
            found = np.unique(data[~binary])
            shown = ", ".join(f"{v:g}" for v in found[:5]) + (" ..." if found.size > 5 else "")
            raise InputError(
                f"{path}: mask holds labels other than 0/1 ({shown}); "
                "use --label-any to treat every value > 0 as lesion"
            )
        mask = data == 1
    return Volume(data=mask, affine=vol.affine, header=vol.header, source=path, meta=vol.meta)


def _grid_detail(ref: Volume, other: Volume) -> str:
    if ref.spatial_shape != other.spatial_shape:
        return f"shape {ref.spatial_shape} vs {other.spatial_shape}"
    diff = float(np.abs(ref.affine - other.affine).max())
    return f"affine differs by up to {diff:.3g} mm"


def _method_names(preds: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names:
        if len(names) != len(preds):
            raise InputError(
                f"{len(names)} --name value(s) for {len(preds)} --pred folder(s); give one name per folder"
            )
        out = [str(n).strip() for n in names]
    else:
        out = [(strip_image_suffix(p.name) if p.is_file() else p.resolve().name) or str(p) for p in preds]
        counts = collections.Counter(out)
        if any(c > 1 for c in counts.values()):
            out = [f"{p.resolve().parent.name}/{p.resolve().name}" if counts[n] > 1 else n for p, n in zip(preds, out,
                                                                                                             strict=True)]
    if any(not n for n in out):
        raise InputError("method names must not be empty")
    dup = [n for n, c in collections.Counter(out).items() if c > 1]
    if dup:
        raise InputError(f"duplicate method name(s) {', '.join(dup)}; use --name to give each prediction a name")
    return out


def compute_cases(pairing: Pairing, methods: list[str], label_any: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Load every matched mask, check labels and grids, and compute the per-case metrics.

    Parameters
    ----------
    pairing : Pairing
        Matched files.
    methods : list of str
        Method names (keys of ``pairing.preds``), in report order.
    label_any : bool
        Treat every value > 0 as lesion.
    progress : callable, optional
        Called as ``progress("reading masks", i, n)`` after each case.

    Returns
    -------
    pandas.DataFrame
        One row per case and method with the :data:`CSV_COLUMNS`.

    Raises
    ------
    InputError
        A mask with labels other than 0/1, or predictions on another grid than their reference (all such cases are
        named in one message).
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    mismatched: list[str] = []
    for i, case in enumerate(pairing.cases, 1):
        gt = load_mask(pairing.gt[case], label_any)
        for name in methods:
            pred = load_mask(pairing.preds[name][case], label_any)
            if not gt.same_grid(pred):
                mismatched.append(f"{case} ({name}: {_grid_detail(gt, pred)})")
                continue
            if mismatched:
                continue
            metrics = case_metrics(gt.data, pred.data, gt.affine).as_dict()
            rows.append({"case": case, "method": name, **metrics, "gt_file": str(pairing.gt[case]),
                         "pred_file": str(pairing.preds[name][case])})
        if progress is not None:
            progress("reading masks", i, len(pairing.cases))
    if mismatched:
        shown = "; ".join(mismatched[:8]) + (f"; and {len(mismatched) - 8} more" if len(mismatched) > 8 else "")
        raise InputError(f"prediction grid differs from the reference (shape or affine) for {len(mismatched)} "
                         f"case(s): {shown}; resample the predictions onto the reference grid")
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def evaluate(
    gt: str | Path,
    preds: Sequence[str | Path],
    names: Sequence[str] | None = None,
    clinical: str | Path | None = None,
    strict: bool = False,
    label_any: bool = False,
    ba_transform: str = "none",
    cohort_column: str | None = None,
    clinical_id: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Evaluate one or more sets of predicted infarct masks against reference masks.

    Parameters
    ----------
    gt : str or Path
        Reference masks: a flat folder (matched by file stem) or a BIDS / ISLES'22 root.
    preds : sequence of str or Path
        One folder of predicted masks per method.
    names : sequence of str, optional
        Method names (default: the folder names).
    clinical : str or Path, optional
        Clinical CSV/TSV for Table 1.
    strict : bool
        Error when a case is missing on one side (default: list it and leave it out).
    label_any : bool
        Treat every value > 0 as lesion (default: labels other than 0/1 are an error).
    ba_transform : {"none", "log", "cbrt"}
        Scale of the Bland-Altman volume analysis.
    cohort_column, clinical_id : str, optional
        Cohort and identifier columns of the clinical table.
    log : callable, optional
        Receives one-line messages (cases missing on one side).
    progress : callable, optional
        Called as ``progress("reading masks", i, n)`` after each case is read and scored.

    Returns
    -------
    EvaluationResult
        Nothing is written: pass the result to :func:`infarctsam.report.write_report` for the files.

    Raises
    ------
    InputError
        Missing folders, no common case, differing grids, non-binary masks, bad options.
    """
    if not preds:
        raise InputError("give at least one --pred folder")
    if ba_transform not in BA_TRANSFORMS:
        raise InputError(f"--ba-transform must be one of {', '.join(BA_TRANSFORMS)}, not {ba_transform!r}")
    gt_root = Path(gt)
    pred_roots = [Path(p) for p in preds]
    methods = _method_names(pred_roots, names)
    gt_set = find_masks(gt_root)
    pred_sets: dict[str, MaskSet] = {n: find_masks(p) for n, p in zip(methods, pred_roots, strict=True)}
    if gt_root.is_file() and all(p.is_file() for p in pred_roots):
        pred_sets = one_case(gt_set, pred_sets)
    pairing = pair_masks(gt_set, pred_sets, strict=strict)
    for line in pairing.missing_lines():
        if log is not None:
            log(line)
    clinical_df = None
    if clinical is not None:
        from infarctsam.evaluate.clinical import read_clinical

        clinical_df = read_clinical(clinical)
    frame = compute_cases(pairing, methods, label_any=label_any, progress=progress)
    stats = [method_stats(frame[frame["method"] == m], m, ba_transform) for m in methods]
    comparisons = compare_methods(frame, methods)
    table = None
    if clinical_df is not None:
        from infarctsam.evaluate.clinical import clinical_table1

        table = clinical_table1(clinical_df, pairing.cases, id_column=clinical_id, cohort_column=cohort_column)
    from infarctsam.evaluate.territory import territory_summary

    extra = {
        "territories": territory_summary(pairing, methods, lambda p: load_mask(p, label_any)),
        "reference": str(gt_root),
        "predictions": {m: str(p) for m, p in zip(methods, pred_roots, strict=True)},
        "missing": pairing.missing,
        "ba_transform": ba_transform,
        "label_any": label_any,
        "software": {"infarctsam": __version__},
    }
    return EvaluationResult(
        cases=frame, summary=summary_dict(len(pairing.cases), stats, comparisons, extra), methods=methods,
        stats=stats, comparisons=comparisons, pairing=pairing, table1=table, gt_root=gt_root,
        pred_roots=dict(zip(methods, pred_roots, strict=True)), ba_transform=ba_transform,
    )
