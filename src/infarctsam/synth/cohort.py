"""Writing a synthetic cohort to disk: BIDS / ISLES'22 layout or a flat folder, with a truth manifest.

BIDS layout (as ISLES'22)::

    OUT/dataset_description.json
    OUT/participants.tsv                  participant_id, age, sex, nihss
    OUT/synth_manifest.json               per case: files, true lesion volume, generator metadata
    OUT/rawdata/sub-synth001/ses-01/dwi/sub-synth001_ses-01_dwi.nii.gz  (+ _dwi.json sidecar)
    OUT/rawdata/sub-synth001/ses-01/dwi/sub-synth001_ses-01_adc.nii.gz
    OUT/derivatives/sub-synth001/ses-01/sub-synth001_ses-01_msk.nii.gz

Flat layout: ``OUT/synth001_dwi.nii.gz``, ``_adc.nii.gz``, ``_mask.nii.gz`` plus the same TSV and manifest.
Case ``i`` of a cohort depends only on ``(seed, i)``, so a larger cohort with the same seed starts with the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.errors import ConfigError
from infarctsam.io.atomic import write_json, write_text
from infarctsam.io.volume import Volume
from infarctsam.io.write import write_like
from infarctsam.synth.config import PhantomConfig
from infarctsam.synth.library import LesionLibrary
from infarctsam.synth.phantom import Phantom, make_phantom

LAYOUTS = ("bids", "flat")


def case_seed(seed: int, index: int) -> int:
    """The phantom seed of case ``index`` of a cohort drawn with ``seed``."""
    child = np.random.SeedSequence(int(seed), spawn_key=(int(index),))  # = SeedSequence(seed).spawn(...)[index]
    return int(child.generate_state(1, dtype=np.uint32)[0])


def synthetic_participant(rng: np.random.Generator, donor: dict[str, Any] | None = None) -> dict[str, Any]:
    """Age, sex and NIHSS: the lesion donor's values where known, otherwise drawn from stroke-cohort-like
    distributions (age ~ N(68, 13) in 20-95, 55 % male, NIHSS negative binomial with mean 8, at most 42)."""
    donor = donor or {}
    age = donor.get("age")
    sex = donor.get("sex")
    nihss = donor.get("nihss")
    if age is None:
        age = float(np.clip(np.round(rng.normal(68.0, 13.0)), 20, 95))
    if sex not in ("M", "F"):
        sex = "M" if rng.random() < 0.55 else "F"
    if nihss is None:
        nihss = float(min(rng.negative_binomial(1.2, 0.13), 42))
    return {"age": int(round(age)), "sex": sex, "nihss": int(round(nihss))}


def write_cohort(outdir: str | Path, n: int, seed: int, config: PhantomConfig | None = None, layout: str = "bids",
                 library: LesionLibrary | None = None, write_brain: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """Generate ``n`` phantoms and write them as a dataset.

    Parameters
    ----------
    outdir : str or Path
        Dataset root (created if needed).
    n : int
        Number of cases.
    seed : int
        Cohort seed (case seeds are derived with :func:`case_seed`).
    config : PhantomConfig, optional
        Phantom ranges (default: the randomised training configuration).
    layout : {'bids', 'flat'}
        Folder layout (module docstring).
    library : LesionLibrary, optional
        Lesion shapes (default: bundled).
    write_brain : bool
        Also write each case's brain mask (``_brainmask`` beside the lesion mask).
    progress : callable, optional
        Called as ``progress(stage, done, total)``: once while the lesion library loads, then after each case.

    Returns
    -------
    list of dict
        One entry per case: ``case_id``, ``seed``, ``dwi``, ``adc``, ``mask`` (paths relative to ``outdir``, POSIX
        style), ``lesion_volume_ml``, the main acquisition facts and the phantom's full ``meta``. The same list is
        saved in ``synth_manifest.json``.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown cohort layout {layout!r} (use 'bids' or 'flat')")
    if n < 1:
        raise ConfigError(f"cohort size must be at least 1, got {n}")
    out = Path(outdir)
    if progress is not None:
        progress("loading the lesion library and template", 0, 0)
    lib = library if library is not None else LesionLibrary.bundled()
    width = max(3, len(str(n)))
    manifest: list[dict[str, Any]] = []
    rows = []
    for i in range(n):
        s = case_seed(seed, i)
        ph = make_phantom(s, config, lib)
        name = f"synth{i + 1:0{width}d}"
        paths = _write_case(out, name, ph, layout, write_brain)
        donor = _donor(lib, ph)
        person = synthetic_participant(np.random.default_rng([int(seed), i, 7]), donor)
        pid = f"sub-{name}" if layout == "bids" else name
        rows.append(f"{pid}\t{person['age']}\t{person['sex']}\t{person['nihss']}")
        entry = {"case_id": pid, "seed": s, **{k: v.relative_to(out).as_posix() for k, v in paths.items()},
                 "lesion_volume_ml": ph.meta["lesion_volume_ml"], "n_lesions": ph.meta["n_lesions"],
                 "adc_unit": ph.meta["adc_unit"], "spacing_mm": ph.meta["spacing_mm"], "shape": ph.meta["shape"],
                 "skull_stripped": ph.meta.get("skull_stripped"), "meta": ph.meta}
        manifest.append(entry)
        if progress is not None:
            progress("writing cases", i + 1, n)
    write_text(out / "participants.tsv", "participant_id\tage\tsex\tnihss\n" + "\n".join(rows) + "\n")
    if layout == "bids":
        desc = {"Name": "infarctsam synthetic DWI/ADC stroke cohort", "BIDSVersion": "1.8.0", "DatasetType": "raw",
                "License": "CC0-1.0 (synthetic; lesion shapes from SOOP, CC0-1.0)",
                "GeneratedBy": [{"Name": "infarctsam.synth", "Description": f"write_cohort(n={n}, seed={seed})"}]}
        write_json(out / "dataset_description.json", desc)
        write_json(out / "derivatives" / "dataset_description.json",
                   {**desc, "DatasetType": "derivative", "Name": "infarctsam synthetic lesion masks"})
    write_json(out / "synth_manifest.json", {"seed": int(seed), "n": n, "layout": layout, "cases": manifest})
    return manifest


def _donor(lib: LesionLibrary, ph: Phantom) -> dict[str, Any] | None:
    ids = ph.meta.get("lesion_ids") or []
    if not ids:
        return None
    base = ids[0].split(":")[0]
    hits = np.nonzero(lib.ids == base)[0]
    return lib.donor(int(hits[0])) if len(hits) else None


def _write_case(out: Path, name: str, ph: Phantom, layout: str, write_brain: bool) -> dict[str, Path]:
    if layout == "bids":
        sub = f"sub-{name}"
        raw = out / "rawdata" / sub / "ses-01" / "dwi"
        der = out / "derivatives" / sub / "ses-01"
        stem = f"{sub}_ses-01"
        paths = {"dwi": raw / f"{stem}_dwi.nii.gz", "adc": raw / f"{stem}_adc.nii.gz",
                 "mask": der / f"{stem}_msk.nii.gz"}
        if write_brain:
            paths["brain"] = der / f"{stem}_brainmask.nii.gz"
        sidecar = {"DiffusionBValue": ph.meta.get("b_value", 1000.0), "Synthetic": True,
                   "SliceThickness": ph.meta.get("slice_thickness_mm"), "ADCUnit": ph.meta.get("adc_unit")}
        write_json(raw / f"{stem}_dwi.json", sidecar)
    else:
        paths = {"dwi": out / f"{name}_dwi.nii.gz", "adc": out / f"{name}_adc.nii.gz",
                 "mask": out / f"{name}_mask.nii.gz"}
        if write_brain:
            paths["brain"] = out / f"{name}_brainmask.nii.gz"
    ref = Volume(ph.dwi.data, ph.dwi.affine, header=ph.dwi.header)
    dwi = ph.dwi.data
    integer = bool(ph.meta.get("dwi_integer")) and float(np.abs(dwi).max(initial=0.0)) < 32767
    write_like(ref, dwi, paths["dwi"], dtype="int16" if integer else "float32")
    write_like(ref, ph.adc.data, paths["adc"], dtype="float32")
    write_like(ref, ph.lesion.data, paths["mask"], dtype="uint8")
    if write_brain:
        write_like(ref, ph.brain.data, paths["brain"], dtype="uint8")
    return paths
