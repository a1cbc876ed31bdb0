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
    from infarctsam.location.case import CaseLocation
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


def segment(dwi: str | Path, output: str | Path, *, adc: str | Path | None = None, engine: str | Engine = "auto",
            weights: str | Path | None = None, reference: str | Path | None = None, bval: str | Path | None = None,
            bids: bool = False, save_probability: bool = False, qc: bool = True, case_id: str | None = None,
            device: str = "cpu", input_sha256: Mapping[str, str] | None = None,
            provenance: Mapping[str, Any] | None = None, dicom_reference: str | Path | None = None,
            cache_dir: str | Path | None = None, progress: Callable[[str, int, int], None] | None = None,
            precision: str = "auto", location: bool = True, allow_mismatched_adc: bool = False,
            allow_unusual_images: bool = False, b0: str | Path | None = None) -> CaseResult:
    """Segment one DWI and write its outputs (inputs checked before the model runs, outputs written last).

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
        Already computed sha256 of the inputs (keys ``dwi``, ``adc``); missing keys are computed.
    provenance : mapping, optional
        The batch run (run id, host, pid) recorded under ``batch`` in the JSON.
    dicom_reference : str or Path, optional
        DICOM series the DWI came from: a SEG and SR referencing it are written (``dicom`` extra).
    cache_dir : str or Path, optional
        Folder of the exported model parts (default ``~/.cache/infarctsam/onnx``).
    progress : callable, optional
        ``progress(stage, done, total)`` at each stage (``total`` 0) and slice batch (see ``cli.progress``).
    precision : str
        ``sam`` engine arithmetic on CPU: ``auto``/``fp32`` (exact), ``mixed`` or ``bf16`` (faster, Dice within
        0.0102 / 0.024 of fp32 on the checked cases).
    location : bool
        Map the DWI to MNI and report the lesion's arterial territories (``location``, ``_location.png``).
    allow_mismatched_adc, allow_unusual_images : bool
        Warn instead of refusing an ADC that does not match the DWI's anatomy (``preprocess.consistency``), or a DWI
        with bright fluid (a b0, T2 or ADC image) or an ADC with dark fluid (``preprocess.image_kind``).
    b0 : str or Path, optional
        b0 image of the same series: without ``adc``, the ADC is ``ln(S0 / S_b) / b`` (a 4D DWI's b0 volumes too).

    Returns
    -------
    CaseResult
    """
    prepared = read_case(dwi, output, adc=adc, reference=reference, bval=bval, bids=bids, case_id=case_id,
                         weights=None if isinstance(engine, Engine) else weights, input_sha256=input_sha256,
                         allow_mismatched_adc=allow_mismatched_adc, allow_unusual_images=allow_unusual_images,
                         b0=b0, progress=progress)
    engine = _engine(engine, weights=weights, device=device, cache_dir=cache_dir, precision=precision,
                     say=progress or _silent)
    prob = predict_case(engine, prepared, progress, location=location)
    return finish_case(prepared, engine, prob, save_probability=save_probability, qc=qc, location=location,
                       provenance=provenance, dicom_reference=dicom_reference, progress=progress)


@dataclass
class CaseInputs:
    """The images of one case as read, before preprocessing.

    Attributes
    ----------
    dwi_path : Path
        The DWI file or DICOM folder.
    dwi : Volume
        The DWI volume used (one b-value).
    dwi_info : DwiInfo
        Which volumes and b-value of the input were used.
    adc_path : Path or None
        The ADC file, when given.
    adc : Volume or None
        The ADC on the DWI grid, in mm^2/s x 10^-6.
    reference : ndarray or None
        The reference lesion mask (uint8, on the DWI grid), when given.
    reference_name : str
        The reference mask's file name ("" when none).
    b0_path : Path or None
        The b0 image the ADC was computed from (``--b0``), when it was.
    """

    dwi_path: Path
    dwi: Any
    dwi_info: Any
    adc_path: Path | None = None
    adc: Any = None
    reference: np.ndarray | None = None
    reference_name: str = ""
    b0_path: Path | None = None

    @property
    def adc_name(self) -> str | None:
        """How messages name the ADC: its file, or what it was computed from; None without an ADC."""
        if self.adc_path is not None:
            return self.adc_path.name
        if self.adc is not None:
            return "the ADC computed from " + (f"--b0 {self.b0_path.name}" if self.b0_path is not None
                                               else "the DWI's b0 volume")
        return None


@dataclass
class Segmentation:
    """What the engine and post-processing made of one case.

    Attributes
    ----------
    engine : Engine
        The engine that ran.
    pre : Preprocessed
        The preprocessed case (canonical grid, brain mask).
    probability : ndarray
        Lesion probability on the canonical grid.
    mask_canonical : ndarray
        Binary lesion mask on the canonical grid.
    mask : ndarray
        Binary lesion mask on the DWI grid.
    stats : LesionStats
        Volume, voxel count, lesion count, largest lesion.
    warnings : list of str
        Input-consistency and plausibility warnings and what the image readers warned about.
    adc_fit : dict
        How well the ADC matches the DWI (recorded with the ADC in the JSON; empty without an ADC).
    """

    engine: Engine
    pre: Any
    probability: np.ndarray
    mask_canonical: np.ndarray
    mask: np.ndarray
    stats: LesionStats
    warnings: list[str]
    adc_fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedCase:
    """A case checked, read and preprocessed, before the model: what :func:`finish_case` needs.

    Built by :func:`read_case`. :func:`segment` runs read, model and outputs in turn; the batch runner reads the
    next cases and writes the previous ones while the model runs (:mod:`infarctsam.scale.pipeline`).

    Attributes
    ----------
    case, paths, output
        The case identifier, its output paths and the output folder.
    inputs : CaseInputs
        The images as read.
    pre : Preprocessed
        The preprocessed case (canonical grid, brain mask).
    adc_fit, warnings
        How well the ADC matches the DWI, and the input-consistency warnings.
    reference, bids, known_sha256, t0
        The reference mask's path, BIDS naming, already computed input sha256 and when the case was started.
    busy_s : float
        Seconds spent on this case's own steps so far (reading, the model): a batch pipeline runs other cases'
        steps in between, and that waiting is not this case's time.
    """

    case: str
    paths: CasePaths
    output: Path
    inputs: CaseInputs
    pre: Any
    adc_fit: dict[str, Any]
    warnings: list[str]
    reference: str | Path | None
    bids: bool
    known_sha256: dict[str, str]
    t0: float
    busy_s: float = 0.0


def read_inputs(dwi: str | Path, *, adc: str | Path | None = None, reference: str | Path | None = None,
                bval: str | Path | None = None, b0: str | Path | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> CaseInputs:
    """Read a case's DWI, its ADC and reference mask (step 1 of :func:`segment`). Without an ADC, one is computed
    from a b0 image (``b0``, or the b0 volumes of a 4D DWI): ``ADC = ln(S0 / S_b) / b``.

    Parameters
    ----------
    dwi, adc, reference, bval, b0
        As for :func:`segment`.
    progress : callable, optional
        Told ``(stage, 0, 0)`` before reading.

    Returns
    -------
    CaseInputs

    Raises
    ------
    InputError
        An image cannot be read or does not fit the DWI.
    """
    from infarctsam.io.dwi import adc_from_b0, load_adc, load_b0, load_dwi

    dwi_path = Path(dwi)
    if adc is not None and b0 is not None:
        raise InputError("--adc and --b0 were both given: pass the ADC, or the b0 to compute one from, not both")
    (progress or _silent)(f"reading {dwi_path.name}" + (" and the ADC" if adc is not None else "")
                          + (" and the b0" if b0 is not None else ""), 0, 0)
    dwi_vol, dwi_info = load_dwi(dwi_path, bval=bval)
    adc_vol = load_adc(adc, dwi_vol) if adc is not None else None
    if b0 is not None:
        adc_vol = adc_from_b0(load_b0(b0, dwi_vol), dwi_vol, dwi_info.b_value, f"--b0 {Path(b0).name}")
    elif adc_vol is None and "b0" in dwi_vol.meta:
        vols = ", ".join(str(i + 1) for i in dwi_vol.meta["b0_volumes"])
        adc_vol = adc_from_b0(dwi_vol.meta["b0"], dwi_vol, dwi_info.b_value,
                              f"the b0 volume(s) {vols} of {dwi_path.name}")
    ref = load_reference(reference, dwi_vol) if reference is not None else None
    return CaseInputs(dwi_path, dwi_vol, dwi_info, None if adc is None else Path(adc), adc_vol, ref,
                      "" if reference is None else Path(reference).name, None if b0 is None else Path(b0))


def _engine(engine: str | Engine, *, weights: str | Path | None, device: str, cache_dir: str | Path | None,
            precision: str, say: Callable[[str, int, int], None]) -> Engine:
    """``engine`` itself when already built, else the engine of that name (:func:`infarctsam.engines.load_engine`)."""
    if isinstance(engine, Engine):
        return engine
    from infarctsam.engines import load_engine

    say(f"loading the {engine} engine", 0, 0)
    return load_engine(engine, weights=weights, device=device, cache_dir=cache_dir, precision=precision)


def read_case(
    dwi: str | Path, output: str | Path, *, adc: str | Path | None = None, reference: str | Path | None = None,
    bval: str | Path | None = None, bids: bool = False, case_id: str | None = None, weights: str | Path | None = None,
    input_sha256: Mapping[str, str] | None = None, allow_mismatched_adc: bool = False,
    allow_unusual_images: bool = False, b0: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PreparedCase:
    """Check a case's inputs and outputs, read and preprocess its images, check the ADC fits (steps 1 and 2 of
    :func:`segment`); nothing is written and no model is needed.

    Parameters
    ----------
    dwi, output, adc, reference, bval, bids, case_id, input_sha256, allow_mismatched_adc, allow_unusual_images, b0
        As for :func:`segment`.
    progress
        As for :func:`segment`.
    weights : str or Path, optional
        Only checked as an input file (it must not be replaced by an output).

    Returns
    -------
    PreparedCase

    Raises
    ------
    InputError, OutputError
        One line, before anything is written.
    """
    from infarctsam.preprocess import preprocess
    from infarctsam.preprocess.consistency import input_consistency
    from infarctsam.preprocess.image_kind import check_image_kinds, check_not_a_mask

    t0, say = time.perf_counter(), progress or _silent
    case, paths = check_case_io(Path(dwi), Path(output), adc=adc, reference=reference, bval=bval, weights=weights,
                                case_id=case_id, bids=bids)
    inputs = read_inputs(dwi, adc=adc, reference=reference, bval=bval, b0=b0, progress=say)
    adc_name = inputs.adc_name
    check_not_a_mask(inputs.dwi.data, "DWI", inputs.dwi_path.name)
    if inputs.adc_path is not None:
        check_not_a_mask(inputs.adc.data, "ADC", f"--adc {inputs.adc_path.name}")
    say("brain mask and intensity normalisation", 0, 0)
    pre = preprocess(inputs.dwi, inputs.adc)
    kinds, kind_warnings = check_image_kinds(pre.dwi, pre.adc, pre.brain, inputs.dwi_path.name, adc_name,
                                             allow=allow_unusual_images)
    fit, fit_warnings = input_consistency(pre, adc_name, inputs.reference, inputs.reference_name,
                                          allow_mismatched_adc)
    fit = {**fit, "dwi_bright_csf": round(kinds.dwi_bright_csf, 4)}  # the DWI's figure goes to inputs.dwi
    if kinds.adc_bright_csf is not None:
        fit["bright_csf_fraction"] = round(kinds.adc_bright_csf, 4)
    fit_warnings = [*kind_warnings, *fit_warnings]
    return PreparedCase(case, paths, Path(output), inputs, pre, fit, fit_warnings, reference, bids,
                        dict(input_sha256 or {}), t0, busy_s=time.perf_counter() - t0)


def predict_case(engine: Engine, prepared: PreparedCase,
                 progress: Callable[[str, int, int], None] | None = None, *, location: bool = False) -> np.ndarray:
    """The engine's lesion probability of a prepared case on its canonical grid (step 3 of :func:`segment`).

    ``location``: the case's location will be reported, so the location stage's registration template and atlas
    start loading in a background thread while the engine runs (:mod:`infarctsam.location.prefetch`; once per
    process)."""
    (progress or _silent)(f"segmenting (engine {engine.info.name})", 0, 0)
    if location:
        from infarctsam.location import prefetch

        prefetch.start()
    t0 = time.perf_counter()
    try:
        return engine.predict(prepared.pre, progress=progress)
    finally:
        prepared.busy_s += time.perf_counter() - t0


def post_process(engine: Engine, prepared: PreparedCase, prob: np.ndarray,
                 say: Callable[[str, int, int], None]) -> Segmentation:
    """Binarize the probability, remove mirror-pair artefacts, map the mask back to the DWI grid, measure it and
    collect the warnings (consistency, plausibility, image readers)."""
    from infarctsam.plausibility import plausibility_warnings
    from infarctsam.postprocess import binarize, lesion_stats

    pre, inputs = prepared.pre, prepared.inputs
    say("post-processing: threshold, lesions, inverse resampling", 0, 0)
    mask_c = binarize(prob, pre.brain, engine.threshold, engine.min_lesion_ml, pre.voxel_ml)
    mask_c, pair_warnings = _mirror_pairs(engine, mask_c, pre)
    mask = pre.to_input(mask_c)
    stats = lesion_stats(mask, inputs.dwi.voxel_volume_ml)
    warnings = [*prepared.warnings, *pair_warnings,
                *plausibility_warnings(mask_c > 0, pre.dwi, pre.brain, pre.spacing)]
    # what ITK/GDCM/MetaIO said while reading an input that was still usable
    warnings += [f"{what} reader: {line}" for what, vol in (("DWI", inputs.dwi), ("ADC", inputs.adc))
                 if vol is not None for line in vol.meta.get("warnings", ())]
    return Segmentation(engine, pre, prob, mask_c, mask, stats, warnings, prepared.adc_fit)


def finish_case(
    prepared: PreparedCase, engine: Engine, prob: np.ndarray, *, save_probability: bool = False, qc: bool = True,
    location: bool = True, provenance: Mapping[str, Any] | None = None, dicom_reference: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CaseResult:
    """Post-process the engine's probability of a prepared case, locate the lesion and write the case's outputs
    (mask, JSON, QC picture, probability, location picture, DICOM SEG/SR): steps 4 to 6 of :func:`segment`.

    Parameters
    ----------
    prepared : PreparedCase
        The case from :func:`read_case`.
    engine : Engine
        The engine that computed ``prob``.
    prob : ndarray
        Its lesion probability (:func:`predict_case`).
    save_probability, qc, location, provenance, dicom_reference, progress
        As for :func:`segment`.

    Returns
    -------
    CaseResult
    """
    say, case, paths = progress or _silent, prepared.case, prepared.paths
    t_finish = time.perf_counter()
    seg = post_process(engine, prepared, prob, say)
    loc = _location(case, seg, paths, enabled=location, picture=qc, say=say)
    summary = case_summary(case, prepared.inputs, seg, prepared.known_sha256, provenance, prepared.reference,
                           loc.report)
    qc_png = _qc_picture(case, prepared.inputs, seg, summary["warnings"], say, loc.line) if qc else None
    # the case's own time: its reading, model and output steps, not the time it waited in a batch pipeline
    summary["elapsed_s"] = round(prepared.busy_s + time.perf_counter() - t_finish, 3)
    files = _write_outputs(paths, prepared.output, prepared.inputs, seg, summary, qc_png,
                           save_probability=save_probability, dicom_reference=dicom_reference, bids=prepared.bids,
                           say=say, extra=loc.files)
    return CaseResult(case_id=case, stats=seg.stats, files=files, summary=summary)


def _location(case: str, seg: Segmentation, paths: CasePaths, *, enabled: bool, picture: bool,
              say: Callable[[str, int, int], None]) -> CaseLocation:
    """Register the case to MNI and locate its lesion (its warnings join the segmentation's)."""
    from infarctsam.location.case import case_location

    if enabled:
        say("registration to MNI and arterial territories", 0, 0)
    loc = case_location(seg.pre, seg.mask_canonical, paths.qc, enabled=enabled, picture=picture,
                        title=f"{case}  (engine {seg.engine.info.name})")
    seg.warnings.extend(loc.warnings)
    return loc


def _mirror_pairs(engine: Engine, mask_c: np.ndarray, pre: Any) -> tuple[np.ndarray, list[str]]:
    """Remove skull-base artefacts that come in left-right mirror pairs (when the engine does); the warning says
    what was removed."""
    from infarctsam.postprocess import remove_mirror_pairs

    if not getattr(engine, "remove_mirror_pairs", True):
        return mask_c, []
    mask_c, removed = remove_mirror_pairs(mask_c, pre.brain, pre.spacing, pre.adc)
    if not removed:
        return mask_c, []
    listed = ", ".join(f"{left:.2f} + {right:.2f} mL" for left, right in removed)
    return mask_c, [f"removed {len(removed)} left-right mirror pair{'s' if len(removed) > 1 else ''} of bright spots "
                    f"without restricted diffusion ({listed}) as skull-base susceptibility artefacts; the "
                    "probability map (--save-probability) still shows them"]


def _adc_entry(inputs: CaseInputs, known_sha256: Mapping[str, str], fit: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON's ``inputs.adc``: the ADC file, or how the ADC was computed (``source``), with its checks."""
    adc_vol, adc = inputs.adc, inputs.adc_path
    if adc_vol is None:
        return None
    checks = {k: v for k, v in fit.items() if k != "dwi_bright_csf"}
    if adc is None:  # computed from a b0
        b0 = inputs.b0_path
        return {"path": None, "source": adc_vol.meta.get("adc_source"),
                "b0": None if b0 is None else {"path": str(b0), "sha256": known_sha256.get("b0") or file_sha256(b0)},
                "unit_detected": adc_vol.meta["adc_unit"], "resampled_to_dwi": False, **checks}
    return {"path": str(adc), "sha256": known_sha256.get("adc") or file_sha256(adc), "source": "file",
            "unit_detected": adc_vol.meta["adc_unit"], "resampled_to_dwi": adc_vol.meta["adc_resampled"], **checks}


def case_summary(case: str, inputs: CaseInputs, seg: Segmentation, known_sha256: Mapping[str, str],
                 provenance: Mapping[str, Any] | None = None, reference: str | Path | None = None,
                 location: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON summary of a case: volume, lesions, engine, inputs with their sha256, warnings, software.

    Parameters
    ----------
    case : str
        The case identifier.
    inputs : CaseInputs
        The case as read.
    seg : Segmentation
        Its segmentation.
    known_sha256 : mapping
        Already computed sha256 of the inputs (keys ``dwi``, ``adc``); the others are computed.
    provenance : mapping, optional
        The batch run that produced the case, recorded under ``batch``.
    reference : str or Path, optional
        Path of the reference mask read into ``inputs``: its Dice and distances go under ``reference``.
    location : mapping, optional
        The location report (:mod:`infarctsam.location`), None when switched off.

    Returns
    -------
    dict
        The summary, without ``elapsed_s`` and ``dicom`` (added when the case is written).
    """
    info, dwi_vol, adc_vol, dwi_info = seg.engine.info, inputs.dwi, inputs.adc, inputs.dwi_info
    summary: dict[str, Any] = {
        "case": case,
        "volume_ml": round(seg.stats.volume_ml, 4),
        **{k: v for k, v in asdict(seg.stats).items() if k != "volume_ml"},
        "engine": info.name,
        "weights": info.weights,
        "engine_config": info.config,
        "inputs": {
            "dwi": {"path": str(inputs.dwi_path), "sha256": known_sha256.get("dwi") or file_sha256(inputs.dwi_path),
                    "used": dwi_info.describe(), "volume_indices_used": list(dwi_info.used_volumes),
                    "b_value": dwi_info.b_value, "shape": list(dwi_vol.shape),
                    "spacing_mm": [round(s, 4) for s in dwi_vol.spacing],
                    "bright_csf_fraction": seg.adc_fit.get("dwi_bright_csf")},
            "adc": _adc_entry(inputs, known_sha256, seg.adc_fit),
        },
        "model_inputs": "DWI + ADC" if adc_vol is not None and seg.engine.uses_adc else "DWI",
        "brain_volume_ml": round(float(seg.pre.brain.sum() * seg.pre.voxel_ml), 2),
        "location": None if location is None else dict(location),
        "warnings": seg.warnings,
        "software": {"name": "infarctsam", "version": __version__},
        "created_utc": utc_timestamp(),
    }
    if provenance:
        summary["batch"] = dict(provenance)
    if inputs.reference is not None:
        summary["reference"] = _reference_summary(seg.mask, inputs.reference, dwi_vol.affine, reference)
    return summary


def _qc_picture(case: str, inputs: CaseInputs, seg: Segmentation, warnings: list[str],
                say: Callable[[str, int, int], None], location_line: str = "") -> bytes:
    """The QC montage (PNG bytes) of a case, with the reference's colours when there is one."""
    from infarctsam.outputs.qc import render_montage

    say("drawing the QC picture", 0, 0)
    pre = seg.pre
    ref_c = pre.reorient.to_canonical(inputs.reference) if inputs.reference is not None else None
    title = f"{case}  (engine {seg.engine.info.name})" + (f"  {location_line}" if location_line else "")
    return render_montage(pre.dwi, seg.mask_canonical, pre.spacing, brain=pre.brain, reference=ref_c, title=title,
                          warnings=warnings)


def _write_outputs(paths: CasePaths, outdir: Path, inputs: CaseInputs, seg: Segmentation, summary: dict[str, Any],
                   qc_png: bytes | None, *, save_probability: bool, dicom_reference: str | Path | None, bids: bool,
                   say: Callable[[str, int, int], None], extra: Mapping[str, tuple[Path, bytes]] | None = None
                   ) -> list[Path]:
    """Write a case's files atomically (mask, probability, JSON, QC, DICOM SEG/SR, ``extra``) and return them."""
    from infarctsam.io.atomic import remove_stale_temps
    from infarctsam.outputs.case import dataset_description, write_case

    probability = seg.pre.to_input(seg.probability) if save_probability else None
    say(f"writing outputs to {outdir}", 0, 0)
    dicom_files, dicom_record = _dicom_files(inputs.dwi_path, dicom_reference, seg.mask, inputs.dwi, seg.stats,
                                             seg.engine.info, paths)
    if dicom_record is not None:
        summary["dicom"] = dicom_record
        if dicom_record.get("warning"):
            summary["warnings"].append(dicom_record["warning"])
    files_extra = {**dicom_files, **(extra or {})}
    remove_stale_temps([*paths.all(), *(p for p, _ in files_extra.values())])  # what a killed earlier run left
    files = write_case(paths, inputs.dwi, seg.mask, summary, qc_png, probability=probability, extra=files_extra)
    if bids:
        desc = outdir / "dataset_description.json"
        if not desc.exists():
            from infarctsam.io.atomic import write_json

            write_json(desc, dataset_description(seg.engine.info.name))
    return files


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
