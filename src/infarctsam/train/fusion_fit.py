"""Fitting the physics fusion head (:mod:`infarctsam.model.fusion`) on labelled cases.

Every case contributes to both paths: once with its ADC (the ``with_adc`` coefficients) and once with the ADC
dropped (the ``dwi_only`` coefficients). Voxels are sampled per case: every lesion voxel, every voxel the network
or the DWI contrast finds suspicious, and a random share of the remaining brain, each sampled voxel weighted by the
inverse of its sampling rate so the fitted log-likelihood is that of the whole brain. Each case then gets the same
total weight, so a 160 mL infarct does not outweigh a 1 mL one. The model is an L2-regularised logistic regression
fitted with L-BFGS (:func:`scipy.optimize.minimize`). Its intercept is then shifted so that the engine's fixed
threshold of 0.5 falls where the fitting cases' mean Dice is highest (a calibrated probability's best Dice
threshold is usually below 0.5, most of all for small lesions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infarctsam.model.fusion import FusionHead, fusion_features


@dataclass
class FusionCase:
    """One labelled case on the canonical grid, with the network's probability.

    Attributes
    ----------
    name : str
        Identifier (for logs).
    prob : numpy.ndarray
        The network's lesion probability.
    dwi : numpy.ndarray
        Normalised DWI.
    brain : numpy.ndarray
        Boolean brain mask.
    spacing : tuple of float
        Voxel size in mm.
    adc : numpy.ndarray or None
        ADC in x10^-6 mm^2/s.
    label : numpy.ndarray
        Boolean lesion mask.
    """

    name: str
    prob: np.ndarray
    dwi: np.ndarray
    brain: np.ndarray
    spacing: tuple[float, float, float]
    adc: np.ndarray | None
    label: np.ndarray


def fit_logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = 1e-6) -> np.ndarray:
    """Weighted, L2-regularised logistic regression; returns coefficients with the intercept last.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, F)`` features.
    y : numpy.ndarray
        ``(n,)`` labels in {0, 1}.
    weight : numpy.ndarray
        ``(n,)`` non-negative sample weights.
    l2 : float
        Penalty on the coefficients (not the intercept), relative to the total weight.

    Returns
    -------
    numpy.ndarray
        ``(F + 1,)`` coefficients.
    """
    from scipy.optimize import minimize

    xa = np.hstack([x.astype(np.float64), np.ones((x.shape[0], 1))])
    yw = y.astype(np.float64)
    w = weight.astype(np.float64) / max(float(weight.sum()), 1e-12)
    pen = np.r_[np.full(x.shape[1], l2), 0.0]

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = xa @ beta
        # log(1 + exp(z)) - y z, computed stably
        nll = np.logaddexp(0.0, z) - yw * z
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        grad = xa.T @ (w * (p - yw)) + 2 * pen * beta
        return float(w @ nll + pen @ beta**2), grad

    res = minimize(loss, np.zeros(xa.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x


def _sample(case: FusionCase, feats: np.ndarray, rng: np.random.Generator, background_rate: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = case.label[case.brain]
    suspicious = (case.prob[case.brain] > 0.05) | (feats[:, 1] > np.log(1.2)) | y
    keep = suspicious | (rng.random(y.size) < background_rate)
    weight = np.where(suspicious, 1.0, 1.0 / background_rate)[keep]
    weight = weight / weight.sum()
    return feats[keep], y[keep].astype(np.float64), weight


def fit_fusion(cases: Sequence[FusionCase], l2: float = 1e-6, background_rate: float = 0.05, seed: int = 0
               ) -> FusionHead:
    """Fit both paths of the fusion head.

    Parameters
    ----------
    cases : sequence of FusionCase
        Labelled cases; those without an ADC serve the DWI-only path only.
    l2 : float
        Coefficient penalty.
    background_rate : float
        Share of the unsuspicious brain voxels sampled per case.
    seed : int
        Sampling seed.

    Returns
    -------
    FusionHead
    """
    if not cases:
        raise ValueError("fit_fusion needs at least one labelled case")
    rng = np.random.default_rng(seed)
    parts: dict[bool, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {True: [], False: []}
    full: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
    for case in cases:
        for use_adc in (True, False):
            if use_adc and case.adc is None:
                continue
            feats = fusion_features(case.prob, case.dwi, case.brain, case.spacing, case.adc if use_adc else None)
            parts[use_adc].append(_sample(case, feats, rng, background_rate))
            full[use_adc].append((feats, case.label[case.brain]))
    coefs = {}
    for use_adc, chunks in parts.items():
        if not chunks:
            raise ValueError("fit_fusion needs at least one case with an ADC")
        x, y, w = (np.concatenate(c) for c in zip(*chunks, strict=True))
        beta = fit_logistic(x, y, w, l2=l2)
        t = best_threshold(beta, full[use_adc])
        beta[-1] -= np.log(t / (1 - t))  # 0.5 on the shifted model is t on the fitted one
        coefs[use_adc] = beta
    return FusionHead(with_adc=coefs[True], dwi_only=coefs[False])


def best_threshold(beta: np.ndarray, cases: Sequence[tuple[np.ndarray, np.ndarray]],
                   grid: Sequence[float] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)) -> float:
    """The probability threshold with the highest mean voxel Dice over the fitting cases (ties: the highest)."""
    scores = []
    for t in grid:
        dice = []
        for feats, label in cases:
            pred = feats @ beta[:-1] + beta[-1] >= np.log(t / (1 - t))
            denom = int(pred.sum()) + int(label.sum())
            dice.append(1.0 if denom == 0 else 2.0 * float((pred & label).sum()) / denom)
        scores.append(float(np.mean(dice)))
    best = max(range(len(grid)), key=lambda i: (round(scores[i], 4), grid[i]))
    return float(grid[best])
