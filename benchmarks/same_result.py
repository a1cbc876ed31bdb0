"""One result per scan on any hardware, on whole real cases: the default model's compiled CPU runtime (OpenVINO,
fp32) against PyTorch on CPU, and, with ``--device cuda``, PyTorch on the GPU (TF32 off) against PyTorch on CPU.

Run by hand (the test suite checks the same on a real slab, ``tests/model_promptfree/test_same_result.py``)::

    python benchmarks/same_result.py                      # the bundled case, ../shared's labelled and native cases
    python benchmarks/same_result.py --all                # every real ISLES-size DWI of ../shared too
    python benchmarks/same_result.py --device cuda --json out/same_result_gpu.json

For each case it prints the largest probability difference, whether the masks are identical (voxel for voxel, after
the default model's threshold and smallest kept lesion), the number of differing voxels and both volumes. The exit
status is 1 when any mask differs or a probability differs by 1e-4 or more.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"
SHARED = REPO.parent / "shared" / "data"
TOLERANCE = 1e-4


def cases(every: bool) -> list[tuple[str, Path, Path | None]]:
    """``(name, DWI, ADC or None)`` of the real cases present on this machine."""
    out: list[tuple[str, Path, Path | None]] = [("bundled-0009", Path(f"{EXAMPLE}_dwi.nii.gz"),
                                                 Path(f"{EXAMPLE}_adc.nii.gz"))]
    labelled = SHARED / "isles22-sub-strokecase0003" / "sub-strokecase0003_ses-0001"
    if Path(f"{labelled}_dwi.nii.gz").is_file():
        out.append(("isles22-0003", Path(f"{labelled}_dwi.nii.gz"), Path(f"{labelled}_adc.nii.gz")))
    native = SHARED / "unlabeled" / "isles22-native-example"
    if (native / "dwi.mha").is_file():
        out.append(("isles22-native-oblique", native / "dwi.mha", native / "adc.mha"))
    if every:
        out += [(p.name.split("_")[0], p, None)
                for p in sorted((SHARED / "unlabeled" / "isles22-dwi-only").glob("*_dwi.nii.gz"))]
    return out


def compare(name: str, dwi: Path, adc: Path | None, test, reference) -> dict:
    """Both engines on one case: probability difference, mask identity, volumes."""
    from infarctsam.io.dwi import load_adc, load_dwi
    from infarctsam.postprocess import binarize
    from infarctsam.preprocess import preprocess

    volume, _ = load_dwi(str(dwi))
    pre = preprocess(volume, load_adc(str(adc), volume) if adc is not None else None)
    start = time.perf_counter()
    got = test.predict(pre)
    seconds_test = time.perf_counter() - start
    start = time.perf_counter()
    expected = reference.predict(pre)
    seconds_reference = time.perf_counter() - start
    masks = [binarize(p, pre.brain, reference.threshold, reference.min_lesion_ml, pre.voxel_ml)
             for p in (got, expected)]
    return {"case": name, "max_abs_probability_difference": float(np.abs(got - expected).max()),
            "identical_masks": bool(np.array_equal(*masks)), "differing_voxels": int((masks[0] != masks[1]).sum()),
            "volume_ml": [float(m.sum() * pre.voxel_ml) for m in masks],
            "seconds": [round(seconds_test, 2), round(seconds_reference, 2)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu: compiled against PyTorch CPU; cuda: PyTorch CUDA against PyTorch CPU")
    parser.add_argument("--all", action="store_true", help="every real ISLES-size DWI of ../shared too")
    parser.add_argument("--case", action="append", default=[], metavar="NAME",
                        help="only this case (repeatable; names as printed, e.g. isles22-0003)")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine to this file")
    args = parser.parse_args(argv)

    from infarctsam.engines.sam import SamEngine

    reference = SamEngine.from_weights(None, precision="fp32")
    reference.set_runtime("torch", "auto")
    if args.device == "cuda":
        test = SamEngine.from_weights(None, device="cuda", cache_dir=None, precision="fp32")
    else:
        test = SamEngine.from_weights(None, precision="fp32")
    label = f"{test.predictor.runtime} on {args.device}"
    print(f"{label} against torch on cpu, fp32; tolerance {TOLERANCE:g}")
    rows = []
    for name, dwi, adc in cases(args.all):
        if args.case and name not in args.case:
            continue
        row = compare(name, dwi, adc, test, reference)
        rows.append(row)
        print(f"{name:24s} max |dp| {row['max_abs_probability_difference']:.2e}  masks "
              f"{'identical' if row['identical_masks'] else 'DIFFER'} ({row['differing_voxels']} voxels)  "
              f"{row['volume_ml'][0]:.2f} / {row['volume_ml'][1]:.2f} mL  {row['seconds'][0]:.1f} / "
              f"{row['seconds'][1]:.1f} s", flush=True)
    ok = all(r["identical_masks"] and r["max_abs_probability_difference"] < TOLERANCE for r in rows)
    if args.json:
        import torch

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"compared": label, "reference": "torch on cpu", "machine": platform.processor()
                                         or platform.machine(), "torch": torch.__version__, "rows": rows,
                                         "all_identical": ok}, indent=2), encoding="utf-8")
    print("all identical" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
