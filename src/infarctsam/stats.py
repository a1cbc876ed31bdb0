"""Cohort statistics for validation reports: ICC, descriptive summaries, Bland-Altman, Wilcoxon, Table 1.

References
----------
* Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater reliability. Psychol Bull 86:420-428.
* McGraw KO, Wong SP (1996). Forming inferences about some intraclass correlation coefficients. Psychol Methods
  1:30-46 (ICC(A,1) = Shrout-Fleiss ICC(2,1), ICC(C,1) = ICC(3,1); F-based confidence intervals).
* Bland JM, Altman DG (1999). Measuring agreement in method comparison studies. Stat Methods Med Res 8:135-160
  (approximate standard errors: bias ``sqrt(s^2/n)``, each limit of agreement ``sqrt(3 s^2/n)``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BA_TRANSFORMS = ("none", "log", "cbrt")
LOA_Z = 1.96


@dataclass(frozen=True)
class ICCResult:
    """An intraclass correlation with its confidence interval and F test."""

    kind: str
    value: float
    ci95: tuple[float, float]
    f: float
    df1: float
    df2: float
    p: float

    def as_dict(self) -> dict[str, object]:
        """``{"value", "ci95": [lo, hi], "f", "df1", "df2", "p"}``."""
        return {"value": self.value, "ci95": list(self.ci95), "f": self.f, "df1": self.df1, "df2": self.df2,
                "p": self.p}


_NAN_CI = (math.nan, math.nan)


def _nan_icc(kind: str) -> ICCResult:
    return ICCResult(kind, math.nan, _NAN_CI, math.nan, math.nan, math.nan, math.nan)


def _mean_squares(x: np.ndarray) -> dict[str, float]:
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_total = float(((x - grand) ** 2).sum())
    ss_err = max(ss_total - ss_rows - ss_cols, 0.0)
    return {
        "msr": ss_rows / (n - 1),
        "msc": ss_cols / (k - 1),
        "mse": ss_err / ((n - 1) * (k - 1)),
        "msw": (ss_cols + ss_err) / (n * (k - 1)),
    }


def _ci_from_f(fl: float, fu: float, k: int) -> tuple[float, float]:
    return float((fl - 1) / (fl + k - 1)), float((fu - 1) / (fu + k - 1))


def icc(ratings: np.ndarray | Sequence[Sequence[float]], alpha: float = 0.05) -> dict[str, ICCResult]:
    """Single-measure intraclass correlations of an ``n subjects x k raters`` table.

    Parameters
    ----------
    ratings : array-like, shape (n, k)
        One row per subject (case), one column per rater (method); rows with a NaN are dropped.
    alpha : float
        1 - confidence level (0.05 gives 95 % intervals).

    Returns
    -------
    dict
        ``"ICC(1,1)"`` (one-way random), ``"ICC(A,1)"`` (two-way random, absolute agreement = Shrout-Fleiss
        ICC(2,1)) and ``"ICC(C,1)"`` (consistency = ICC(3,1)), each an :class:`ICCResult`. With fewer than two
        complete subjects, or no variance at all, the values are NaN; with zero residual variance and some
        between-subject variance they are 1.0 with the interval [1, 1].
    """
    from scipy import stats as st

    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("ratings must be a 2D table with at least two raters (columns)")
    x = x[np.all(np.isfinite(x), axis=1)]
    n, k = x.shape
    kinds = ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)")
    if n < 2:
        return {kind: _nan_icc(kind) for kind in kinds}
    ms = _mean_squares(x)
    msr, msc, mse, msw = ms["msr"], ms["msc"], ms["mse"], ms["msw"]
    q = 1.0 - alpha / 2.0
    out: dict[str, ICCResult] = {}

    # One-way random, single rater: (MSR - MSW) / (MSR + (k-1) MSW); F = MSR / MSW.
    if msw <= 0:
        out["ICC(1,1)"] = ICCResult("ICC(1,1)", 1.0, (1.0, 1.0), math.inf, n - 1, n * (k - 1), 0.0) if msr > 0 \
            else _nan_icc("ICC(1,1)")
    else:
        f1 = msr / msw
        df1, df2 = n - 1, n * (k - 1)
        fl = f1 / st.f.ppf(q, df1, df2)
        fu = f1 * st.f.ppf(q, df2, df1)
        out["ICC(1,1)"] = ICCResult(
            "ICC(1,1)", (msr - msw) / (msr + (k - 1) * msw), _ci_from_f(fl, fu, k), f1, df1, df2,
            float(st.f.sf(f1, df1, df2)),
        )

    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse <= 0:
        for kind in kinds[1:]:
            out[kind] = ICCResult(kind, 1.0, (1.0, 1.0), math.inf, df1, df2, 0.0) if msr > 0 else _nan_icc(kind)
        return out
    f0 = msr / mse
    p0 = float(st.f.sf(f0, df1, df2))

    # Consistency, ICC(C,1) = ICC(3,1): exact F-based interval.
    fl = f0 / st.f.ppf(q, df1, df2)
    fu = f0 * st.f.ppf(q, df2, df1)
    value_c = (msr - mse) / (msr + (k - 1) * mse)
    out["ICC(C,1)"] = ICCResult("ICC(C,1)", value_c, _ci_from_f(fl, fu, k), f0, df1, df2, p0)

    # Absolute agreement, ICC(A,1) = ICC(2,1): McGraw & Wong (1996) approximate (Satterthwaite) interval.
    value = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    if value >= 1.0:
        ci_a: tuple[float, float] = (1.0, 1.0)
    else:
        a = k * value / (n * (1 - value))
        b = 1 + k * value * (n - 1) / (n * (1 - value))
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
        f_star = st.f.ppf(q, n - 1, v)
        f_inv = st.f.ppf(q, v, n - 1)
        common = k * msc + (k * n - k - n) * mse
        lo = n * (msr - f_star * mse) / (f_star * common + n * msr)
        hi = n * (f_inv * msr - mse) / (common + n * f_inv * msr)
        ci_a = (float(lo), float(hi))
    out["ICC(A,1)"] = ICCResult("ICC(A,1)", float(value), ci_a, f0, df1, df2, p0)
    return out


@dataclass(frozen=True)
class Summary:
    """Mean (SD), median [IQR] of a sample, NaNs ignored."""

    n: int
    mean: float
    sd: float
    median: float
    q1: float
    q3: float


def describe(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean, sample SD (ddof=1), median and quartiles (linear interpolation) of the finite values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
    q1, med, q3 = (float(v) for v in np.percentile(x, [25, 50, 75]))
    return Summary(int(x.size), float(x.mean()), sd, med, q1, q3)


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman agreement of a method against the reference (differences are method minus reference)."""

    n: int
    n_excluded: int
    transform: str
    bias: float
    sd: float
    loa: tuple[float, float]
    bias_ci95: tuple[float, float]
    loa_lower_ci95: tuple[float, float]
    loa_upper_ci95: tuple[float, float]
    means: np.ndarray = field(repr=False)
    diffs: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary: bias, loa, sd, the three intervals, n, n_excluded, transform (no per-case arrays)."""
        keys = ("bias", "loa", "sd", "bias_ci95", "loa_lower_ci95", "loa_upper_ci95", "n", "n_excluded", "transform")
        values = {k: getattr(self, k) for k in keys}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def transform_volumes(values: np.ndarray, transform: str) -> np.ndarray:
    """Apply a Bland-Altman scale: ``none``, ``log`` (natural log; non-positive -> NaN) or ``cbrt`` (cube root)."""
    x = np.asarray(values, dtype=np.float64)
    if transform == "none":
        return x
    if transform == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)
    if transform == "cbrt":
        return np.cbrt(x)
    raise ValueError(f"unknown Bland-Altman transform {transform!r} (expected one of {', '.join(BA_TRANSFORMS)})")


def bland_altman(
    reference: Sequence[float] | np.ndarray, method: Sequence[float] | np.ndarray, transform: str = "none"
) -> BlandAltman:
    """Bias and 95 % limits of agreement with their confidence intervals (Bland & Altman 1999).

    Parameters
    ----------
    reference, method : array-like
        Paired measurements (e.g. volumes in mL).
    transform : {"none", "log", "cbrt"}
        Scale on which differences are taken. With ``log``, pairs with a non-positive value are excluded (and
        counted in ``n_excluded``); the bias is then a log ratio.

    Returns
    -------
    BlandAltman
        ``bias`` = mean difference, ``loa`` = bias -/+ 1.96 SD; intervals use the t quantile with n-1 degrees of
        freedom and standard errors ``sqrt(s^2/n)`` (bias) and ``sqrt(3 s^2/n)`` (each limit).
    """
    from scipy import stats as st

    ref = transform_volumes(np.asarray(reference, dtype=np.float64), transform)
    met = transform_volumes(np.asarray(method, dtype=np.float64), transform)
    if ref.shape != met.shape:
        raise ValueError("reference and method must have the same length")
    ok = np.isfinite(ref) & np.isfinite(met)
    ref, met = ref[ok], met[ok]
    n = int(ref.size)
    diffs = met - ref
    means = (met + ref) / 2.0
    nan2 = (math.nan, math.nan)
    if n == 0:
        return BlandAltman(0, int((~ok).sum()), transform, math.nan, math.nan, nan2, nan2, nan2, nan2, means, diffs)
    bias = float(diffs.mean())
    if n < 2:
        return BlandAltman(n, int((~ok).sum()), transform, bias, math.nan, nan2, nan2, nan2, nan2, means, diffs)
    sd = float(diffs.std(ddof=1))
    lo, hi = bias - LOA_Z * sd, bias + LOA_Z * sd
    t = float(st.t.ppf(0.975, n - 1))
    se_bias = math.sqrt(sd**2 / n)
    se_loa = math.sqrt(3.0 * sd**2 / n)
    return BlandAltman(
        n, int((~ok).sum()), transform, bias, sd, (lo, hi), (bias - t * se_bias, bias + t * se_bias),
        (lo - t * se_loa, lo + t * se_loa), (hi - t * se_loa, hi + t * se_loa), means, diffs,
    )


@dataclass(frozen=True)
class WilcoxonResult:
    """Paired Wilcoxon signed-rank test (zero differences dropped, Wilcoxon's convention)."""

    n: int
    n_nonzero: int
    statistic: float
    p: float
    median_difference: float



def wilcoxon_paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> WilcoxonResult:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` against ``b`` (e.g. per-case Dice of two methods).

    Pairs with a NaN are dropped; zero differences are dropped before ranking (``zero_method="wilcox"``); tied
    absolute differences get average ranks (scipy chooses the exact or the normal approximation). When every
    difference is zero the test is not informative: statistic 0 and p = 1. ``n`` counts the complete pairs.
    """
    from scipy import stats as st

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = int(d.size)
    nonzero = d[d != 0]
    median_diff = float(np.median(d)) if n else math.nan
    if n == 0:
        return WilcoxonResult(0, 0, math.nan, math.nan, math.nan)
    if nonzero.size == 0:
        return WilcoxonResult(n, 0, 0.0, 1.0, median_diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = st.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    return WilcoxonResult(n, int(nonzero.size), float(res.statistic), float(res.pvalue), median_diff)


@dataclass
class Table1Row:
    """One row of a Table 1: a label and one formatted cell per column group."""

    label: str
    values: list[str]
    level: int = 0


@dataclass
class Table1:
    """Demographics table: ``columns`` holds the group headers (``All (n=N)`` then one per cohort)."""

    columns: list[str]
    rows: list[Table1Row]
    notes: list[str] = field(default_factory=list)


def _fmt_row(values: Sequence[float]) -> list[str]:
    """Format numbers of one table row with the same decimals (1, or 2 when all are below 1 in magnitude)."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    digits = 1 if finite and max(finite) >= 1 else 2
    return [f"{v:.{digits}f}" if math.isfinite(v) else "NA" for v in values]


def _level_name(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_CENSORED = re.compile(r"^\s*(?:[<>]=?\s*)?([-+]?\d+(?:\.\d*)?)\s*\+?\s*$")


def _as_numbers(series: Any) -> tuple[Any, int]:
    """Parse numbers, accepting censored spellings such as ``89+``, ``>89`` or ``<18`` (as the bound); also return
    how many values were censored."""
    import pandas as pd

    plain = pd.to_numeric(series, errors="coerce")
    odd = series.notna() & plain.isna()
    bounds = series[odd].astype(str).str.extract(_CENSORED, expand=False)
    return plain.fillna(pd.to_numeric(bounds, errors="coerce")), int(bounds.notna().sum())


def _column_kind(series: Any) -> tuple[str, Any, int]:
    """``("numeric", floats, n_censored)`` when every non-missing value parses as a number and there are more than
    two distinct values, else ``("categorical", labels, 0)`` (0/1 flags are categorical)."""
    import pandas as pd

    numeric, censored = _as_numbers(series)
    present = series.notna()
    if present.any() and numeric[present].notna().all():
        if numeric[present].nunique() > 2:
            return "numeric", numeric, censored
        return "categorical", numeric.map(lambda v: None if v != v else _level_name(float(v))), 0
    return "categorical", series.map(lambda v: None if pd.isna(v) else str(v).strip()), 0


def table1(
    frame: Any, cohort_column: str | None = None, exclude: Sequence[str] = (), max_levels: int = 10
) -> Table1:
    """Describe every column of a clinical table: median [IQR] for numeric columns, n (%) for categorical ones.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant; missing values as NaN.
    cohort_column : str, optional
        Column splitting the participants into cohorts; one extra column group per cohort (rows whose cohort is
        missing count only under ``All``).
    exclude : sequence of str
        Columns not to describe (identifiers).
    max_levels : int
        Categorical columns with more levels show the most frequent ``max_levels - 1`` and an ``other`` row.

    Returns
    -------
    Table1
        Percentages are of the non-missing values of the group; a ``missing`` row gives the count of missing
        values for every variable. Numeric columns with at most two distinct values (0/1 flags) are categorical.
    """
    import pandas as pd

    df = pd.DataFrame(frame)
    if cohort_column is not None and cohort_column not in df.columns:
        raise KeyError(f"cohort column {cohort_column!r} not in the clinical table")
    groups: list[tuple[str, pd.Index]] = [("All", df.index)]
    if cohort_column is not None:
        cohorts = df[cohort_column].map(lambda v: None if pd.isna(v) else _level_name(v))
        for name in sorted(cohorts.dropna().unique(), key=str):
            groups.append((str(name), df.index[cohorts == name]))
    columns = [f"{name} (n={len(idx)})" for name, idx in groups]
    rows: list[Table1Row] = []
    notes: list[str] = []
    skip = set(exclude) | ({cohort_column} if cohort_column else set())
    for col in df.columns:
        if col in skip:
            continue
        kind, values, censored = _column_kind(df[col])
        if kind == "numeric":
            cells = []
            for _, idx in groups:
                s = describe(values.loc[idx].to_numpy(dtype=np.float64))
                med, q1, q3 = _fmt_row([s.median, s.q1, s.q3])
                cells.append("NA" if s.n == 0 else f"{med} [{q1}, {q3}]")
            rows.append(Table1Row(f"{col}, median [IQR]", cells))
            if censored:
                notes.append(f"{col}: {censored} value(s) given as a bound (such as '89+') were counted at the bound.")
        else:
            counts = values.value_counts()
            levels = [str(v) for v in counts.index]
            shown = levels if len(levels) <= max_levels else levels[: max_levels - 1]
            rows.append(Table1Row(f"{col}, n (%)", ["" for _ in groups]))
            for level in shown + (["other"] if len(shown) < len(levels) else []):
                cells = []
                for _, idx in groups:
                    sub = values.loc[idx].dropna()
                    hits = int((~sub.isin(shown)).sum()) if level == "other" else int((sub == level).sum())
                    cells.append(f"{hits} ({100.0 * hits / len(sub):.1f}%)" if len(sub) else "0")
                rows.append(Table1Row(level, cells, level=1))
        rows.append(Table1Row("missing", [str(int(values.loc[idx].isna().sum())) for _, idx in groups], level=1))
    return Table1(columns=columns, rows=rows, notes=notes)
