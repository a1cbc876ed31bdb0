"""``infarctsam fit-fusion``: fit the physics fusion head for a trained network and write weights that carry it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infarctsam.errors import ConfigError


@dataclass(frozen=True)
class FusionRun:
    """What to fit the head on.

    Attributes
    ----------
    weights : Path
        The trained network (an infarctsam ``.safetensors``).
    datasets : tuple of Path
        Folders with labelled real cases (DWI, ADC, lesion mask).
    n_isles, n_clinical : int
        Synthetic phantoms with ISLES'22-like and clinical acquisitions (none by default: on the real
        leave-one-out check, adding synthetic phantoms to the real case lowered the held-out Dice).
    seed : int
        Seed of the phantoms and of the voxel sampling.
    l2 : float
        Coefficient penalty of the logistic models.
    """

    weights: Path
    datasets: tuple[Path, ...] = ()
    n_isles: int = 0
    n_clinical: int = 0
    seed: int = 4242
    l2: float = 1e-6


def fit_fusion_run(run: FusionRun, output: str | Path, progress: Any = None) -> dict[str, Any]:
    """Run the network over the cases, fit the head, write ``output``; return what was fitted.

    Returns
    -------
    dict
        ``weights`` (the written path), ``cases`` (names), ``with_adc`` and ``dwi_only`` coefficients.
    """
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.fusion import FEATURES_DWI_ONLY, FEATURES_WITH_ADC
    from infarctsam.train.fusion_data import attach_fusion, dataset_cases, synthetic_cases
    from infarctsam.train.fusion_fit import fit_fusion

    if Path(output).suffix != ".safetensors":
        raise ConfigError(f"output {output} must end in .safetensors")
    if not run.datasets and run.n_isles + run.n_clinical == 0:
        raise ConfigError("fit-fusion needs labelled cases: --data folders or synthetic phantoms")
    engine = SamEngine.from_weights(run.weights)
    net = engine.predictor
    cases = dataset_cases(net, run.datasets, progress) + synthetic_cases(net, run.n_isles, run.n_clinical, run.seed,
                                                                          progress=progress)
    if not any(c.adc is not None for c in cases):
        raise ConfigError("fit-fusion needs at least one labelled case with an ADC")
    head = fit_fusion(cases, l2=run.l2, seed=run.seed)
    about = {
        "cases": [c.name for c in cases],
        "real_datasets": [Path(d).name for d in run.datasets],
        "n_synthetic": {"isles": run.n_isles, "clinical": run.n_clinical},
        "seed": run.seed,
        "l2": run.l2,
        "features_with_adc": list(FEATURES_WITH_ADC),
        "features_dwi_only": list(FEATURES_DWI_ONLY),
        "adc_dropout": "each case fitted twice: with its ADC (with_adc path) and with the ADC dropped (dwi_only)",
    }
    path = attach_fusion(run.weights, head, output, about)
    return {"weights": path, "cases": about["cases"], "with_adc": head.with_adc.tolist(),
            "dwi_only": head.dwi_only.tolist()}


def parse_datasets(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Check that each dataset folder exists."""
    for p in paths:
        if not Path(p).is_dir():
            raise ConfigError(f"dataset folder not found: {p}")
    return tuple(Path(p) for p in paths)
