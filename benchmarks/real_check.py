"""Run engines on the real DWIs available locally and collect volumes, Dice (labelled case) and QC montages.

Uses the bundled ISLES'22 sample (expert mask) and, when present, the unlabelled real scans of ``../shared``
(eight ISLES'22 DWIs with an infarct each, a native-resolution ISLES'22 case, a stroke-free volunteer slab: any
lesion found there is a false positive). Run by hand:

    python benchmarks/real_check.py --out out/real_check [--weights runs/x/model.safetensors]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def real_cases() -> list[dict]:
    """The real scans to check: name, DWI, optional ADC and reference."""
    stem = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"
    cases = [{"name": "isles22-0009", "dwi": f"{stem}_dwi.nii.gz", "adc": f"{stem}_adc.nii.gz",
              "reference": f"{stem}_msk.nii.gz"}]
    if SHARED.is_dir():
        for p in sorted((SHARED / "unlabeled" / "isles22-dwi-only").glob("*_dwi.nii.gz")):
            cases.append({"name": p.name.split("_")[0].replace("sub-strokecase", "isles22-"), "dwi": str(p)})
        native = SHARED / "unlabeled" / "isles22-native-example"
        cases.append({"name": "isles22-native", "dwi": str(native / "dwi.mha"), "adc": str(native / "adc.mha")})
        slab = SHARED / "unlabeled" / "normal-philips-slab"
        cases.append({"name": "normal-slab (FP only)", "dwi": str(slab / "trace_b1000.nii.gz"),
                      "adc": str(slab / "adc_x1e-6mm2s.nii.gz")})
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/real_check")
    parser.add_argument("--engines", nargs="+", default=["threshold", "sam"])
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    from infarctsam.api import segment
    from infarctsam.engines import load_engine

    rows = []
    for engine_name in args.engines:
        engine = load_engine(engine_name, weights=args.weights if engine_name == "sam" else None)
        for case in real_cases():
            out = Path(args.out) / engine_name
            res = segment(case["dwi"], out, adc=case.get("adc"), engine=engine, reference=case.get("reference"),
                          case_id=case["name"].split(" ")[0])
            ref = res.summary.get("reference", {})
            rows.append({"engine": engine_name, "case": case["name"], "volume_ml": round(res.stats.volume_ml, 2),
                         "lesions": res.stats.lesion_count, "dice": ref.get("dice"),
                         "seconds": res.summary["elapsed_s"]})
            print(json.dumps(rows[-1]), flush=True)
    (Path(args.out) / "real_check.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("\n| engine | case | volume mL | lesions | Dice | s |\n|---|---|---|---|---|---|")
    for r in rows:
        dice = "" if r["dice"] is None else f"{r['dice']:.3f}"
        print(f"| {r['engine']} | {r['case']} | {r['volume_ml']} | {r['lesions']} | {dice} | {r['seconds']} |")


if __name__ == "__main__":
    main()
