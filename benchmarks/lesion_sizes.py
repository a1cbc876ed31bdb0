"""Lesion sizes a training configuration holds, against the labelled real cases' lesions.

    python benchmarks/lesion_sizes.py configs/default_model.yaml

For every synthetic source of the configuration, the lesions its phantoms draw (the same seeds as training, sizes in
MNI space, mL: real heads are 0.6-1.0x that volume, ``head_scale``); for every real labelled case (the
configuration's ``dataset`` sources and the other labelled ISLES'22 case), its expert mask's connected lesions
(26-connectivity, mL). Prints one table of counts per size bin; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BINS = (0.0, 0.05, 0.2, 0.5, 1.0, 5.0, 20.0, float("inf"))
REAL = {"0009": REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001_msk.nii.gz",
        "0003": REPO.parent / "shared" / "data" / "isles22-sub-strokecase0003"
        / "sub-strokecase0003_ses-0001_msk.nii.gz"}


def synthetic_sizes(config: Path) -> dict[str, list[float]]:
    """Lesion volumes (MNI mL) drawn by each synthetic source of a training configuration, source by source."""
    from infarctsam.synth.phantom import choose_lesions
    from infarctsam.train.config import load_config
    from infarctsam.train.data import CaseLoader, collect_cases

    cfg = load_config(config)
    loader = CaseLoader(cfg, Path(cfg.case_cache) if cfg.case_cache else None)
    out: dict[str, list[float]] = {}
    for spec in collect_cases(cfg):
        src = cfg.data[spec.source]
        if src.kind == "dataset":
            continue
        name = f"{spec.source}: {src.kind} {src.preset}" + (" emboli" if src.phantom.get("p_shower", 0) > 0.3 else "")
        lib = loader.library(src.path)
        rng = np.random.default_rng(spec.seed)
        lesions = choose_lesions(rng, src.phantom_config(), lib)
        out.setdefault(name, []).extend(sample.volume_ml for sample, _ in lesions)
    return out


def real_sizes(path: Path) -> list[float]:
    """Connected lesions of an expert mask, mL."""
    import nibabel as nib
    from scipy import ndimage as ndi

    img = nib.load(str(path))
    mask = np.asarray(img.dataobj) > 0
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    voxel_ml = float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0
    return [float(c) * voxel_ml for c in np.bincount(labels.ravel())[1:]]


def histogram(volumes: list[float]) -> list[int]:
    """Counts per size bin (:data:`BINS`)."""
    return np.histogram(np.asarray(volumes, float), bins=np.asarray(BINS))[0].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = {name: v for name, v in synthetic_sizes(args.config).items()}
    rows.update({f"real ISLES'22 {k}": real_sizes(p) for k, p in REAL.items() if p.is_file()})
    heads = [f"{a:g}-{b:g}" if b != float("inf") else f">{a:g}" for a, b in zip(BINS[:-1], BINS[1:], strict=True)]
    print("| source | lesions | " + " | ".join(f"{h} mL" for h in heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for name, v in rows.items():
        print(f"| {name} | {len(v)} | " + " | ".join(str(c) for c in histogram(v)) + " |")
    if args.json:
        args.json.write_text(json.dumps({k: sorted(v) for k, v in rows.items()}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
