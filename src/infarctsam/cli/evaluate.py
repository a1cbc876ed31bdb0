"""``infarctsam evaluate``: validation report of predicted masks against reference masks."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from infarctsam.cli import common

_HELP = (
    "Compare predicted infarct masks with reference masks and write a validation report.\n\n"
    "GT and PRED are flat folders of masks (matched by file stem: case01_mask, case01_msk and case01 are the same "
    "case) or BIDS / ISLES'22 roots (matched by subject and session). Cases missing on one side are listed and left "
    "out. The output folder receives cases.csv, summary.json, summary.md, PNG figures and a self-contained "
    "report.html. Volumes are in mL."
)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _figure(value: float, n_cases: int) -> str:
    """A statistic with three decimals; ``n/a (one case)`` where one case cannot give it (SD, ICC)."""
    import math

    if math.isfinite(value):
        return f"{value:.3f}"
    return "n/a (one case)" if n_cases == 1 else "n/a"


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate", help=_HELP, no_args_is_help=True, cls=common.PlainCommand,
                 short_help="Compare predicted with reference masks: validation report.")
    def evaluate_command(
        gt: Path = typer.Option(..., "--gt", metavar="FOLDER", help="Reference masks: a flat folder or a BIDS / "
                                "ISLES'22 root."),
        pred: list[Path] = typer.Option(..., "--pred", metavar="FOLDER", help="Predicted masks of one method "
                                        "(repeat for more)."),
        name: list[str] | None = typer.Option(None, "--name", metavar="NAME", help="Method name per --pred "
                                              "(default: the folder name)."),
        output: Path | None = typer.Option(None, "--output", "-o", metavar="FOLDER", help="Output folder "
                                           "(required)."),
        outdir: Path | None = typer.Option(None, "--outdir", hidden=True, help="Old name of --output."),
        clinical: Path | None = typer.Option(None, "--clinical", metavar="FILE", help="Clinical CSV/TSV for "
                                             "Table 1."),
        cohort_column: str | None = typer.Option(None, "--cohort-column", metavar="COLUMN", help="Clinical column "
                                                 "defining cohorts."),
        clinical_id: str | None = typer.Option(None, "--clinical-id", metavar="COLUMN", help="Clinical identifier "
                                               "column (default: participant_id, case, subject or id)."),
        strict: bool = typer.Option(False, "--strict", help="Error when a case is missing on one side."),
        label_any: bool = typer.Option(False, "--label-any", help="Treat every mask value > 0 as lesion."),
        ba_transform: Literal["none", "log", "cbrt"] = typer.Option("none", "--ba-transform",
                                                                    help="Scale of the Bland-Altman analysis."),
        cases: list[str] | None = typer.Option(None, "--cases", metavar="CASES", help="Cases for the overlay figure "
                                               "(comma-separated or repeated; default: best, median and worst "
                                               "Dice)."),
        image_dir: Path | None = typer.Option(None, "--image-dir", metavar="FOLDER", help="Folder of DWIs for "
                                              "overlay backgrounds."),
        log_axes: bool = typer.Option(False, "--log-axes", help="Logarithmic axes in the volume scatter plot."),
        no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr (progress is shown only "
                                   "when stderr is a terminal)."),
    ) -> None:
        from infarctsam.cli.progress import StageProgress
        from infarctsam.evaluate import evaluate
        from infarctsam.report import check_report_output, write_report
        from infarctsam.report.tables import BA_UNITS

        if output is not None and outdir is not None and output != outdir:
            raise common.fail("give the output folder once (--output)")
        output = output or outdir
        if output is None:
            raise common.fail("missing option --output / -o (the output folder)")
        common.run(check_report_output, output, [gt, *pred, clinical, image_dir])
        progress = StageProgress.for_terminal(quiet)
        progress("pairing reference and predicted masks")
        result = common.run(
            evaluate, gt, list(pred), names=list(name) if name else None, clinical=clinical, strict=strict,
            label_any=label_any, ba_transform=ba_transform, cohort_column=cohort_column, clinical_id=clinical_id,
            log=common.echo_err, progress=progress,
        )
        progress("writing the report" + (" and figures" if not no_figures else ""))
        outputs = common.run(write_report, result, output, figures=not no_figures,
                             overlay_cases=_split(cases) or None, image_dir=image_dir, log_axes=log_axes)
        progress.finish()
        n = result.summary["n_cases"]
        typer.echo(f"evaluated {n} case{'' if n == 1 else 's'}")
        unit = BA_UNITS[result.ba_transform]
        for s in result.stats:
            spread = (f"(SD {_figure(s.dice.sd, n)}), ICC(A,1) {_figure(s.icc_a1.value, n)}" if n > 1
                      else "(SD and ICC(A,1) n/a: one case)")
            typer.echo(
                f"{s.name}: Dice {s.dice.mean:.3f} {spread}, volume bias {s.bland_altman.bias:.2f} {unit} "
                f"(prediction - reference), lesion F1 {s.means['lesion_f1']:.3f}"
            )
        typer.echo(f"report: {outputs['report.html']}")
