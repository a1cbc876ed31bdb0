"""Per-territory volume agreement and the cohort by dominant territory, for ``evaluate``.

No registration is run here: a case's mapping to MNI is the one ``infarctsam segment`` recorded in the case JSON
beside a predicted mask (``location.registration.matrix_native_to_mni``). The reference and every method's mask lie
on that DWI's grid, so the same mapping places each of them in the arterial territories. Cases without a reliable
recorded mapping are counted and left out of these tables.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.io.volume import strip_image_suffix

TERRITORIES = ("ACAL", "ACAR", "MCAL", "MCAR", "PCAL", "PCAR", "VBL", "VBR")


def recorded_mapping(mask_path: Path) -> np.ndarray | None:
    """The reliable native-to-MNI matrix in the case JSON written beside a mask by ``segment`` (None if absent)."""
    stem = strip_image_suffix(mask_path.name)
    for cand in (mask_path.with_name(stem.removesuffix("_mask") + ".json"), mask_path.with_name(stem + ".json")):
        if not cand.is_file() or cand.stat().st_size > 10_000_000:
            continue
        try:
            data = json.loads(cand.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        loc = data.get("location") if isinstance(data, dict) else None
        if not isinstance(loc, dict) or not loc.get("reliable"):
            continue
        if (data.get("outputs") or {}).get("mask") not in (None, mask_path.name):
            continue
        matrix = np.asarray((loc.get("registration") or {}).get("matrix_native_to_mni"), dtype=np.float64)
        if matrix.shape == (4, 4) and np.all(np.isfinite(matrix)):
            return matrix
    return None


def _level2_ml(data: np.ndarray, affine: np.ndarray, to_mni: np.ndarray) -> dict[str, float]:
    from infarctsam.location.atlas import lesion_labels, load_atlas
    from infarctsam.location.labels import LEVEL1

    l1, _, ml = lesion_labels(data > 0, affine, to_mni, load_atlas())
    per = np.bincount(l1, weights=ml, minlength=33)
    out = dict.fromkeys(TERRITORIES, 0.0)
    for lab, (_, _, l2) in LEVEL1.items():
        if l2 in out:
            out[l2] += float(per[lab])
    return out


def territory_summary(pairing: Any, methods: list[str], masks: Any) -> dict[str, Any]:
    """Per-territory volumes of the reference and each method, their agreement and the dominant-territory counts.

    Parameters
    ----------
    pairing : Pairing
        Matched files.
    methods : list of str
        Method names.
    masks : callable
        ``masks(path) -> Volume``, the loader the evaluation used (same label rules).

    Returns
    -------
    dict
        ``n_located``, ``n_without_mapping``, ``dominant_counts`` (reference masks: territory name -> cases),
        ``agreement`` (method -> territory -> n, ICC(A,1) with 95 % CI, Bland-Altman bias and limits, mL) and
        ``volumes`` (one row per case and mask).
    """
    from infarctsam.location.labels import level2_label
    from infarctsam.stats import bland_altman, icc

    rows: list[dict[str, Any]] = []
    missing = 0
    for case in pairing.cases:
        mapping = next((m for name in methods if (m := recorded_mapping(Path(pairing.preds[name][case]))) is not None),
                       None)
        if mapping is None:
            missing += 1
            continue
        gt = masks(pairing.gt[case])
        rows.append({"case": case, "mask": "reference", **_level2_ml(gt.data, gt.affine, mapping)})
        for name in methods:
            pred = masks(pairing.preds[name][case])
            rows.append({"case": case, "mask": name, **_level2_ml(pred.data, pred.affine, mapping)})
    refs = {r["case"]: r for r in rows if r["mask"] == "reference"}
    dominant: Counter[str] = Counter()
    for r in refs.values():
        vols = [r[t] for t in TERRITORIES]
        dominant[level2_label(TERRITORIES[int(np.argmax(vols))]) if max(vols) > 0 else "no lesion"] += 1
    agreement: dict[str, Any] = {}
    for name in methods:
        preds = {r["case"]: r for r in rows if r["mask"] == name}
        cases = sorted(refs)
        agreement[name] = {}
        for t in TERRITORIES:
            a = np.array([refs[c][t] for c in cases])
            b = np.array([preds[c][t] for c in cases])
            entry: dict[str, Any] = {"n": len(cases), "reference_ml_mean": float(a.mean()) if len(a) else None}
            if len(cases) >= 3 and (a.any() or b.any()):
                i = icc(np.column_stack([a, b]))["ICC(A,1)"]
                ba = bland_altman(a, b)
                entry.update({"icc_a1": i.value, "icc_a1_ci95": list(i.ci95), "ba_bias_ml": ba.bias,
                              "ba_loa_ml": list(ba.loa)})
            agreement[name][t] = entry
    return {"n_located": len(refs), "n_without_mapping": missing,
            "dominant_counts": dict(sorted(dominant.items(), key=lambda kv: -kv[1])), "agreement": agreement,
            "volumes": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}
