"""Accuracy of the fast runtimes against the unoptimised model, case by case (run by hand).

Every numerical shortcut of the ``sam`` engine is checked here, not assumed: each case is segmented by the
reference runtime (``onnx:fp32``: ONNX Runtime encoder + PyTorch decoder in float32, the engine before the speed
work) and by each candidate runtime (e.g. ``openvino:bf16``), in one process with the engine loaded once, and the
Dice of each against the case's reference mask is compared. Reference results are cached under ``OUT/reference``
(keyed by weights and case), so candidates can be re-checked quickly.

    python benchmarks/speed_accuracy.py --out out/speed_accuracy \\
        --fold 0009=runs/loo-holdout-0009/fused.safetensors --fold 0003=runs/loo-holdout-0003/fused.safetensors \\
        --cohort out/synthetic60/cohort --candidates openvino:bf16 openvino:fp32

Cases: the labelled real ISLES'22 cases with their leave-one-out weights (``--fold``) and with the shipped model,
and every case of a synthetic BIDS cohort (``benchmarks/synthetic_validation.py`` writes the 60-case one; its
cases are segmented with the shipped model). Output: ``OUT/speed_accuracy-<candidates>.csv`` (one row per case and
runtime) and ``.json`` (per runtime and group: largest and mean absolute Dice change, cases beyond 0.01, seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

REFERENCE = "onnx:fp32"


def cohort_cases(root: Path) -> dict[str, dict[str, str]]:
    """DWI, ADC (when present) and reference mask of every case of a synthetic BIDS cohort."""
    cases = {}
    for dwi in sorted((root / "rawdata").rglob("*_dwi.nii.gz")):
        stem = dwi.name[: -len("_dwi.nii.gz")]
        entities = dict(part.split("-", 1) for part in stem.split("_") if "-" in part)
        mask = root / "derivatives" / f"sub-{entities.get('sub', '')}" / f"ses-{entities.get('ses', '')}" / \
            f"{stem}_msk.nii.gz"
        adc = dwi.with_name(f"{stem}_adc.nii.gz")
        if mask.is_file():
            cases[stem] = {"dwi": str(dwi), "adc": str(adc) if adc.is_file() else "", "reference": str(mask)}
    return cases


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


class Runner:
    """Segment cases with one weights file under several runtimes, the engine's network built once."""

    def __init__(self, weights: str | None) -> None:
        from infarctsam.engines.sam import SamEngine

        self.engine = SamEngine.from_weights(weights)
        self.sha = str(self.engine.weights_info.get("sha256", ""))[:16]

    def mask(self, case: dict[str, str], runtime: str) -> tuple[np.ndarray, float, float]:
        """Binary mask on the input grid, predict seconds and voxel volume (mL) for ``runtime`` (``name:precision``)."""
        from infarctsam.io.dwi import load_adc, load_dwi
        from infarctsam.postprocess import binarize
        from infarctsam.preprocess import preprocess

        name, precision = runtime.split(":")
        self.engine.set_runtime(name, precision)
        if any(m.training for m in self.engine.predictor.model.modules()):
            raise RuntimeError("the network is not in evaluation mode")
        dwi, _ = load_dwi(case["dwi"])
        adc = load_adc(case["adc"], dwi) if case.get("adc") else None
        pre = preprocess(dwi, adc)
        start = time.perf_counter()
        prob = self.engine.predict(pre)
        seconds = time.perf_counter() - start
        mask = binarize(prob, pre.brain, self.engine.threshold, self.engine.min_lesion_ml, pre.voxel_ml)
        return pre.to_input(mask) > 0, seconds, dwi.voxel_volume_ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/speed_accuracy")
    parser.add_argument("--fold", action="append", default=[], metavar="CASE=WEIGHTS")
    parser.add_argument("--cohort", default=None, help="synthetic BIDS cohort (segmented with the shipped model)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N cohort cases")
    parser.add_argument("--candidates", nargs="+", default=["openvino:bf16"])
    args = parser.parse_args()

    from real_check import labelled_cases  # the sibling benchmark script (run from benchmarks/ or with it on the path)

    from infarctsam.io.volume import read_volume

    out = Path(args.out)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    real = labelled_cases()
    jobs: list[tuple[str, str, dict[str, str], str | None]] = []  # (group, case, paths, weights)
    for item in args.fold:
        name, weights = item.split("=", 1)
        jobs.append(("real LOO", name, real[name], weights))
    jobs += [("real, shipped model", name, paths, None) for name, paths in real.items()]
    if args.cohort:
        cohort = list(cohort_cases(Path(args.cohort)).items())
        jobs += [("synthetic", name, paths, None) for name, paths in cohort[: args.limit or None]]

    runners: dict[str | None, Runner] = {}
    rows = []
    for group, name, paths, weights in jobs:
        runner = runners.get(weights) or runners.setdefault(weights, Runner(weights))
        truth = np.asarray(read_volume(paths["reference"]).data) > 0
        cached = out / "reference" / f"{runner.sha}-{name}.npz"
        if cached.is_file():
            data = np.load(cached)
            ref_mask, ref_seconds = np.unpackbits(data["mask"])[: truth.size].reshape(truth.shape) > 0, float(
                data["seconds"])
        else:
            ref_mask, ref_seconds, _ = runner.mask(paths, REFERENCE)
            np.savez_compressed(cached, mask=np.packbits(ref_mask), seconds=ref_seconds)
        ref_dice = dice(ref_mask, truth)
        for runtime in args.candidates:
            mask, seconds, voxel_ml = runner.mask(paths, runtime)
            row = {"group": group, "case": name, "weights": weights or "shipped", "runtime": runtime,
                   "dice_reference_runtime": round(ref_dice, 4), "dice": round(dice(mask, truth), 4),
                   "delta_dice": round(dice(mask, truth) - ref_dice, 4),
                   "agreement_dice": round(dice(mask, ref_mask), 4),
                   "volume_ml_reference_runtime": round(float(ref_mask.sum()) * voxel_ml, 3),
                   "volume_ml": round(float(mask.sum()) * voxel_ml, 3),
                   "seconds_reference_runtime": round(ref_seconds, 2), "seconds": round(seconds, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    stem = "speed_accuracy-" + "-".join(c.replace(":", "_") for c in args.candidates)
    with (out / f"{stem}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {}
    for runtime in args.candidates:
        for group in dict.fromkeys(r["group"] for r in rows):
            sel = [r for r in rows if r["runtime"] == runtime and r["group"] == group]
            if not sel:
                continue
            deltas = np.array([abs(r["delta_dice"]) for r in sel])
            summary[f"{runtime} | {group}"] = {
                "cases": len(sel), "max_abs_delta_dice": float(deltas.max()),
                "mean_abs_delta_dice": round(float(deltas.mean()), 5),
                "cases_beyond_0.01": int((deltas > 0.01).sum()),
                "mean_dice_reference_runtime": round(float(np.mean([r["dice_reference_runtime"] for r in sel])), 4),
                "mean_dice": round(float(np.mean([r["dice"] for r in sel])), 4),
                "mean_seconds_reference_runtime": round(float(np.mean([r["seconds_reference_runtime"]
                                                                        for r in sel])), 2),
                "mean_seconds": round(float(np.mean([r["seconds"] for r in sel])), 2)}
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for key, value in summary.items():
        print(key, value)


if __name__ == "__main__":
    main()
