"""``infarctsam evaluate``: validation report of predicted masks against reference masks."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli import common

_HELP = (
    "Compare predicted infarct masks with reference masks and write a validation report.\n\n"
    "GT and PRED are flat folders of masks (matched by file stem: case01_mask, case01_msk and case01 are the same "
    "case) or BIDS / ISLES'22 roots (matched by subject and session). Cases missing on one side are listed and left "
    "out. OUTDIR receives cases.csv, summary.json, summary.md, PNG figures and a self-contained report.html."
)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate", help=_HELP, no_args_is_help=True)
    def evaluate_command(
        gt: Path = typer.Option(..., "--gt", help="Reference masks: flat folder or BIDS / ISLES'22 root."),
        pred: list[Path] = typer.Option(..., "--pred", help="Predicted masks of one method (repeat for more)."),
        name: list[str] | None = typer.Option(None, "--name", help="Method name per --pred (default: folder name)."),
        outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder."),
        clinical: Path | None = typer.Option(None, "--clinical", help="Clinical CSV/TSV for Table 1."),
        cohort_column: str | None = typer.Option(None, "--cohort-column", help="Clinical column defining cohorts."),
        clinical_id: str | None = typer.Option(
            None, "--clinical-id", help="Clinical identifier column (default: participant_id, case, subject, id)."
        ),
        strict: bool = typer.Option(False, "--strict", help="Error when a case is missing on one side."),
        label_any: bool = typer.Option(False, "--label-any", help="Treat every mask value > 0 as lesion."),
        ba_transform: str = typer.Option("none", "--ba-transform", help="Bland-Altman scale: none, log or cbrt."),
        cases: list[str] | None = typer.Option(
            None, "--cases", help="Cases for the overlay figure (comma-separated or repeated; default: best, median, "
            "worst Dice)."
        ),
        image_dir: Path | None = typer.Option(None, "--image-dir", help="Folder of DWIs for overlay backgrounds."),
        log_axes: bool = typer.Option(False, "--log-axes", help="Logarithmic axes in the volume scatter plot."),
        no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures."),
    ) -> None:
        from infarctsam.evaluate import evaluate

        result = common.run(
            evaluate,
            gt,
            list(pred),
            names=list(name) if name else None,
            clinical=clinical,
            outdir=outdir,
            strict=strict,
            label_any=label_any,
            ba_transform=ba_transform.strip().lower(),
            overlay_cases=_split(cases) or None,
            image_dir=image_dir,
            log_axes=log_axes,
            cohort_column=cohort_column,
            clinical_id=clinical_id,
            figures=not no_figures,
            log=common.echo_err,
        )
        typer.echo(f"evaluated {result.summary['n_cases']} cases")
        for s in result.stats:
            typer.echo(
                f"{s.name}: Dice {s.dice.mean:.3f} (SD {s.dice.sd:.3f}), ICC(A,1) {s.icc_a1.value:.3f}, "
                f"bias {s.bland_altman.bias:.2f}, lesion F1 {s.means['lesion_f1']:.3f}"
            )
        typer.echo(f"report: {result.outputs['report.html']}")
