"""Cohort statistics against published values and hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evalfixtures import SHARED

from infarctsam import stats as S
from infarctsam.evaluate.clinical import clinical_table1, read_clinical

DATA = Path(__file__).resolve().parent / "data"

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


def test_icc_matches_published_shrout_fleiss_values() -> None:
    """Published values for the Shrout & Fleiss data.

    * Point estimates ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71: Shrout & Fleiss (1979) Table 4, and the psych
      package's own test, tests/testthat/test_ICC.R (https://rdrr.io/cran/psych/src/tests/testthat/test_ICC.R).
    * Confidence bounds, F and p as printed by R ``psych::ICC(sf)`` (psych documentation example, reproduced in
      dwoll/RExRepos ``md/interRaterICC.md``): ICC1 0.17 [-0.133, 0.72], F 1.8 (5, 18), p 0.16477;
      ICC2 0.29 [0.019, 0.76]; ICC3 0.71 [0.342, 0.95]; F 11.0 (5, 15).
    * Three decimals from R ``DescTools::ICC`` (same page): ICC1 0.166, ICC2 0.290, ICC3 0.715, F 11.03,
      p 0.000135.
    """
    r = S.icc(SHROUT_FLEISS)
    one, agree, cons = r["ICC(1,1)"], r["ICC(A,1)"], r["ICC(C,1)"]
    assert round(one.value, 3) == 0.166 and round(one.value, 2) == 0.17
    assert round(one.ci95[0], 3) == -0.133 and round(one.ci95[1], 2) == 0.72
    assert round(one.f, 1) == 1.8 and (one.df1, one.df2) == (5, 18) and round(one.p, 5) == 0.16477
    assert round(agree.value, 3) == 0.290
    assert round(agree.ci95[0], 3) == 0.019 and round(agree.ci95[1], 2) == 0.76
    assert round(cons.value, 3) == 0.715 and round(cons.value, 2) == 0.71
    assert round(cons.ci95[0], 3) == 0.342 and round(cons.ci95[1], 2) == 0.95
    for res in (agree, cons):
        assert round(res.f, 2) == 11.03 and (res.df1, res.df2) == (5, 15) and round(res.p, 6) == 0.000135


def test_icc_agrees_with_pingouin_on_volume_pairs() -> None:
    import pingouin as pg

    rng = np.random.default_rng(3)
    ref = rng.gamma(2.0, 20.0, size=25)
    pred = ref * rng.normal(1.1, 0.15, size=25) + rng.normal(0, 3, size=25)
    ours = S.icc(np.column_stack([ref, pred]))
    long = pd.DataFrame({"case": np.tile(np.arange(25), 2), "rater": np.repeat(["gt", "pred"], 25),
                         "v": np.concatenate([ref, pred])})
    theirs = pg.intraclass_corr(long, targets="case", raters="rater", ratings="v").set_index("Type")
    for kind in ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)"):
        assert ours[kind].value == pytest.approx(theirs.loc[kind, "ICC"], abs=1e-9)
        assert ours[kind].f == pytest.approx(theirs.loc[kind, "F"], rel=1e-9)
        # pingouin rounds its intervals to two decimals
        assert ours[kind].ci95 == pytest.approx(tuple(theirs.loc[kind, "CI95"]), abs=0.0051)


def test_icc_degenerate_inputs() -> None:
    perfect = S.icc([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    assert perfect["ICC(A,1)"].value == 1.0 and perfect["ICC(A,1)"].ci95 == (1.0, 1.0)
    assert perfect["ICC(C,1)"].value == 1.0
    assert math.isnan(S.icc([[1.0, 2.0]])["ICC(A,1)"].value)  # one subject
    assert math.isnan(S.icc([[3.0, 3.0], [3.0, 3.0]])["ICC(C,1)"].value)  # no variance at all
    with pytest.raises(ValueError):
        S.icc([1.0, 2.0, 3.0])


def test_describe_hand_computed() -> None:
    s = S.describe([1, 2, 3, 4, 100, float("nan")])
    # mean 110/5 = 22; SD = sqrt((21^2 + 20^2 + 19^2 + 18^2 + 78^2) / 4) = sqrt(1902.5)
    assert (s.n, s.mean, s.median, s.q1, s.q3) == (5, 22.0, 3.0, 2.0, 4.0)
    assert s.sd == pytest.approx(math.sqrt(1902.5))


def test_bland_altman_hand_computed() -> None:
    # differences 2, -1, 3, 4: mean 2; squared deviations 0 + 9 + 1 + 4 = 14, s^2 = 14/3, s = 2.1602469
    ba = S.bland_altman([10, 20, 30, 40], [12, 19, 33, 44])
    s = math.sqrt(14 / 3)
    assert ba.bias == pytest.approx(2.0) and ba.sd == pytest.approx(s)
    assert ba.loa == pytest.approx((2 - 1.96 * s, 2 + 1.96 * s))  # (-2.234084, 6.234084)
    t3 = 3.182446  # t(0.975, df=3), from tables
    se_bias = math.sqrt(s**2 / 4)  # 1.080123; t * se = 3.437435
    se_loa = math.sqrt(3 * s**2 / 4)  # sqrt(3.5) = 1.870829; t * se = 5.953811
    assert ba.bias_ci95 == pytest.approx((2 - t3 * se_bias, 2 + t3 * se_bias), abs=1e-5)  # (-1.437435, 5.437435)
    assert ba.loa_lower_ci95 == pytest.approx((-2.234084 - t3 * se_loa, -2.234084 + t3 * se_loa), abs=1e-5)
    assert ba.loa_upper_ci95 == pytest.approx((6.234084 - t3 * se_loa, 6.234084 + t3 * se_loa), abs=1e-5)
    assert ba.loa_upper_ci95[1] == pytest.approx(12.187895, abs=1e-5)  # 6.234084 + 5.953811
    assert list(ba.diffs) == [2, -1, 3, 4] and list(ba.means) == [11, 19.5, 31.5, 42]


def test_bland_altman_transforms() -> None:
    e = math.e
    ba = S.bland_altman([1.0, e, e**2, 0.0], [e, e, e**3, 5.0], transform="log")
    # log differences 1, 0, 1 (the pair with a zero volume is excluded): bias 2/3
    assert (ba.n, ba.n_excluded) == (3, 1)
    assert ba.bias == pytest.approx(2 / 3)
    cb = S.bland_altman([8.0, 27.0], [27.0, 64.0], transform="cbrt")
    assert cb.bias == pytest.approx(1.0) and cb.sd == pytest.approx(0.0)  # cube roots 2,3 vs 3,4
    with pytest.raises(ValueError):
        S.bland_altman([1.0], [1.0], transform="sqrt")


def test_wilcoxon_hand_computed_with_zero_difference() -> None:
    # differences 0.1, -0.2, 0.3, 0.4, 0: the zero is dropped; ranks 1, 2, 3, 4; W- = 2 = min(W+, W-).
    # Exact two-sided p: subsets of {1,2,3,4} with rank sum <= 2 are {}, {1}, {2} -> 2 * 3/16 = 0.375.
    r = S.wilcoxon_paired([0.9, 0.6, 0.8, 0.9, 0.5], [0.8, 0.8, 0.5, 0.5, 0.5])
    assert (r.n, r.n_nonzero) == (5, 4)
    assert r.statistic == pytest.approx(2.0)
    assert r.p == pytest.approx(0.375)
    same = S.wilcoxon_paired([0.5, 0.7], [0.5, 0.7])
    assert (same.n, same.n_nonzero, same.statistic, same.p) == (2, 0, 0.0, 1.0)


def test_table1_hand_computed_with_cohorts() -> None:
    df = pd.DataFrame({
        "id": ["a", "b", "c", "d"],
        "age": [70, 80, 60, None],
        "sex": ["M", "F", "M", None],
        "prior": [0, 1, 0, 0],
        "site": ["A", "A", "B", "B"],
    })
    t = S.table1(df, cohort_column="site", exclude=["id"])
    assert t.columns == ["All (n=4)", "A (n=2)", "B (n=2)"]
    rows = {(r.label, r.level): r.values for r in t.rows}
    assert rows[("age, median [IQR]", 0)] == ["70.0 [65.0, 75.0]", "75.0 [72.5, 77.5]", "60.0 [60.0, 60.0]"]
    assert rows[("M", 1)] == ["2 (66.7%)", "1 (50.0%)", "1 (100.0%)"]
    assert rows[("F", 1)] == ["1 (33.3%)", "1 (50.0%)", "0 (0.0%)"]
    assert rows[("0", 1)] == ["3 (75.0%)", "1 (50.0%)", "2 (100.0%)"]  # 0/1 flag shown as categorical
    missing = [r.values for r in t.rows if r.label == "missing"]
    assert missing == [["1", "0", "1"], ["1", "0", "1"], ["0", "0", "0"]]  # age, sex, prior


def test_clinical_table_from_soop_participants_matched_to_cases() -> None:
    df = read_clinical(DATA / "soop_participants_sample.tsv")
    cases = ["sub-2_ses-1", "sub-5", "sub-8", "sub-9", "sub-13", "sub-6", "sub-999"]
    t = clinical_table1(df, cases)
    rows = {(r.label, r.level): r.values[0] for r in t.rows}
    assert t.columns == ["All (n=6)"]
    # ages 78, 58, 34, 70, 73 and one n/a: median 70, quartiles 58 and 73
    assert rows[("age, median [IQR]", 0)] == "70.0 [58.0, 73.0]"
    assert rows[("M", 1)] == "3 (60.0%)" and rows[("F", 1)] == "2 (40.0%)"
    assert "participant_id, n (%)" not in {r.label for r in t.rows}
    assert any("6 of 12 rows" in n for n in t.notes) and any("sub-999" in n for n in t.notes)


@pytest.mark.shared
def test_table1_on_the_full_soop_participants_table() -> None:
    path = SHARED / "data" / "soop-lesions-mni" / "participants.tsv"
    if not path.is_file():
        pytest.skip(f"needs the shared SOOP participants table ({path})")
    df = read_clinical(path)
    t = clinical_table1(df, ["no-such-case"])
    assert t.columns == [f"All (n={len(df)})"]
    assert any("describes all" in n for n in t.notes)
    assert any(n.startswith("age:") and "89+" in n for n in t.notes)  # SOOP codes ages over 89 as '89+'

    labels = [r.label for r in t.rows]
    assert "age, median [IQR]" in labels and "sex, n (%)" in labels and "nihss, median [IQR]" in labels
    sex_missing = t.rows[labels.index("sex, n (%)") + 3]
    assert sex_missing.label == "missing" and int(sex_missing.values[0]) == int(df["sex"].isna().sum()) > 0
