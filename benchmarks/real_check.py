"""Real-scan validation: leave-one-out Dice on the labelled ISLES'22 cases and checks on every real scan we have.

One command prints the table of the accuracy issue (and the README's accuracy section):

    python benchmarks/real_check.py --out out/real_check \\
        --fold 0009=runs/loo-holdout-0009/fused.safetensors --fold 0003=runs/loo-holdout-0003/fused.safetensors

* **Leave-one-out** (``--fold CASE=WEIGHTS``, weights trained without that case): Dice of the ``sam`` engine with the
  case's ADC and with the DWI alone, beside the ``threshold`` engine with and without ADC.
* **Real scans** with the shipped default model (or ``--weights``): the bundled ISLES'22 case and, when ``../shared``
  is present, the JHU ADS clinical scans (brain-mask Dice against the ADS brain mask; lesion volume and Dice against
  the ADS model's prediction, which is not an expert mask), the stroke-free volunteer slab (any lesion is a false
  positive), the native oblique ISLES'22 case and the eight unlabelled ISLES'22 DWIs (volumes, warnings, QC
  pictures to look at).

Per labelled case the lesion level is reported too: lesion-wise F1 (ISLES'22 definition: a reference lesion touched
by one predicted voxel is detected, a predicted lesion touching no reference voxel is a false positive), detected /
total reference lesions, and the volume error. For the unlabelled scans, ``--judged FILE`` (JSON: scan name ->
``{"fp_ml": ..., "note": ...}``) adds the false-positive volume a reader judged on each QC picture
(``benchmarks/accuracy/fp_judged.json`` holds ours). ``--min-lesion-ml`` overrides every engine's smallest kept
lesion (0 keeps every component, so that smaller sizes can be studied from the written masks).

Everything runs through :func:`infarctsam.api.segment`, the path users take. Results: ``OUT/real_check.json`` and
the QC pictures under ``OUT/<engine>/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"


def labelled_cases() -> dict[str, dict[str, str]]:
    """The labelled real cases: DWI, ADC, expert mask."""
    cases = {"0009": {"dwi": f"{EXAMPLE}_dwi.nii.gz", "adc": f"{EXAMPLE}_adc.nii.gz",
                      "reference": f"{EXAMPLE}_msk.nii.gz"}}
    stem = SHARED / "isles22-sub-strokecase0003" / "sub-strokecase0003_ses-0001"
    if stem.parent.is_dir():
        cases["0003"] = {"dwi": f"{stem}_dwi.nii.gz", "adc": f"{stem}_adc.nii.gz", "reference": f"{stem}_msk.nii.gz"}
    return cases


def real_scans() -> list[dict[str, str]]:
    """Every real scan for the default model: name, DWI, optional ADC, reference, brain reference, kind."""
    scans = [{"name": f"isles22-{k}", **v, "kind": "labelled"} for k, v in labelled_cases().items()]
    if not SHARED.is_dir():
        return scans
    ads = SHARED / "unlabeled"
    scans.append({"name": "jhu-ads-subject01", "dwi": str(ads / "jhu-ads-subject01" / "Subject01_DWI.nii.gz"),
                  "ads_lesion": str(ads / "jhu-ads-subject01" / "Subject01_DAGMNet_lesion_prediction.nii.gz"),
                  "ads_brain": str(ads / "jhu-ads-subject01" / "Subject01_Mask.nii.gz"), "kind": "clinical"})
    scans.append({"name": "jhu-ads-subject02", "dwi": str(ads / "jhu-ads-subject02" / "Subject02_DWI.nii.gz"),
                  "adc": str(ads / "jhu-ads-subject02" / "Subject02_ADC.nii.gz"),
                  "ads_lesion": str(ads / "jhu-ads-subject02" / "Subject02_DAGMNet_lesion_prediction.nii.gz"),
                  "ads_brain": str(ads / "jhu-ads-subject02" / "Subject02_Mask.nii.gz"), "kind": "clinical"})
    slab = ads / "normal-philips-slab"
    scans.append({"name": "normal-slab", "dwi": str(slab / "trace_b1000.nii.gz"),
                  "adc": str(slab / "adc_x1e-6mm2s.nii.gz"), "kind": "normal"})
    native = ads / "isles22-native-example"
    scans.append({"name": "isles22-native", "dwi": str(native / "dwi.mha"), "adc": str(native / "adc.mha"),
                  "kind": "unlabelled"})
    for p in sorted((ads / "isles22-dwi-only").glob("*_dwi.nii.gz")):
        scans.append({"name": p.name.split("_")[0].replace("sub-strokecase", "isles22-"), "dwi": str(p),
                      "kind": "unlabelled"})
    return scans


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def ads_checks(scan: dict[str, str], mask_path: Path) -> dict[str, float]:
    """Brain-mask Dice vs the ADS brain mask; lesion Dice vs, and volume outside, the ADS prediction."""
    import nibabel as nib

    from infarctsam.io.dwi import load_dwi
    from infarctsam.preprocess import preprocess

    vol, _ = load_dwi(scan["dwi"])
    pre = preprocess(vol)
    ads_brain = pre.reorient.to_canonical(np.asarray(nib.load(scan["ads_brain"]).dataobj) > 0.5)
    ours = np.asarray(nib.load(mask_path).dataobj) > 0
    ads = np.asarray(nib.load(scan["ads_lesion"]).dataobj) > 0.5
    voxel_ml = float(np.prod(vol.spacing)) / 1000.0
    return {"brain_ml": round(float(pre.brain.sum()) * pre.voxel_ml, 1),
            "brain_dice_vs_ads": round(_dice(pre.brain, ads_brain), 3),
            "ads_lesion_ml": round(float(ads.sum()) * voxel_ml, 2),
            "lesion_dice_vs_ads": round(_dice(ours, ads), 3),
            "ml_outside_ads": round(float((ours & ~ads).sum()) * voxel_ml, 2)}


def run_case(engine, scan: dict[str, str], out: Path, use_adc: bool = True) -> dict:
    """Segment one scan and collect the figures."""
    from infarctsam.api import segment

    adc = scan.get("adc") if use_adc else None
    res = segment(scan["dwi"], out, adc=adc, engine=engine, reference=scan.get("reference"),
                  case_id=scan["name"] + ("" if use_adc or not scan.get("adc") else "_dwi-only"))
    ref = res.summary.get("reference", {})
    row = {"case": scan["name"], "kind": scan.get("kind", ""), "adc": adc is not None,
           "volume_ml": round(res.stats.volume_ml, 2), "lesions": res.stats.lesion_count,
           "dice": ref.get("dice"), "seconds": res.summary["elapsed_s"],
           "warnings": res.summary.get("warnings", [])}
    if ref:
        row.update(lesion_level(ref))
    if "ads_brain" in scan:
        mask = next(f for f in res.files if str(f).endswith("_mask.nii.gz"))
        row.update(ads_checks(scan, Path(mask)))
    return row


def lesion_level(ref: dict) -> dict:
    """Lesion-wise F1, detected / total reference lesions, predicted lesions and volume error of one case."""
    gt, pred = ref["volume_gt_ml"], ref["volume_pred_ml"]
    return {"lesion_f1": round(ref["lesion_f1"], 3), "detected": ref["n_lesions_detected"],
            "reference_lesions": ref["n_lesions_gt"], "predicted_lesions": ref["n_lesions_pred"],
            "reference_ml": round(gt, 2), "volume_error_ml": round(pred - gt, 2),
            "volume_error_pct": round(100.0 * (pred - gt) / gt, 1) if gt > 0 else None}


def load_engine_with(name: str, weights: str | None, min_lesion_ml: float | None):
    """An engine, with its smallest kept lesion overridden when ``min_lesion_ml`` is given."""
    from infarctsam.engines import load_engine

    engine = load_engine(name, weights=weights)
    if min_lesion_ml is not None:
        engine.min_lesion_ml = min_lesion_ml
    return engine


def leave_one_out(folds: dict[str, str], out: Path, min_lesion_ml: float | None = None) -> list[dict]:
    """Dice of each fold's model on its held-out case, with and without ADC, beside the threshold engine."""
    cases = labelled_cases()
    threshold = load_engine_with("threshold", None, min_lesion_ml)
    rows = []
    for case, weights in folds.items():
        sam = load_engine_with("sam", weights, min_lesion_ml)
        for engine, name in ((sam, "sam"), (threshold, "threshold")):
            for use_adc in (True, False):
                r = run_case(engine, {"name": f"isles22-{case}", **cases[case]}, out / "loo" / name, use_adc)
                rows.append({"fold": case, "engine": name, "weights": Path(weights).name if name == "sam" else "",
                             **r})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/real_check")
    parser.add_argument("--weights", default=None, help="sam weights for the real scans (default: shipped model)")
    parser.add_argument("--fold", action="append", default=[], metavar="CASE=WEIGHTS",
                        help="leave-one-out fold: the labelled case (0009, 0003) and weights trained without it")
    parser.add_argument("--engines", nargs="*", default=["sam", "threshold"],
                        help="engines for the real scans (none: leave-one-out only)")
    parser.add_argument("--scans", nargs="*", default=None, help="only these real scans (names as in the table)")
    parser.add_argument("--min-lesion-ml", type=float, default=None,
                        help="override every engine's smallest kept lesion (mL)")
    parser.add_argument("--judged", default=None,
                        help="JSON: scan name -> {fp_ml, note}, false positives judged on the QC pictures")
    args = parser.parse_args()

    out = Path(args.out)
    folds = dict(f.split("=", 1) for f in args.fold)
    judged = json.loads(Path(args.judged).read_text(encoding="utf-8")) if args.judged else {}
    result = {"loo": leave_one_out(folds, out, args.min_lesion_ml) if folds else [], "scans": []}
    for name in args.engines:
        engine = load_engine_with(name, args.weights if name == "sam" else None, args.min_lesion_ml)
        for scan in real_scans():
            if args.scans is not None and scan["name"] not in args.scans:
                continue
            row = {"engine": name, **run_case(engine, scan, out / name)}
            if name == "sam" and scan["name"] in judged:
                row["fp_judged_ml"] = judged[scan["name"]]["fp_ml"]
            result["scans"].append(row)
            print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_check.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print_tables(result)


def print_tables(result: dict) -> None:
    """Markdown tables of the leave-one-out and real-scan results."""
    if result["loo"]:
        print("\n| held-out case | engine | ADC | Dice | lesion F1 | detected / lesions | volume mL (reference) "
              "| volume error | s |\n|---|---|---|---|---|---|---|---|---|")
        for r in result["loo"]:
            print(f"| {r['fold']} | {r['engine']} | {'yes' if r['adc'] else 'no'} | {r['dice']:.3f} | "
                  f"{r['lesion_f1']:.3f} | {r['detected']} / {r['reference_lesions']} | {r['volume_ml']} "
                  f"({r['reference_ml']}) | {r['volume_error_pct']}% | {r['seconds']} |")
    print("\n| engine | case | ADC | volume mL | lesions | Dice | lesion F1 | detected / lesions | brain Dice vs ADS "
          "| Dice vs ADS lesion | mL outside ADS | FP judged on QC, mL | warnings | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["scans"]:
        found = f"{r['detected']} / {r['reference_lesions']}" if "detected" in r else ""
        cells = [r["engine"], r["case"], "yes" if r["adc"] else "no", r["volume_ml"], r["lesions"],
                 "" if r["dice"] is None else f"{r['dice']:.3f}", r.get("lesion_f1", ""), found,
                 r.get("brain_dice_vs_ads", ""), r.get("lesion_dice_vs_ads", ""), r.get("ml_outside_ads", ""),
                 r.get("fp_judged_ml", ""), len(r["warnings"]), r["seconds"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
