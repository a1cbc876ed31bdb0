"""Benchmark the batch pipeline: seconds per case in a batch, one case at a time against reading and writing
overlapped with the model, and the whole-process time of a single case.

Run by hand (not part of the test suite), in one command::

    python benchmarks/bench_batch.py                                  # 50 cases, default engine, this machine's
    python benchmarks/bench_batch.py --cases 6 --device cpu           # a CPU check
    python benchmarks/bench_batch.py --cases 50 --device cuda --json gpu.json

Cases: copies of the bundled real ISLES'22 case and of the real ISLES'22 cases of ``../shared`` where present (all
ISLES size: 112x112x7x at 2 mm), cycled up to ``--cases``, each under its own name. The engine is built and the model
cache warmed once, outside the timings; each batch then runs in this process (``run_batch`` with ``read_ahead`` 0 and
2, fresh output folders); the single case runs ``infarctsam segment`` in a fresh process (warm cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"
SHARED = REPO.parent / "shared" / "data"


def sources() -> list[tuple[Path, Path | None]]:
    """(DWI, ADC) of the real ISLES-size cases available here."""
    out: list[tuple[Path, Path | None]] = [(Path(f"{EXAMPLE}_dwi.nii.gz"), Path(f"{EXAMPLE}_adc.nii.gz"))]
    labelled = SHARED / "isles22-sub-strokecase0003" / "sub-strokecase0003_ses-0001"
    if Path(f"{labelled}_dwi.nii.gz").is_file():
        out.append((Path(f"{labelled}_dwi.nii.gz"), Path(f"{labelled}_adc.nii.gz")))
    out += [(p, None) for p in sorted((SHARED / "unlabeled" / "isles22-dwi-only").glob("*_dwi.nii.gz"))]
    return out


def make_cohort(folder: Path, n: int) -> Path:
    """``n`` cases ``caseNNN_dwi.nii.gz`` (+ ADC) in a flat folder."""
    folder.mkdir(parents=True, exist_ok=True)
    src = sources()
    for i in range(n):
        dwi, adc = src[i % len(src)]
        shutil.copyfile(dwi, folder / f"case{i:03d}_dwi.nii.gz")
        if adc is not None:
            shutil.copyfile(adc, folder / f"case{i:03d}_adc.nii.gz")
    return folder


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print (and optionally save) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-qc", action="store_true", help="no QC pictures")
    parser.add_argument("--modes", default="0,2", help="read_ahead values to time (0: one case at a time)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from infarctsam.scale import run_batch

    work = Path(tempfile.mkdtemp(prefix="infarctsam-bench-batch-"))
    cache = work / "cache"
    try:
        cohort = make_cohort(work / "in", args.cases)
        warm = make_cohort(work / "warm", 1)
        t = time.perf_counter()
        run_batch(warm, work / "warm-out", engine=args.engine, device=args.device, cache_dir=cache, qc=False)
        figures: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                     "loadavg_before": os.getloadavg()},
                         "cases": args.cases, "engine": args.engine, "device": args.device, "qc": not args.no_qc,
                         "engine_build_and_warm_s": round(time.perf_counter() - t, 2), "batch": {}}
        for mode in [int(m) for m in args.modes.split(",")]:
            t = time.perf_counter()
            report = run_batch(cohort, work / f"out-{mode}", engine=args.engine, device=args.device,
                               cache_dir=cache, qc=not args.no_qc, read_ahead=mode)
            wall = time.perf_counter() - t
            figures["batch"][f"read_ahead={mode}"] = {"wall_s": round(wall, 2),
                                                      "s_per_case": round(wall / args.cases, 3),
                                                      "counts": report.counts}
            print(f"read_ahead={mode}: {args.cases} cases in {wall:.1f} s, {wall / args.cases:.2f} s a case "
                  f"({report.counts})", flush=True)
        cmd = [sys.executable, "-m", "infarctsam", "segment", f"{EXAMPLE}_dwi.nii.gz", "--adc",
               f"{EXAMPLE}_adc.nii.gz", "-o", str(work / "single"), "--engine", args.engine, "--device", args.device,
               "--cache-dir", str(cache), "-q"] + (["--no-qc"] if args.no_qc else [])
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        single = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"single case failed: {proc.stderr.strip()}")
        figures["single_case_process_s"] = round(single, 2)
        figures["machine"]["loadavg_after"] = os.getloadavg()
        print(f"single case, whole process: {single:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
