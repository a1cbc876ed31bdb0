"""Python API: segment a DWI into an infarct mask with its volume.

>>> from infarctsam.api import segment
>>> result = segment("sub-01_dwi.nii.gz", "out/", adc="sub-01_adc.nii.gz")  # doctest: +SKIP
>>> result.stats.volume_ml  # doctest: +SKIP

The command line (``infarctsam segment``) is a thin layer over these functions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from infarctsam._version import __version__
from infarctsam.engines.base import Engine
from infarctsam.errors import InputError
from infarctsam.io.hashing import file_sha256
from infarctsam.postprocess import LesionStats

if TYPE_CHECKING:
    from infarctsam.outputs.case import CasePaths


@dataclass
class CaseResult:
    """The result of segmenting one case.

    Attributes
    ----------
    case_id : str
        Identifier used in output names.
    stats : LesionStats
        Volume (mL), voxel count, lesion count, largest lesion.
    files : list of Path
        Files written.
    summary : dict
        The JSON summary written beside the mask.
    """

    case_id: str
    stats: LesionStats
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def load_reference(path: str | Path, dwi_grid: Any) -> np.ndarray:
    """Read a reference lesion mask that must lie on the DWI grid and hold only 0 and 1."""
    from infarctsam.io.volume import read_volume

    ref = read_volume(path)
    data = ref.data[..., 0] if ref.data.ndim == 4 and ref.data.shape[3] == 1 else ref.data
    if data.ndim != 3 or not ref.with_data(data).same_grid(dwi_grid):
        raise InputError(f"{Path(path).name}: the reference mask is not on the DWI grid")
    finite = np.isfinite(data)
    if not finite.any():
        raise InputError(f"{Path(path).name}: the reference mask holds no finite values (all NaN or infinite)")
    values = np.unique(data[finite])
    if values.size and (values.min() < 0 or values.max() > 1 or not np.all(np.isin(values, [0, 1]))):
        raise InputError(f"{Path(path).name}: the reference mask must hold only 0 and 1 (found labels up to "
                         f"{values.max():g})")
    return (np.nan_to_num(data) > 0).astype(np.uint8)


def output_plan(
    dwi: str | Path, output: str | Path, *, case_id: str | None = None, bids: bool = False
) -> tuple[str, CasePaths]:
    """The case identifier and output paths :func:`segment` uses for a DWI, without reading or writing anything.

    Parameters
    ----------
    dwi : str or Path
        DWI path (only its name and folder name are used).
    output : str or Path
        Output folder.
    case_id : str, optional
        Explicit identifier (made safe for file names); derived from the DWI path by default.
    bids : bool
        BIDS-derivatives naming.

    Returns
    -------
    (str, CasePaths)
        The safe case identifier and where its files go.

    Raises
    ------
    InputError
        No safe identifier can be made from ``case_id``.
    OutputError
        The paths would lie outside ``output``.
    """
    from infarctsam.io.dataset import case_id_from_path, parse_entities, safe_id
    from infarctsam.outputs.case import case_paths

    dwi_path = Path(dwi)
    case = safe_id(case_id) if case_id else case_id_from_path(dwi_path)
    ent = parse_entities(dwi_path.name)
    subject = ent.get("sub") or re.sub(r"[^A-Za-z0-9]", "", case)  # BIDS naming needs a subject label
    return case, case_paths(Path(output), case, bids=bids, subject=subject, session=ent.get("ses"))


def check_case_io(
    dwi: Path, output: Path, *, adc: str | Path | None = None, reference: str | Path | None = None,
    bval: str | Path | None = None, weights: str | Path | None = None, case_id: str | None = None,
    bids: bool = False,
) -> tuple[str, CasePaths]:
    """Check a case's inputs and outputs without reading images, loading a model or writing anything.

    Every input must be a regular file (or a DICOM folder for the DWI) of a sane size; no output may replace an
    input, a file read with it, or a file infarctsam did not write; the output folder must be writable.

    Returns
    -------
    (str, CasePaths)
        As :func:`output_plan`.

    Raises
    ------
    InputError, OutputError
        One line, before anything is written.
    """
    from infarctsam.io.safety import MAX_TEXT_BYTES, check_input_path, check_not_inputs
    from infarctsam.outputs.case import check_replaceable, check_writable

    check_input_path(dwi, "DWI", folder_ok=True)
    for what, path, limit in (("ADC", adc, None), ("reference mask", reference, None),
                              ("b-value file", bval, MAX_TEXT_BYTES), ("weights", weights, None)):
        if path is not None:
            check_input_path(path, what, **({} if limit is None else {"max_bytes": limit}))
    case, paths = output_plan(dwi, output, case_id=case_id, bids=bids)
    extra = [Path(output) / "dataset_description.json"] if bids else []
    check_not_inputs([*paths.all(), *extra], [dwi, adc, reference, bval, weights])
    check_writable(Path(output))
    check_replaceable(paths)
    return case, paths


def segment(
    dwi: str | Path,
    output: str | Path,
    *,
    adc: str | Path | None = None,
    engine: str | Engine = "auto",
    weights: str | Path | None = None,
    reference: str | Path | None = None,
    bval: str | Path | None = None,
    bids: bool = False,
    save_probability: bool = False,
    qc: bool = True,
    case_id: str | None = None,
    device: str = "cpu",
    input_sha256: Mapping[str, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    dicom_reference: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    precision: str = "auto",
) -> CaseResult:
    """Segment the infarct on one DWI and write the outputs.

    Parameters
    ----------
    dwi : str or Path
        DWI image: NIfTI, MetaImage or a DICOM folder; 3D, or 4D with b-values.
    output : str or Path
        Output folder.
    adc : str or Path, optional
        ADC map in any unit, on any overlapping grid.
    engine : str or Engine
        ``auto``, ``threshold`` or ``sam``, or an already built engine (loaded once for many cases).
    weights : str or Path, optional
        Weights for the ``sam`` engine.
    reference : str or Path, optional
        Reference lesion mask on the DWI grid: adds Dice to the JSON and TP/FP/FN colours to the QC picture.
    bval : str or Path, optional
        b-values for a 4D DWI when no sidecar is present.
    bids : bool
        BIDS-derivatives naming.
    save_probability : bool
        Also write the lesion probability map.
    qc : bool
        Write the QC montage.
    case_id : str, optional
        Output name; derived from the DWI file name by default.
    device : str
        ``cpu`` or ``cuda`` for learned engines.
    input_sha256 : mapping, optional
        Already computed sha256 of the inputs (keys ``dwi``, ``adc``), so a batch that hashed them to decide whether
        a case is finished does not read them twice; missing keys are computed.
    provenance : mapping, optional
        Which batch run produced the case (run id, host, pid); recorded under ``batch`` in the JSON.
    dicom_reference : str or Path, optional
        DICOM series the DWI was converted from: a DICOM SEG and SR referencing it are written beside the mask
        (they are written anyway when the DWI itself is a DICOM series; needs the ``dicom`` extra).
    cache_dir : str or Path, optional
        Folder for the exported model parts (default ``~/.cache/infarctsam/onnx``).
    progress : callable, optional
        Called as ``progress(stage, done, total)`` at each stage (``total`` 0) and after each batch of slices
        encoded; :class:`infarctsam.cli.progress.StageProgress` prints it on a terminal.
    precision : str
        Arithmetic of the ``sam`` engine on CPU: ``auto`` / ``fp32`` (the unoptimised model's results to float
        rounding), ``mixed`` (float32 encoder, bfloat16 decoder: faster where the CPU runs bfloat16 natively, Dice
        within 0.0102 of fp32 on the checked cases) or ``bf16`` (fastest; up to 0.024).

    Returns
    -------
    CaseResult
    """
    from infarctsam.engines import load_engine
    from infarctsam.preprocess import preprocess

    say = progress or _silent
    inputs = read_case(dwi, output, adc=adc, reference=reference, bval=bval, bids=bids, case_id=case_id,
                       weights=None if isinstance(engine, Engine) else weights, input_sha256=input_sha256,
                       progress=progress)
    if not isinstance(engine, Engine):
        say(f"loading the {engine} engine", 0, 0)
    eng = engine if isinstance(engine, Engine) else load_engine(engine, weights=weights, device=device,
                                                                cache_dir=cache_dir, precision=precision)
    say("brain mask and intensity normalisation", 0, 0)
    inputs.pre = preprocess(inputs.dwi_vol, inputs.adc_vol)
    say(f"segmenting (engine {eng.info.name})", 0, 0)
    prob = eng.predict(inputs.pre, progress=progress)
    return finish_case(inputs, eng, prob, save_probability=save_probability, qc=qc, provenance=provenance,
                       dicom_reference=dicom_reference, progress=progress)


@dataclass
class CaseInputs:
    """A case read and checked, before (``pre`` None) or after preprocessing: what :func:`finish_case` needs.

    Built by :func:`read_case`; :func:`segment` runs read, model and outputs in turn, the batch runner overlaps the
    reading of the next cases and the writing of the previous ones with the model (:mod:`infarctsam.scale.pipeline`).
    """

    case: str
    paths: CasePaths
    output: Path
    dwi_path: Path
    dwi_vol: Any
    dwi_info: Any
    adc: str | Path | None
    adc_vol: Any
    reference: str | Path | None
    ref: np.ndarray | None
    bids: bool
    known_sha256: dict[str, str]
    t0: float
    pre: Any = None


def read_case(
    dwi: str | Path, output: str | Path, *, adc: str | Path | None = None, reference: str | Path | None = None,
    bval: str | Path | None = None, bids: bool = False, case_id: str | None = None, weights: str | Path | None = None,
    input_sha256: Mapping[str, str] | None = None, progress: Callable[[str, int, int], None] | None = None,
) -> CaseInputs:
    """Check a case's inputs and outputs (:func:`check_case_io`) and read its images; nothing is written.

    Parameters are those of :func:`segment`; ``weights`` is only checked as an input file.

    Returns
    -------
    CaseInputs
        Without preprocessing (``pre`` is None).
    """
    from infarctsam.io.dwi import load_adc, load_dwi

    t0 = time.perf_counter()
    say = progress or _silent
    outdir = Path(output)
    dwi_path = Path(dwi)
    # Everything that can be checked without the model is checked first, and nothing is written before the end.
    case, paths = check_case_io(dwi_path, outdir, adc=adc, reference=reference, bval=bval, weights=weights,
                                case_id=case_id, bids=bids)
    say(f"reading {dwi_path.name}" + (" and the ADC" if adc is not None else ""), 0, 0)
    dwi_vol, dwi_info = load_dwi(dwi_path, bval=bval)
    adc_vol = load_adc(adc, dwi_vol) if adc is not None else None
    ref = load_reference(reference, dwi_vol) if reference is not None else None
    return CaseInputs(case, paths, outdir, dwi_path, dwi_vol, dwi_info, adc, adc_vol, reference, ref, bids,
                      dict(input_sha256 or {}), t0)


def finish_case(
    inputs: CaseInputs, eng: Engine, prob: np.ndarray, *, save_probability: bool = False, qc: bool = True,
    provenance: Mapping[str, Any] | None = None, dicom_reference: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CaseResult:
    """Post-process the engine's probability of a preprocessed case and write its outputs (mask, JSON, QC picture,
    probability, DICOM SEG/SR), as :func:`segment` does after the model.

    Returns
    -------
    CaseResult
    """
    from infarctsam.io.atomic import remove_stale_temps
    from infarctsam.outputs.case import dataset_description, write_case
    from infarctsam.outputs.qc import render_montage
    from infarctsam.plausibility import plausibility_warnings
    from infarctsam.postprocess import binarize, lesion_stats

    say = progress or _silent
    pre, dwi_vol, adc_vol, ref = inputs.pre, inputs.dwi_vol, inputs.adc_vol, inputs.ref
    case, paths, outdir, dwi_path = inputs.case, inputs.paths, inputs.output, inputs.dwi_path
    known = inputs.known_sha256
    adc, reference, dwi_info = inputs.adc, inputs.reference, inputs.dwi_info
    say("post-processing: threshold, lesions, inverse resampling", 0, 0)
    mask_c = binarize(prob, pre.brain, eng.threshold, eng.min_lesion_ml, pre.voxel_ml)
    mask = pre.to_input(mask_c)
    stats = lesion_stats(mask, dwi_vol.voxel_volume_ml)
    warnings = plausibility_warnings(mask_c > 0, pre.dwi, pre.brain, pre.spacing)
    # what ITK/GDCM/MetaIO said while reading an input that was still usable
    warnings += [f"{what} reader: {line}" for what, vol in (("DWI", dwi_vol), ("ADC", adc_vol)) if vol is not None
                 for line in vol.meta.get("warnings", ())]
    info = eng.info
    summary: dict[str, Any] = {
        "case": case,
        "volume_ml": round(stats.volume_ml, 4),
        **{k: v for k, v in asdict(stats).items() if k != "volume_ml"},
        "engine": info.name,
        "weights": info.weights,
        "engine_config": info.config,
        "inputs": {
            "dwi": {"path": str(dwi_path), "sha256": known.get("dwi") or file_sha256(dwi_path),
                    "used": dwi_info.describe(), "volume_indices_used": list(dwi_info.used_volumes),
                    "b_value": dwi_info.b_value, "shape": list(dwi_vol.shape),
                    "spacing_mm": [round(s, 4) for s in dwi_vol.spacing]},
            "adc": None if adc is None else {"path": str(adc), "sha256": known.get("adc") or file_sha256(adc),
                                             "unit_detected": adc_vol.meta["adc_unit"],
                                             "resampled_to_dwi": adc_vol.meta["adc_resampled"]},
        },
        "model_inputs": "DWI + ADC" if adc_vol is not None and eng.uses_adc else "DWI",
        "brain_volume_ml": round(float(pre.brain.sum() * pre.voxel_ml), 2),
        "warnings": warnings,
        "software": {"name": "infarctsam", "version": __version__},
        "created_utc": utc_timestamp(),
    }
    if provenance:
        summary["batch"] = dict(provenance)
    if ref is not None:
        summary["reference"] = _reference_summary(mask, ref, dwi_vol.affine, reference)
    qc_png = None
    if qc:
        say("drawing the QC picture", 0, 0)
        ref_c = pre.reorient.to_canonical(ref) if ref is not None else None
        title = f"{case}  (engine {info.name})"
        qc_png = render_montage(pre.dwi, mask_c, pre.spacing, brain=pre.brain, reference=ref_c, title=title,
                                warnings=summary.get("warnings", []))
    summary["elapsed_s"] = round(time.perf_counter() - inputs.t0, 3)
    prob_in = pre.to_input(prob) if save_probability else None
    say(f"writing outputs to {outdir}", 0, 0)
    dicom_files, dicom_record = _dicom_files(dwi_path, dicom_reference, mask, dwi_vol, stats, info, paths)
    if dicom_record is not None:
        summary["dicom"] = dicom_record
    remove_stale_temps([*paths.all(), *(p for p, _ in dicom_files.values())])  # what a killed earlier run left
    files = write_case(paths, dwi_vol, mask, summary, qc_png, probability=prob_in, extra=dicom_files)
    if inputs.bids:
        desc = outdir / "dataset_description.json"
        if not desc.exists():
            from infarctsam.io.atomic import write_json

            write_json(desc, dataset_description(info.name))
    return CaseResult(case_id=case, stats=stats, files=files, summary=summary)


def _dicom_files(dwi: Path, reference: str | Path | None, mask: np.ndarray, dwi_vol: Any, stats: LesionStats,
                 info: Any, paths: CasePaths) -> tuple[dict[str, tuple[Path, bytes]], dict[str, Any] | None]:
    from infarctsam.outputs.dicom_out import DicomReport, case_dicom_files

    report = DicomReport(volume_ml=stats.volume_ml, lesion_count=stats.lesion_count, engine=info.name,
                         weights=None if info.weights in (None, "none") else str(info.weights))
    return case_dicom_files(dwi, reference, mask, dwi_vol.affine, report, paths.mask,
                            series_uid=dwi_vol.meta.get("dicom_series"))


def utc_timestamp() -> str:
    """The current time as ISO-8601 UTC to the second, e.g. ``2026-01-31T14:05:09Z``."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _silent(stage: str, done: int, total: int) -> None:
    """The progress callback that reports nothing."""


def _reference_summary(mask: np.ndarray, ref: np.ndarray, affine: np.ndarray, path: str | Path) -> dict[str, Any]:
    from infarctsam.metrics import case_metrics

    m = asdict(case_metrics(ref, mask, affine))
    return {"path": str(path), **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}}
