"""Physics fusion: the network's lesion probability combined with the contrast that defines an infarct.

The SAM network sees three DWI-derived channels. An acute or subacute infarct is bright on DWI *and* dark on the ADC
map; T2 shine-through, susceptibility artefacts at the skull base and normal bright structures are bright on DWI
only, and they are mostly symmetric. The fusion head is a voxel-wise logistic model over

===================  ===============================================================================
``sam_logit``        the network's logit (its probability, clipped to [1e-4, 1 - 1e-4])
``log_dwi_ratio``    log of the DWI over the local normal-tissue level
``log_asymmetry``    log of the DWI over its left-right mirror image
``log_asym_local``   log of the DWI over the brightest mirror-side value within 6 mm (a symmetric artefact that
                     the mirror misses by a few millimetres of head tilt still finds its twin)
``depth``            distance from the brain surface, log(1 + mm): skull-base artefacts hug the surface
``adc_norm``         ADC in 10^-3 mm^2/s minus 0.8 (normal parenchyma is about 0.7-0.9)
``adc_low``          how far the ADC is below 620 x10^-6 mm^2/s (RAPID's core threshold), in 10^-4 mm^2/s, >= 0
``log_adc_asym``     log of the ADC over its mirror image (an infarct's ADC is below the other side's)
``sam_x_adc_low``    ``sam_logit`` x ``adc_low``
===================  ===============================================================================

with two sets of coefficients: one used when an ADC is given, one for DWI alone (the ADC features are then absent).
Both are fitted on the same cases, once with the ADC and once with the ADC dropped, so a case without ADC is not
out of distribution. The coefficients are stored as tensors ``fusion.with_adc`` and ``fusion.dwi_only`` in the
model's safetensors file, covered by its checksum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.preprocess.contrast import asymmetry, mirror_x, smooth_in_mask, tissue_ratio

FEATURES_WITH_ADC = ("sam_logit", "log_dwi_ratio", "log_asymmetry", "log_asym_local", "depth", "adc_norm", "adc_low",
                     "log_adc_asym", "sam_x_adc_low")
FEATURES_DWI_ONLY = FEATURES_WITH_ADC[:5]
TENSOR_KEYS = ("fusion.with_adc", "fusion.dwi_only")


def _logit(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float32), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def depth_mm(brain: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) of each brain voxel to the nearest voxel outside the brain: ``distance_transform_edt`` computed
    on the brain's bounding box widened by one voxel where the array allows. That margin lies outside the brain,
    and the nearest outside voxel of any brain voxel is never farther than the margin (clamp it into the box: every
    coordinate gets closer), so the result equals the whole-array transform, on a fraction of its memory."""
    from scipy import ndimage as ndi

    out = np.zeros(brain.shape, np.float64)
    boxes = ndi.find_objects(brain.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return out
    box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(boxes[0], brain.shape, strict=True))
    out[box] = ndi.distance_transform_edt(brain[box], sampling=spacing)
    return out


def fusion_features(prob: np.ndarray, dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                    adc: np.ndarray | None, maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Feature maps of the brain voxels.

    Parameters
    ----------
    prob : numpy.ndarray
        The network's lesion probability on the canonical grid.
    dwi : numpy.ndarray
        Normalised DWI (normal tissue ~1), canonical grid.
    brain : numpy.ndarray
        Boolean brain mask.
    spacing : tuple of float
        Voxel size in mm.
    adc : numpy.ndarray or None
        ADC in x10^-6 mm^2/s on the same grid, or None.
    maps : tuple of numpy.ndarray, optional
        The DWI's tissue ratio and asymmetry when already computed (:meth:`Preprocessed.contrast_maps`).

    Returns
    -------
    numpy.ndarray
        ``(n_brain_voxels, F)`` float32, F = 9 with an ADC and 5 without (column order as ``FEATURES_*``).
    """
    from scipy import ndimage as ndi

    sam = _logit(prob)[brain]
    if maps is None:
        maps = tissue_ratio(dwi, brain, spacing), asymmetry(dwi, brain, spacing)
    ratio_map, asym_map = maps
    ratio, asym = ratio_map[brain], asym_map[brain]
    xs = np.nonzero(brain)[0]
    centre = float(xs.mean()) if xs.size else (dwi.shape[0] - 1) / 2
    smooth = smooth_in_mask(dwi, brain, 2.0, spacing)
    reach = [max(1, int(round(6.0 / s))) * 2 + 1 for s in spacing[:2]] + [3]
    twin = ndi.maximum_filter(mirror_x(smooth, centre), size=reach)
    depth = depth_mm(brain, spacing)
    cols = [sam, np.log(np.maximum(ratio, 1e-3)), np.log(np.maximum(asym, 1e-3)),
            np.log(np.maximum(smooth[brain], 1e-3) / np.maximum(twin[brain], 0.2)), np.log1p(depth[brain])]
    if adc is not None:
        adc_s = smooth_in_mask(np.clip(adc, 0, 4000), brain, 2.0, spacing)
        adc_m = np.maximum(mirror_x(adc_s, centre), 50.0)
        a = adc_s[brain]
        low = np.clip((620.0 - a) / 100.0, 0.0, None)
        cols += [a / 1000.0 - 0.8, low, np.log(np.maximum(a, 50.0) / adc_m[brain]), sam * low]
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass(frozen=True)
class FusedLogit:
    """The fusion head's logit at each brain voxel as ``slope * sam_logit + offset`` (float64 arrays in the order of
    ``brain``'s voxels), from :meth:`FusionHead.linear_in_network`."""

    brain: np.ndarray
    slope: np.ndarray
    offset: np.ndarray

    def fuse(self, prob: np.ndarray) -> np.ndarray:
        """Fused lesion probability on the canonical grid (0 outside the brain) of the network's ``prob``."""
        out = np.zeros(prob.shape, dtype=np.float32)
        if self.slope.size:
            z = self.slope * _logit(prob[self.brain]) + self.offset
            out[self.brain] = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return out

    def slices_reaching(self, level: float):
        """``select(prob) -> bool per axial slice``: the slices where the fusion of ``prob`` reaches ``level``
        somewhere (for :meth:`~infarctsam.runtime.predictor.VolumePredictor.predict`'s ``select_volume``)."""
        def select(prob: np.ndarray) -> np.ndarray:
            return (self.fuse(prob) >= level).any(axis=(0, 1))

        return select


@dataclass(frozen=True)
class FusionHead:
    """Coefficients of the two logistic models (last entry of each: the intercept).

    Attributes
    ----------
    with_adc : numpy.ndarray
        ``(len(FEATURES_WITH_ADC) + 1,)`` coefficients used when an ADC is given.
    dwi_only : numpy.ndarray
        ``(len(FEATURES_DWI_ONLY) + 1,)`` coefficients used for DWI alone.
    """

    with_adc: np.ndarray
    dwi_only: np.ndarray

    def __post_init__(self) -> None:
        if self.with_adc.shape != (len(FEATURES_WITH_ADC) + 1,) or self.dwi_only.shape != (len(FEATURES_DWI_ONLY) + 1,):
            raise ValueError(f"fusion coefficients have shapes {self.with_adc.shape}, {self.dwi_only.shape}; "
                             f"expected ({len(FEATURES_WITH_ADC) + 1},), ({len(FEATURES_DWI_ONLY) + 1},)")

    def coefficients(self, with_adc: bool) -> np.ndarray:
        """The coefficient vector of one path."""
        return self.with_adc if with_adc else self.dwi_only

    def predict(self, prob: np.ndarray, dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                adc: np.ndarray | None, maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Fused lesion probability on the canonical grid (0 outside the brain); arguments as
        :func:`fusion_features`."""
        return self.linear_in_network(dwi, brain, spacing, adc, maps).fuse(prob)

    def linear_in_network(self, dwi: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                          adc: np.ndarray | None, maps: tuple[np.ndarray, np.ndarray] | None = None) -> FusedLogit:
        """The fused logit of every brain voxel as a linear function of the network's logit, computed from the images
        alone, before the network runs: the features other than ``sam_logit`` do not depend on it, and
        ``sam_x_adc_low`` is ``sam_logit`` times one of them. Arguments as :func:`fusion_features`."""
        w = self.coefficients(adc is not None)
        if not brain.any():
            return FusedLogit(brain, np.zeros(0), np.zeros(0))
        feats = fusion_features(np.full(brain.shape, 0.5, np.float32), dwi, brain, spacing, adc, maps)  # logit 0
        offset = feats @ w[:-1] + w[-1]
        slope = np.full(len(feats), w[0])
        if adc is not None:
            slope = slope + w[FEATURES_WITH_ADC.index("sam_x_adc_low")] * feats[:, FEATURES_WITH_ADC.index("adc_low")]
        return FusedLogit(brain, slope, offset)

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The arrays stored in a weights file under ``TENSOR_KEYS``."""
        return {TENSOR_KEYS[0]: self.with_adc.astype(np.float32), TENSOR_KEYS[1]: self.dwi_only.astype(np.float32)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> FusionHead:
        """Rebuild the head from the arrays stored in a weights file."""
        return cls(np.asarray(tensors[TENSOR_KEYS[0]], dtype=np.float64),
                   np.asarray(tensors[TENSOR_KEYS[1]], dtype=np.float64))
