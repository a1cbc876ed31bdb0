"""Cases for fitting the fusion head, and writing a weights file that carries it.

The network runs over each labelled case exactly as at inference (same preprocessing, same predictor), and its
probability is kept with the contrast maps and the label (:class:`~infarctsam.train.fusion_fit.FusionCase`).
Labelled real cases come from dataset folders (DWI + ADC + lesion mask, found as ``infarctsam segment`` finds a
batch); synthetic cases from :func:`infarctsam.synth.make_phantom` with ISLES'22-like and clinical acquisitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.errors import InputError
from infarctsam.train.fusion_fit import FusionCase

Progress = Callable[[str], None]


def _case(name: str, net: Any, dwi: Any, adc: Any, label: np.ndarray) -> FusionCase:
    from infarctsam.preprocess import preprocess

    pre = preprocess(dwi, adc)
    prob = net.predict(pre)
    return FusionCase(name, prob, pre.dwi, pre.brain, pre.spacing, pre.adc, pre.reorient.to_canonical(label > 0))


def dataset_cases(net: Any, roots: Sequence[str | Path], progress: Progress | None = None) -> list[FusionCase]:
    """The labelled cases (those with a lesion mask) of dataset folders, run through ``net``.

    Parameters
    ----------
    net : object
        Anything with ``predict(Preprocessed) -> probability`` (the network's predictor, without fusion).
    roots : sequence of path
        Dataset roots or flat folders.
    progress : callable, optional
        Called with each case name.

    Returns
    -------
    list of FusionCase
    """
    from infarctsam.io.dataset import find_cases
    from infarctsam.io.dwi import load_adc, load_dwi
    from infarctsam.io.volume import read_volume

    out = []
    for root in roots:
        for case in find_cases(root):
            if case.mask is None:
                continue
            dwi, _ = load_dwi(case.dwi)
            adc = load_adc(case.adc, dwi) if case.adc is not None else None
            label = read_volume(case.mask)
            if label.spatial_shape != dwi.spatial_shape:
                raise InputError(f"{case.mask.name}: the lesion mask is not on the DWI grid")
            out.append(_case(case.case_id, net, dwi, adc, np.nan_to_num(label.data).reshape(dwi.shape) > 0))
            if progress:
                progress(case.case_id)
    return out


def synthetic_cases(net: Any, n_isles: int, n_clinical: int, seed: int, library: Any = None,
                    progress: Progress | None = None) -> list[FusionCase]:
    """Synthetic phantoms (ISLES'22-like and clinical acquisitions, with ADC) run through ``net``."""
    from infarctsam.io.volume import Volume
    from infarctsam.synth import PhantomConfig, make_phantom

    out = []
    presets = [("isles", PhantomConfig.isles_like(), n_isles), ("clinical", PhantomConfig.clinical(), n_clinical)]
    for k, (name, cfg, n) in enumerate(presets):
        for i in range(n):
            ph = make_phantom(seed + 1000 * k + i, cfg, library)
            adc = Volume(ph.adc.data.astype(np.float32) * float(ph.meta["adc_to_1e-6"]), ph.adc.affine)
            out.append(_case(f"synth-{name}-{i:03d}", net, ph.dwi, adc, ph.lesion.data > 0))
            if progress:
                progress(out[-1].name)
    return out


def attach_fusion(weights: str | Path, head: Any, output: str | Path, about: dict[str, Any]) -> Path:
    """Write ``output`` (.safetensors + card): the network tensors of ``weights`` plus the fusion head.

    Parameters
    ----------
    weights : path
        An infarctsam ``.safetensors`` file (its own fusion head, if any, is replaced).
    head : FusionHead
        The fitted head.
    output : path
        The new ``.safetensors`` file.
    about : dict
        How the head was fitted (case names, counts, seed); stored under ``training.fusion`` in the card. Names
        only: no machine paths.

    Returns
    -------
    Path
        The written file.
    """
    import torch

    from infarctsam.model.weights_format import FUSION_PREFIX, load_weights, save_weights
    from infarctsam.train.export import portable_names

    state, card = load_weights(weights)
    state = {k: v for k, v in state.items() if not k.startswith(FUSION_PREFIX)}
    state.update({k: torch.from_numpy(v.astype(np.float32)) for k, v in head.to_tensors().items()})
    training = portable_names({k: v for k, v in (card.training or {}).items() if k != "fusion"})
    training["fusion"] = portable_names(about)
    note = "Carries a physics fusion head (DWI/ADC contrast with the network's output)."
    notes = card.notes if note in (card.notes or "") else f"{card.notes or ''} {note}".strip()
    new_card = card.model_copy(update={"training": training, "base_weights": portable_names(card.base_weights),
                                       "notes": notes})
    return save_weights(output, state, new_card, half=False)
