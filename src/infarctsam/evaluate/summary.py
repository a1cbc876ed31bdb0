"""Cohort summary of per-case metrics: the content of ``summary.json`` and Table 2."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infarctsam.stats import BlandAltman, ICCResult, WilcoxonResult, bland_altman, describe, icc, wilcoxon_paired


@dataclass
class MethodStats:
    """Statistics of one method against the reference."""

    name: str
    n: int
    dice: Any
    icc_a1: ICCResult
    icc_c1: ICCResult
    bland_altman: BlandAltman
    means: dict[str, float] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)


@dataclass
class Comparison:
    """Paired Wilcoxon test of per-case Dice between methods ``a`` and ``b``."""

    a: str
    b: str
    test: WilcoxonResult


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def method_stats(frame: Any, name: str, ba_transform: str = "none") -> MethodStats:
    """Dice summary, volume ICCs and Bland-Altman agreement of one method.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``cases.csv`` rows of this method.
    name : str
        Method name.
    ba_transform : {"none", "log", "cbrt"}
        Scale of the Bland-Altman analysis.
    """
    v_gt = frame["volume_gt_ml"].to_numpy(dtype=np.float64)
    v_pred = frame["volume_pred_ml"].to_numpy(dtype=np.float64)
    iccs = icc(np.column_stack([v_gt, v_pred])) if len(frame) else None
    nan_icc = ICCResult("", math.nan, (math.nan, math.nan), math.nan, math.nan, math.nan, math.nan)
    means = {c: float(np.nanmean(frame[c])) if frame[c].notna().any() else math.nan
             for c in ("lesion_f1", "avd_ml", "hd95_mm", "assd_mm", "sensitivity", "precision", "lesion_count_diff")}
    medians = {c: float(np.nanmedian(frame[c])) if frame[c].notna().any() else math.nan
               for c in ("hd95_mm", "assd_mm", "volume_gt_ml", "volume_pred_ml", "avd_ml")}
    return MethodStats(
        name=name,
        n=len(frame),
        dice=describe(frame["dice"].to_numpy(dtype=np.float64)),
        icc_a1=iccs["ICC(A,1)"] if iccs else nan_icc,
        icc_c1=iccs["ICC(C,1)"] if iccs else nan_icc,
        bland_altman=bland_altman(v_gt, v_pred, transform=ba_transform),
        means=means,
        medians=medians,
    )


def compare_methods(frame: Any, methods: list[str]) -> list[Comparison]:
    """Wilcoxon signed-rank test of per-case Dice for every pair of methods (cases paired by id)."""
    wide = frame.pivot(index="case", columns="method", values="dice")
    out = []
    for a, b in itertools.combinations(methods, 2):
        out.append(Comparison(a, b, wilcoxon_paired(wide[a].to_numpy(), wide[b].to_numpy())))
    return out


def summary_dict(
    n_cases: int, stats: list[MethodStats], comparisons: list[Comparison], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``summary.json`` structure (NaN written as null)."""
    methods = {}
    for s in stats:
        methods[s.name] = {
            "n": s.n,
            "dice_mean": s.dice.mean,
            "dice_sd": s.dice.sd,
            "dice_median": s.dice.median,
            "dice_iqr": [s.dice.q1, s.dice.q3],
            "icc_a1": s.icc_a1.as_dict(),
            "icc_c1": s.icc_c1.as_dict(),
            "bland_altman": s.bland_altman.as_dict(),
            "lesion_f1_mean": s.means["lesion_f1"],
            "avd_ml_mean": s.means["avd_ml"],
            "hd95_mm_mean": s.means["hd95_mm"],
            "hd95_mm_median": s.medians["hd95_mm"],
            "assd_mm_mean": s.means["assd_mm"],
            "sensitivity_mean": s.means["sensitivity"],
            "precision_mean": s.means["precision"],
            "lesion_count_diff_mean": s.means["lesion_count_diff"],
            "volume_gt_ml_median": s.medians["volume_gt_ml"],
            "volume_pred_ml_median": s.medians["volume_pred_ml"],
        }
    comps = [
        {"a": c.a, "b": c.b, "metric": "dice", "wilcoxon_p": c.test.p, "n": c.test.n, "n_nonzero": c.test.n_nonzero,
         "statistic": c.test.statistic, "median_difference": c.test.median_difference}
        for c in comparisons
    ]
    out = {"n_cases": n_cases, "methods": methods, "comparisons": comps}
    out.update(extra or {})
    return _finite_or_none(out)
