"""Do the masks of every real scan stay the same? Record them once, change the runtime, compare.

Run by hand (not part of the test suite)::

    python benchmarks/same_masks.py record out/masks-before.npz      # before a change
    python benchmarks/same_masks.py record out/masks-after.npz       # after it
    python benchmarks/same_masks.py compare out/masks-before.npz out/masks-after.npz

Every real scan of :func:`real_check.real_scans` (the bundled ISLES'22 case and, with ``../shared``, the other labelled
case, both JHU ADS scans, the normal slab, the native oblique example and the eight DWI-only ISLES'22 scans) goes
through :func:`infarctsam.api.read_case`, the engine and :func:`infarctsam.api.post_process`, the path of
``infarctsam segment`` up to the written mask. ``record`` stores each scan's mask on the canonical grid with the work
the network did (slices encoded, slices decoded one by one, memory steps: one step decodes a slice of each pass
direction) and the network's seconds; ``compare`` prints, per scan, whether the masks are identical and otherwise
the voxels added and removed, the volume change and the Dice between the two.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_check import real_scans  # noqa: E402  (the sibling benchmark's list of real scans)


def record(path: Path, weights: str | None) -> None:
    """Masks and network work of every real scan, saved to ``path`` (``.npz``; a ``.json`` summary beside it)."""
    import tempfile

    from infarctsam.api import post_process, read_case
    from infarctsam.engines import load_engine

    engine = load_engine("sam", weights=weights)
    masks, rows = {}, []
    work = Path(tempfile.mkdtemp(prefix="infarctsam-masks-"))
    for scan in real_scans():
        counts: dict[str, int] = {}

        def progress(stage: str, done: int, total: int, counts: dict[str, int] = counts) -> None:
            if total:
                counts[stage] = total

        prepared = read_case(scan["dwi"], work / scan["name"], adc=scan.get("adc"), case_id=scan["name"])
        t0 = time.perf_counter()
        prob = engine.predict(prepared.pre, progress)
        seconds = time.perf_counter() - t0
        seg = post_process(engine, prepared, prob, lambda *_: None)
        masks[scan["name"]] = seg.mask_canonical.astype(bool)
        rows.append({"scan": scan["name"], "voxels": int(seg.mask_canonical.sum()), "volume_ml": seg.stats.volume_ml,
                     "lesions": seg.stats.lesion_count, "slices_encoded": counts.get("encoding slices", 0),
                     "memory_steps": counts.get("decoding slices with memory", 0), "network_s": round(seconds, 2)})
        print(json.dumps(rows[-1]), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **masks)
    path.with_suffix(".json").write_text(json.dumps({"engine": engine.info.config, "scans": rows}, indent=1),
                                         encoding="utf-8")


def compare(before: Path, after: Path) -> int:
    """Print the differences between two recordings; 0 when every mask is identical, 1 otherwise."""
    a, b = np.load(before), np.load(after)
    rows_a = {r["scan"]: r for r in json.loads(before.with_suffix(".json").read_text(encoding="utf-8"))["scans"]}
    rows_b = {r["scan"]: r for r in json.loads(after.with_suffix(".json").read_text(encoding="utf-8"))["scans"]}
    print("| scan | identical | voxels before | added | removed | Dice | memory steps before -> after | "
          "network s before -> after |")
    print("|---|---|---|---|---|---|---|---|")
    changed = 0
    for name in a.files:
        if name not in b.files:
            print(f"| {name} | missing | | | | | | |")
            changed += 1
            continue
        x, y = a[name], b[name]
        same = x.shape == y.shape and bool(np.array_equal(x, y))
        added, removed = int((y & ~x).sum()), int((x & ~y).sum())
        dice = 2 * float((x & y).sum()) / max(int(x.sum() + y.sum()), 1)
        ra, rb = rows_a.get(name, {}), rows_b.get(name, {})
        print(f"| {name} | {'yes' if same else 'NO'} | {int(x.sum())} | {added} | {removed} | {dice:.4f} | "
              f"{ra.get('memory_steps')} -> {rb.get('memory_steps')} | {ra.get('network_s')} -> "
              f"{rb.get('network_s')} |")
        changed += not same
    print(f"\n{len(a.files) - changed} of {len(a.files)} masks identical")
    return 1 if changed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="segment every real scan and save the masks")
    rec.add_argument("path", type=Path)
    rec.add_argument("--weights", default=None, help="weights (default: the shipped default model)")
    cmp_ = sub.add_parser("compare", help="compare two recordings")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.path, args.weights)
    else:
        raise SystemExit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
