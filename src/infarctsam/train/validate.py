"""Validation on cached slices: per-case Dice and volume error on the model's slice grid."""

from __future__ import annotations

import numpy as np


def validate_cache(model, cache, pre_neck: bool, memory: bool, threshold: float = 0.5) -> dict[str, float]:
    """Decode every validation case from its cached features and score it.

    Parameters
    ----------
    model : PromptFreeSam
        The model (in eval mode).
    cache : SliceCache
        Validation slices (all brain slices of each case).
    pre_neck : bool
        The cache holds trunk features before the neck.
    memory : bool
        Decode with memory (both passes) instead of slice by slice.
    threshold : float
        Probability threshold.

    Returns
    -------
    dict
        ``dice`` (mean over cases; both empty counts 1), ``dice_lesion_cases`` (cases with a lesion only),
        ``avd_fraction`` (mean absolute volume difference relative to the reference, lesion cases), ``n_cases``.
    """
    from infarctsam.train.steps import decode_cached_case

    dices, lesion_dices, avd = [], [], []
    for case in cache.cases:
        rows = slice(case["start"], case["start"] + case["n"])
        probs = decode_cached_case(model, cache.feats[rows], cache.images[rows], pre_neck, memory)
        pred = probs >= threshold
        ref = np.asarray(cache.masks[rows]) > 0
        denom = pred.sum() + ref.sum()
        d = 1.0 if denom == 0 else 2.0 * (pred & ref).sum() / denom
        dices.append(d)
        if ref.any():
            lesion_dices.append(d)
            avd.append(abs(int(pred.sum()) - int(ref.sum())) / ref.sum())
    return {
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "dice_lesion_cases": float(np.mean(lesion_dices)) if lesion_dices else float("nan"),
        "avd_fraction": float(np.mean(avd)) if avd else float("nan"),
        "n_cases": len(dices),
    }
