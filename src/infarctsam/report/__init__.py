"""Validation report: ``cases.csv``, ``summary.json``, ``summary.md``, PNG figures and a self-contained ``report.html``.

Every file is written atomically (:mod:`infarctsam.io.atomic`); ``report.html`` is written last.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult
    from infarctsam.report.figures import ReportFigure


REPORT_FILES = ("cases.csv", "summary.json", "summary.md", "report.html", "overlays.png", "dice.png",
                "bland_altman.png", "paired_dice.png", "volume_scatter.png")


def check_report_output(outdir: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse a report folder that would replace or write into an input, before anything is read or written.

    Parameters
    ----------
    outdir : str or Path
        The report folder.
    inputs : iterable of path or None
        The evaluation's inputs: reference and prediction folders, the clinical table, the image folder.

    Raises
    ------
    OutputError
        A report file would replace an input (also through a link), or lie inside an input folder.
    """
    from infarctsam.io.safety import check_not_inputs

    outdir = Path(outdir)
    check_not_inputs([outdir / name for name in REPORT_FILES], inputs)


def make_figures(result: EvaluationResult, overlay_cases: list[str] | None = None, image_dir: Path | None = None,
                 log_axes: bool = False, label_any: bool = False) -> list[ReportFigure]:
    """Render every report figure (overlays, Dice, Bland-Altman, paired Dice when several methods, volume scatter)."""
    from infarctsam.report.figures import bland_altman_plot, dice_plot, paired_dice_plot, volume_scatter
    from infarctsam.report.overlay import overlay_figure

    figs = [
        overlay_figure(result, overlay_cases or None, image_dir=image_dir, label_any=label_any),
        dice_plot(result),
        bland_altman_plot(result),
        paired_dice_plot(result),
        volume_scatter(result, log_axes=log_axes),
    ]
    return [f for f in figs if f is not None]


def write_report(result: EvaluationResult, outdir: str | Path, figures: bool = True,
                 overlay_cases: list[str] | None = None, image_dir: str | Path | None = None,
                 log_axes: bool = False) -> dict[str, Path]:
    """Render an evaluation into ``outdir``: ``cases.csv``, ``summary.json``, ``summary.md``, figures, ``report.html``.

    Parameters
    ----------
    result : EvaluationResult
        What :func:`infarctsam.evaluate.evaluate` returned.
    outdir : str or Path
        Output folder (created when the first file is written).
    figures : bool
        Draw the figures (PNG files and the images of the HTML report).
    overlay_cases : list of str, optional
        Cases for the overlay figure (default: best, median and worst Dice of the first method).
    image_dir : str or Path, optional
        Folder with DWI images for overlay backgrounds (default: look for them beside the reference masks).
    log_axes : bool
        Logarithmic axes for the volume scatter plot.

    Returns
    -------
    dict
        Output name -> path of every file written.

    Raises
    ------
    InputError
        An overlay case that was not evaluated.
    OutputError
        The folder cannot be created or written, or lies in an input folder (see :func:`check_report_output`).
    """
    from infarctsam.errors import InputError, OutputError
    from infarctsam.io.atomic import atomic_path, write_json, write_text
    from infarctsam.report.html import render_html
    from infarctsam.report.markdown import render_markdown

    outdir = Path(outdir)
    unknown = [c for c in overlay_cases or [] if c not in result.pairing.cases]
    if unknown:
        raise InputError(f"--cases: not among the evaluated cases: {', '.join(unknown[:10])}")
    label_any = bool(result.summary.get("label_any", False))
    image_dir = Path(image_dir) if image_dir else None
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output path {outdir} exists and is not a folder")
    check_report_output(outdir, [result.gt_root, *result.pred_roots.values(), image_dir])
    outputs: dict[str, Path] = {}
    with atomic_path(outdir / "cases.csv") as tmp:
        result.cases.to_csv(tmp, index=False, float_format="%.6g", na_rep="")
    outputs["cases.csv"] = outdir / "cases.csv"
    outputs["summary.json"] = write_json(outdir / "summary.json", result.summary)
    figs = make_figures(result, overlay_cases, image_dir, log_axes, label_any) if figures else []
    for fig in figs:
        path = outdir / f"{fig.name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(fig.png)
        outputs[path.name] = path
    outputs["summary.md"] = write_text(outdir / "summary.md", render_markdown(result, figs))
    outputs["report.html"] = write_text(outdir / "report.html", render_html(result, figs))
    return outputs
