"""The location of a segmented case: what :func:`infarctsam.api.segment` records, prints and draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from infarctsam.preprocess.pipeline import Preprocessed


@dataclass
class CaseLocation:
    """A case's location report with its warnings and picture.

    Attributes
    ----------
    report : dict or None
        The JSON ``location`` section (None when location was switched off).
    warnings : list of str
        Registration warnings for the case JSON, stderr and the QC picture.
    files : dict
        Extra output files, ``{"location": (path, png_bytes)}``.
    """

    report: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    files: dict[str, tuple[Path, bytes]] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The fragment for a one-line result, e.g. ``left MCA 92%`` (empty when switched off)."""
        return "" if self.report is None else str(self.report["summary"])


def picture_path(qc_path: Path) -> Path:
    """Where the location picture goes: beside the QC picture, ``..._qc.png`` -> ``..._location.png``."""
    name = qc_path.name
    stem = name[: -len("_qc.png")] if name.endswith("_qc.png") else name.removesuffix(".png")
    return qc_path.with_name(f"{stem}_location.png")


def case_location(pre: Preprocessed, mask_c: np.ndarray, qc_path: Path, *, enabled: bool = True,
                  picture: bool = True, title: str = "") -> CaseLocation:
    """Register the case to MNI and report where its lesion lies.

    Parameters
    ----------
    pre : Preprocessed
        The preprocessed case (canonical DWI, brain mask, affine).
    mask_c : numpy.ndarray
        The lesion mask on the canonical grid.
    qc_path : Path
        The case's QC picture path (the location picture goes beside it).
    enabled : bool
        False: nothing is computed (``--no-location``).
    picture : bool
        Also draw the registration overlay with territory colours (when a mapping was computed, reliable or not).
    title : str
        Title of that picture.

    Returns
    -------
    CaseLocation
    """
    if not enabled:
        return CaseLocation(None)
    from infarctsam.location import prefetch
    from infarctsam.location.atlas import load_atlas
    from infarctsam.location.register import register_to_mni
    from infarctsam.location.report import location_report

    prefetch.wait()  # the template and atlas, if a background thread is loading them (api.predict_case starts one)
    reg = register_to_mni(pre.dwi, pre.brain, pre.affine)
    atlas = load_atlas()
    report = location_report(mask_c > 0, pre.affine, reg, atlas)
    warnings = [f"{w}; the location is unreliable" for w in reg.warnings]
    files = {}
    if picture and reg.scales:  # a mapping was computed (no picture of an identity that was never fitted)
        from infarctsam.location.picture import render_location

        png = render_location(pre.dwi, mask_c > 0, pre.affine, reg, atlas, brain=pre.brain, title=title,
                              lines=[report["summary"], *warnings])
        files["location"] = (picture_path(qc_path), png)
    return CaseLocation(report, warnings, files)
