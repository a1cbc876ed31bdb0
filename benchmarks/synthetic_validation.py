"""Validate the engines on a held-out synthetic cohort, as the abstract's Cohort 2 table (run by hand).

1. writes a synthetic cohort (ISLES-like preset by default; seeds disjoint from the training recipe's),
2. segments it with each engine (a batch per engine, engine loaded once),
3. runs ``infarctsam evaluate`` on all engines side by side (Dice, ICC with CI, Bland-Altman, paired Wilcoxon,
   Table 1 from the cohort's participants table, figures, HTML report),
4. prints Table 2's main figures.

    python benchmarks/synthetic_validation.py --n 60 --out out/synthetic60
    python benchmarks/synthetic_validation.py --engines threshold --n 10    # baseline only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--preset", default="isles", choices=["isles", "clinical", "default"])
    parser.add_argument("--engines", nargs="+", default=["threshold", "sam"])
    parser.add_argument("--weights", default=None, help="weights for the sam engine (default: the shipped model)")
    parser.add_argument("--out", default="out/synthetic_validation")
    args = parser.parse_args()

    from infarctsam.evaluate import evaluate
    from infarctsam.report import write_report
    from infarctsam.scale import run_batch
    from infarctsam.synth import PhantomConfig, write_cohort

    out = Path(args.out)
    cohort = out / "cohort"
    preset = {"isles": PhantomConfig.isles_like, "clinical": PhantomConfig.clinical, "default": PhantomConfig}
    if not (cohort / "synth_manifest.json").exists():
        t = time.perf_counter()
        write_cohort(cohort, args.n, args.seed, config=preset[args.preset](), layout="bids")
        print(f"cohort: {args.n} cases in {time.perf_counter() - t:.0f} s")
    preds, timings = [], {}
    for engine in args.engines:
        pred = out / f"pred_{engine}"
        t = time.perf_counter()
        report = run_batch(cohort, pred, engine=engine, weights=args.weights if engine == "sam" else None,
                           progress=True)
        timings[engine] = time.perf_counter() - t
        print(f"{engine}: {report.counts} in {timings[engine]:.0f} s")
        preds.append(pred)
    result = evaluate(cohort, preds, names=args.engines, clinical=cohort / "participants.tsv")
    files = write_report(result, out / "report")
    summary = json.loads((out / "report" / "summary.json").read_text(encoding="utf-8"))
    summary["seconds_per_engine"] = timings
    (out / "report" / "summary_with_timing.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for name, m in summary["methods"].items():
        print(f"{name}: Dice {m['dice_mean']:.3f} ({m['dice_sd']:.3f}), median {m['dice_median']:.3f}, "
              f"ICC(A,1) {m['icc_a1']['value']:.3f} {m['icc_a1']['ci95']}, BA bias {m['bland_altman']['bias']:.2f} "
              f"mL LoA {m['bland_altman']['loa']}, AVD {m['avd_ml_mean']:.2f} mL, lesion F1 {m['lesion_f1_mean']:.3f}")
    for comp in summary["comparisons"]:
        print(f"{comp['a']} vs {comp['b']}: Wilcoxon p = {comp['wilcoxon_p']:.3g}")
    print(f"report: {files['report.html']}")


if __name__ == "__main__":
    main()
