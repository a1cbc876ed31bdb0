"""Report tables as plain rows of strings (rendered to HTML and Markdown elsewhere) and the methods text."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult

BA_UNITS = {"none": "mL", "log": "ln(mL)", "cbrt": "mL^(1/3)"}


def fmt(value: Any, digits: int = 2) -> str:
    """Fixed-point number, ``NA`` for missing / non-finite values."""
    if value is None:
        return "NA"
    v = float(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else "NA"


def fmt_vol(value: Any) -> str:
    """Volume-like number: two decimals, or three significant digits below 1 (small infarcts)."""
    if value is None or not math.isfinite(float(value)):
        return "NA"
    v = float(value)
    return f"{v:.3g}" if 1e-9 < abs(v) < 1 else f"{v:.2f}"


def fmt_p(p: Any) -> str:
    """p-value: ``<0.001`` or three decimals."""
    if p is None or not math.isfinite(float(p)):
        return "NA"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(value: Any, ci: Any, digits: int | None = None) -> str:
    """``value [lo, hi]`` with fixed ``digits``; when None, two decimals, or three significant digits when all three
    numbers are below 1 in magnitude."""
    if digits is None:
        finite = [abs(float(v)) for v in (value, *ci) if v is not None and math.isfinite(float(v))]
        if finite and max(finite) < 1:
            return f"{fmt_vol(value)} [{fmt_vol(ci[0])}, {fmt_vol(ci[1])}]"
        digits = 2
    return f"{fmt(value, digits)} [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def table2(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Table 2: one row per method with Dice, volume agreement and lesion detection."""
    unit = BA_UNITS[result.ba_transform]
    header = ["Method", "n", "Dice mean (SD)", "Dice median [IQR]", "ICC(A,1) [95% CI]", "ICC(C,1) [95% CI]",
              f"Bland-Altman bias [95% LoA] ({unit})", "Lesion F1 mean", "AVD mean (mL)", "HD95 median (mm)"]
    rows = []
    for s in result.stats:
        ba = s.bland_altman
        rows.append([
            s.name,
            str(s.n),
            f"{fmt(s.dice.mean, 3)} ({fmt(s.dice.sd, 3)})",
            f"{fmt(s.dice.median, 3)} [{fmt(s.dice.q1, 3)}, {fmt(s.dice.q3, 3)}]",
            fmt_ci(s.icc_a1.value, s.icc_a1.ci95, 3),
            fmt_ci(s.icc_c1.value, s.icc_c1.ci95, 3),
            fmt_ci(ba.bias, ba.loa),
            fmt(s.means["lesion_f1"], 3),
            fmt_vol(s.means["avd_ml"]),
            fmt(s.medians["hd95_mm"], 1),
        ])
    return header, rows


def comparison_table(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Paired Wilcoxon signed-rank tests of per-case Dice, one row per pair of methods."""
    header = ["Method A", "Method B", "n pairs", "n non-zero", "Median Dice difference (A - B)", "W", "p"]
    rows = [[c.a, c.b, str(c.test.n), str(c.test.n_nonzero), fmt(c.test.median_difference, 3),
             fmt(c.test.statistic, 1), fmt_p(c.test.p)] for c in result.comparisons]
    return header, rows


def bland_altman_table(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Bland-Altman details: bias and both limits with their 95 % confidence intervals."""
    unit = BA_UNITS[result.ba_transform]
    header = ["Method", "n", f"Bias ({unit}) [95% CI]", "SD of differences", "Lower LoA [95% CI]",
              "Upper LoA [95% CI]"]
    rows = []
    for s in result.stats:
        ba = s.bland_altman
        n = str(ba.n) + (f" ({ba.n_excluded} excluded)" if ba.n_excluded else "")
        rows.append([s.name, n, fmt_ci(ba.bias, ba.bias_ci95), fmt_vol(ba.sd), fmt_ci(ba.loa[0], ba.loa_lower_ci95),
                     fmt_ci(ba.loa[1], ba.loa_upper_ci95)])
    return header, rows


def case_table(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Per-case results (one row per case and method)."""
    header = ["Case", "Method", "Dice", "GT volume (mL)", "Predicted volume (mL)", "Lesion F1", "HD95 (mm)",
              "GT lesions", "Predicted lesions"]
    rows = [[str(r.case), str(r.method), fmt(r.dice, 3), fmt_vol(r.volume_gt_ml), fmt_vol(r.volume_pred_ml),
             fmt(r.lesion_f1, 3), fmt(r.hd95_mm, 1), str(r.n_lesions_gt), str(r.n_lesions_pred)]
            for r in result.cases.itertuples(index=False)]
    return header, rows


def cases_text(n: int) -> str:
    """``1 case``, ``2 cases``."""
    return f"{n} case{'' if n == 1 else 's'}"


def methods_text(result: EvaluationResult) -> list[str]:
    """Paragraphs of the methods section (definitions and software), plain text."""
    from infarctsam._version import __version__

    methods = f"{len(result.methods)} method{'' if len(result.methods) == 1 else 's'}"

    ba_scale = {"none": "on volumes in mL",
                "log": "on natural-log volumes (bias = log ratio; pairs with a zero volume excluded)",
                "cbrt": "on cube-root volumes"}[result.ba_transform]
    label = "every voxel value > 0 was lesion" if result.summary.get("label_any") else \
        "masks had to hold only the labels 0 and 1"
    return [
        f"Predicted infarct masks of {methods} ({', '.join(result.methods)}) were compared "
        f"with reference masks in {cases_text(result.summary['n_cases'])} matched by case identifier; {label}, and "
        "predictions had to share the reference voxel grid (shape and affine).",
        "Dice = 2|A∩B|/(|A|+|B|), 1 when both masks are empty. Volumes are voxel counts times the voxel volume "
        "|det(affine)|; AVD is the absolute volume difference in mL. Lesions are 26-connected components: a reference "
        "lesion overlapping the prediction by at least one voxel is detected (TP), otherwise missed (FN); predicted "
        "lesions touching no reference voxel are false positives (FP); lesion-wise F1 = TP/(TP+(FP+FN)/2), 1 when "
        "both masks are empty (ISLES'22 definitions). Surfaces are mask voxels with a face-neighbour outside the mask; "
        "surface distances are Euclidean in mm honouring anisotropic voxels. HD95 is the larger of the two directed "
        "95th percentiles, ASSD the mean of both directions pooled; both are 0 when both masks are empty and "
        "undefined (NA, excluded from summaries) when exactly one is. Sensitivity = |A∩B|/|A| and precision = "
        "|A∩B|/|B| (A reference, B prediction).",
        "Volume agreement: ICC(A,1) (two-way random effects, absolute agreement, single measure; Shrout-Fleiss "
        "ICC(2,1)) and ICC(C,1) (consistency, ICC(3,1)) with 95% confidence intervals after McGraw & Wong (1996); "
        f"Bland-Altman analysis {ba_scale}: bias = mean of (method - reference), limits of agreement = bias ± 1.96 SD, "
        "95% confidence intervals from the approximate standard errors of Bland & Altman (1999) with the t "
        "distribution. Per-case Dice of two methods was compared with the two-sided Wilcoxon signed-rank test "
        "(zero differences dropped). Table 1 gives median [IQR] for numeric and n (%) of non-missing values for "
        "categorical variables.",
        f"Software: infarctsam {__version__} (numpy, scipy, pandas, matplotlib).",
    ]


def territory_tables(result: EvaluationResult) -> tuple[tuple[list[str], list[list[str]]],
                                                        tuple[list[str], list[list[str]]]] | None:
    """Cases by dominant arterial territory of the reference mask, and per-territory volume agreement (ICC(A,1),
    Bland-Altman in mL) of each method; None when no case has a recorded mapping to MNI."""
    terr = result.summary.get("territories") or {}
    if not terr.get("n_located"):
        return None
    n = terr["n_located"]
    counts = [[name, f"{k} ({100 * k / n:.0f}%)"] for name, k in terr["dominant_counts"].items()]
    agree = []
    for method, per in terr["agreement"].items():
        for code, e in per.items():
            if "icc_a1" not in e:
                continue
            agree.append([method, code, str(e["n"]), fmt_vol(e["reference_ml_mean"]),
                          fmt_ci(e["icc_a1"], e["icc_a1_ci95"], 3),
                          f"{fmt_vol(e['ba_bias_ml'])} [{fmt_vol(e['ba_loa_ml'][0])}, {fmt_vol(e['ba_loa_ml'][1])}]"])
    return ((["Dominant territory (reference mask)", f"Cases (n={n})"], counts),
            (["Method", "Territory", "n", "Reference mean (mL)", "ICC(A,1) [95% CI]",
              "Bland-Altman bias [95% LoA] (mL)"], agree))
