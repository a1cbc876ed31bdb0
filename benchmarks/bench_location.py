"""Seconds of the location stage per case: registration to MNI, arterial territories, location picture.

Run by hand (not part of the test suite)::

    python benchmarks/bench_location.py                 # every real scan (the bundled case alone without ../shared)
    python benchmarks/bench_location.py --repeats 3

All scans go through one process, as a batch does: the first case also pays what a process loads once (the
registration template built from nilearn's MNI152 files, the territory atlas, SimpleITK's and matplotlib's imports),
listed on their own; every case is then timed in its parts: the registration (``register_to_mni``: start pose,
rigid and affine fits, plausibility checks), the territory report and the picture. The lesion mask is the threshold
engine's (the location stage does not depend on the engine's cost). The machine's ``torch.mm`` rate is printed
beside the times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stages import matmul_rate  # noqa: E402  (the sibling benchmark's torch.mm rate)
from real_check import real_scans  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="times each case is located (median reported)")
    args = parser.parse_args()
    clock = time.perf_counter
    t = clock()
    import matplotlib  # noqa: F401
    import SimpleITK  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401

    from infarctsam.location.atlas import load_atlas
    from infarctsam.location.template import registration_template
    once = {"imports (SimpleITK, matplotlib)": clock() - t}
    t = clock()
    registration_template()
    once["registration template (nilearn MNI152, 3 mm)"] = clock() - t
    t = clock()
    atlas = load_atlas()
    once["territory atlas"] = clock() - t

    from infarctsam.api import _silent, post_process, read_case
    from infarctsam.engines import load_engine
    from infarctsam.location.picture import render_location
    from infarctsam.location.register import register_to_mni
    from infarctsam.location.report import location_report

    engine = load_engine("threshold")
    work = Path(tempfile.mkdtemp(prefix="infarctsam-location-"))
    rows = []
    for scan in real_scans():
        prepared = read_case(scan["dwi"], work / scan["name"], adc=scan.get("adc"), case_id=scan["name"])
        pre = prepared.pre
        mask = post_process(engine, prepared, engine.predict(pre), _silent).mask_canonical > 0
        times: dict[str, list[float]] = {"registration": [], "territories": [], "picture": []}
        for _ in range(args.repeats):
            t = clock()
            reg = register_to_mni(pre.dwi, pre.brain, pre.affine)
            times["registration"].append(clock() - t)
            t = clock()
            report = location_report(mask, pre.affine, reg, atlas)
            times["territories"].append(clock() - t)
            t = clock()
            if reg.scales:
                render_location(pre.dwi, mask, pre.affine, reg, atlas, brain=pre.brain, title=scan["name"],
                                lines=[report["summary"], *reg.warnings])
            times["picture"].append(clock() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((scan["name"], pre.dwi.shape, med, reg.reliable, report["summary"]))
    rates = matmul_rate()
    print(f"torch.mm 2048x2048 here: {rates['fp32']:.0f} GFLOP/s float32\n")
    print("| loaded once per process | seconds |\n|---|---:|")
    for name, seconds in once.items():
        print(f"| {name} | {seconds:.2f} |")
    print("\n| scan | grid | registration (s) | territories (s) | registration + territories (s) | picture (s) | "
          "reliable | location |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for name, shape, med, reliable, summary in rows:
        both = med["registration"] + med["territories"]
        print(f"| {name} | {'x'.join(map(str, shape))} | {med['registration']:.2f} | {med['territories']:.3f} | "
              f"{both:.2f} | {med['picture']:.2f} | {'yes' if reliable else 'no'} | {summary} |")
    both = [m["registration"] + m["territories"] for _, _, m, _, _ in rows]
    print(f"\nregistration + territories per case: median {statistics.median(both):.2f} s, largest {max(both):.2f} s")


if __name__ == "__main__":
    main()
