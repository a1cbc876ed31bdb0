"""Benchmark ``infarctsam segment``: per-case wall time and peak memory per engine, and cohort throughput.

Run by hand (not part of the test suite)::

    python benchmarks/bench_segment.py                 # writes benchmarks/results.md
    python benchmarks/bench_segment.py --cohort-n 16 --engines threshold

Cases: the bundled real ISLES'22 case, an ISLES-size synthetic case (112x112x73, 2 mm) and a clinical-size synthetic
case (256x256x25, 0.9x0.9x5 mm), both from :mod:`infarctsam.synth`. Each measurement runs in a fresh Python process;
its peak resident memory is ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a tiny launcher process of which it is the
only child (see :func:`measure_case`). Throughput runs the ``infarctsam segment`` command line on a synthetic
ISLES-size cohort: one process, Dask ``--scheduler local:N`` and ``--shard i/N`` processes side by side, end to end
(process start, engine load, all cases).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from infarctsam.api import segment
from infarctsam.engines import load_engine
t1 = time.perf_counter()
engine = load_engine(sys.argv[1], weights=sys.argv[5] or None)
t2 = time.perf_counter()
times, result = [], None
for k in range(int(sys.argv[6])):
    s = time.perf_counter()
    result = segment(sys.argv[2], f"{sys.argv[4]}/run{k}", adc=sys.argv[3] or None, engine=engine)
    times.append(time.perf_counter() - s)
threads = None
if "torch" in sys.modules:
    threads = sys.modules["torch"].get_num_threads()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "times": times, "volume_ml": result.stats.volume_ml,
                  "engine": result.summary["engine"], "torch_threads": threads}))
"""

LAUNCHER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)
wall = time.perf_counter() - t0
if proc.returncode != 0:
    sys.exit(proc.stderr[-2000:])
scale = 1024 if sys.platform == "darwin" else 1
print(json.dumps({"stdout": proc.stdout, "wall_s": wall,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale}))
"""


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python, torch version and threads of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
                break
    except OSError:
        pass
    import torch

    from infarctsam._version import __version__

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"CPU": cpu, "cores (usable)": f"{os.cpu_count()} ({affinity})", "RAM": ram,
            "OS": f"{platform.system()} {platform.release()}", "Python": platform.python_version(),
            "torch": f"{torch.__version__} ({torch.get_num_threads()} threads, "
                     f"CUDA {'yes' if torch.cuda.is_available() else 'no'})",
            "infarctsam": __version__}


def engine_available(name: str, weights: str | None) -> str | None:
    """None when the engine loads here, else the one-line reason."""
    from infarctsam.engines import load_engine

    try:
        load_engine(name, weights=weights)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available" for the benchmark
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
    return None


def synthetic_cases(work: Path) -> dict[str, tuple[Path, Path]]:
    """One ISLES-size and one clinical-size synthetic case (DWI, ADC)."""
    from infarctsam.synth import PhantomConfig, write_cohort

    out = {}
    for label, config, seed in (("synthetic ISLES-size", PhantomConfig.isles_like(), 11),
                                ("synthetic clinical-size", PhantomConfig.clinical(), 12)):
        folder = work / label.split()[1]
        entry = write_cohort(folder, 1, seed, config=config, layout="flat")[0]
        out[label] = (folder / entry["dwi"], folder / entry["adc"])
    return out


def measure_case(engine: str, weights: str | None, dwi: Path, adc: Path | None, work: Path,
                 repeats: int) -> dict[str, float]:
    """Run one case in a fresh process; wall time, the child's own timings and its peak RSS (MiB).

    Linux charges a child with the resident memory of the process it was forked from (kept at ``exec``), so a child
    of this (large) benchmark process would report at least this process's peak. The case therefore runs as the only
    child of a tiny launcher, which reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after waiting for it.
    """
    out = Path(tempfile.mkdtemp(dir=work, prefix="case-"))
    args = [sys.executable, "-c", CHILD, engine, str(dwi), str(adc or ""), str(out), weights or "", str(repeats)]
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} on {dwi.name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    launched = json.loads(proc.stdout.strip().splitlines()[-1])
    child = json.loads(launched["stdout"].strip().splitlines()[-1])
    return {**child, "wall_s": launched["wall_s"], "peak_rss_mib": launched["maxrss_kib"] / 1024}


def measure_throughput(engine: str, weights: str | None, cohort: Path, n: int, work: Path) -> list[dict[str, object]]:
    """Cases per minute of the command line on the cohort: 1 process, local Dask 1 and 2 workers, 2 shards."""
    base = [sys.executable, "-m", "infarctsam", "segment", str(cohort), "--engine", engine, "-q"]
    if weights:
        base += ["--weights", weights]
    modes = [("1 process", 1, [[]]), ("Dask local:1", 1, [["--scheduler", "local:1"]]),
             ("Dask local:2", 2, [["--scheduler", "local:2"]]), ("2 shards (2 processes)", 2,
                                                                   [["--shard", "0/2"], ["--shard", "1/2"]])]
    rows = []
    for label, workers, variants in modes:
        out = Path(tempfile.mkdtemp(dir=work, prefix="cohort-"))
        t0 = time.perf_counter()
        procs = [subprocess.Popen([*base, "-o", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for extra in variants]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        if any(codes):
            raise RuntimeError(f"{label}: exit codes {codes}: {procs[0].stderr.read()[-400:]}")
        rows.append({"engine": engine, "mode": label, "workers": workers, "cases": n, "wall_s": wall,
                     "cases_per_min": 60.0 * n / wall})
    return rows


def markdown(info: dict[str, str], cases: list[dict[str, object]], throughput: list[dict[str, object]],
             missing: dict[str, str]) -> str:
    """The results as Markdown."""
    lines = ["# infarctsam segment benchmark", "", f"Run on {time.strftime('%Y-%m-%d')}.", "",
             "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in info.items()], ""]
    for name, why in missing.items():
        lines += [f"Engine `{name}`: not available ({why}).", ""]
    lines += ["## Per case (fresh process each)", "",
              "`first` is the first case after the engine is loaded, `next` the median of the following ones "
              "(warm); `process` is the whole child process (Python start, imports, engine load, all repeats); "
              "`peak RSS` is the child's maximum resident memory.", "",
              "| engine | case | shape | voxel (mm) | engine load (s) | first (s) | next (s) | process (s) | "
              "peak RSS (MiB) | volume (mL) |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in cases:
        nxt = f"{r['next_s']:.2f}" if r["next_s"] is not None else "-"
        lines.append(f"| {r['engine']} | {r['case']} | {r['shape']} | {r['voxel']} | {r['load_s']:.2f} | "
                     f"{r['first_s']:.2f} | {nxt} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['volume_ml']:.2f} |")
    if throughput:
        lines += ["", "## Cohort throughput (command line, end to end)", "",
                  "| engine | mode | workers | cases | wall (s) | cases/min |", "|---|---|---:|---:|---:|---:|"]
        for r in throughput:
            lines.append(f"| {r['engine']} | {r['mode']} | {r['workers']} | {r['cases']} | {r['wall_s']:.1f} | "
                         f"{r['cases_per_min']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the Markdown and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="threshold,sam", help="comma-separated engines to try")
    parser.add_argument("--weights", default=None, help="weights for the sam engine (default: the installed model)")
    parser.add_argument("--repeats", type=int, default=3, help="cases segmented per fresh process (>= 1)")
    parser.add_argument("--cohort-n", type=int, default=8, help="synthetic ISLES-size cases for throughput (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.md")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("nibabel").setLevel(logging.ERROR)
    info = machine()
    engines, missing = [], {}
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        why = engine_available(name, args.weights if name == "sam" else None)
        if why is None:
            engines.append(name)
        else:
            missing[name] = why
            print(f"engine {name}: not available ({why})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="infarctsam-bench-") as tmp:
        work = Path(tmp)
        inputs = {"real ISLES'22 sub-strokecase0009": (Path(f"{EXAMPLE}_dwi.nii.gz"), Path(f"{EXAMPLE}_adc.nii.gz")),
                  **synthetic_cases(work)}
        rows = []
        for engine in engines:
            weights = args.weights if engine == "sam" else None
            for label, (dwi, adc) in inputs.items():
                import nibabel as nib

                img = nib.load(str(dwi))
                m = measure_case(engine, weights, dwi, adc, work, max(1, args.repeats))
                times = m["times"]
                rest = sorted(times[1:])
                rows.append({"engine": m["engine"], "case": label, "shape": "x".join(map(str, img.shape[:3])),
                             "voxel": "x".join(f"{z:.2g}" for z in img.header.get_zooms()[:3]),
                             "load_s": m["load_s"], "first_s": times[0],
                             "next_s": rest[len(rest) // 2] if rest else None, "wall_s": m["wall_s"],
                             "peak_rss_mib": m["peak_rss_mib"], "volume_ml": m["volume_ml"]})
                print(f"{engine:9s} {label:34s} first {times[0]:6.2f} s  peak {m['peak_rss_mib']:6.0f} MiB",
                      file=sys.stderr)
        throughput = []
        if args.cohort_n > 0:
            from infarctsam.synth import PhantomConfig, write_cohort

            cohort = work / "cohort"
            write_cohort(cohort, args.cohort_n, 5, config=PhantomConfig.isles_like(), layout="bids")
            for engine in engines:
                throughput += measure_throughput(engine, args.weights if engine == "sam" else None, cohort,
                                                 args.cohort_n, work)
                print(f"{engine}: throughput measured", file=sys.stderr)
    text = markdown(info, rows, throughput, missing)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
