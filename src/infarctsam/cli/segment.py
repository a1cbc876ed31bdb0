"""``infarctsam segment``: one DWI (file or DICOM folder) or a whole dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import echo_err, run


def segment(
    dwi: Path = typer.Argument(..., help="DWI: NIfTI/MetaImage file or DICOM folder (3D or 4D with b-values)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    adc: Path | None = typer.Option(None, "--adc", help="ADC map (any unit: mm^2/s, x10^-3 or x10^-6)."),
    engine: str = typer.Option("auto", "--engine", "-e", help="auto, threshold or sam."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Model weights for --engine sam."),
    reference: Path | None = typer.Option(None, "--reference", "-r", help="Reference lesion mask (adds Dice, "
                                          "TP/FP/FN colours)."),
    bval: Path | None = typer.Option(None, "--bval", help="b-values of a 4D DWI without sidecar."),
    bids: bool = typer.Option(False, "--bids", help="BIDS-derivatives output naming."),
    save_probability: bool = typer.Option(False, "--save-probability", help="Also write the probability map."),
    qc: bool = typer.Option(True, "--qc/--no-qc", help="Write the QC montage PNG."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    case_id: str | None = typer.Option(None, "--case-id", help="Output name (default: from the file name)."),
) -> None:
    """Segment the infarct on a DWI: lesion mask (NIfTI, input grid), volume JSON, QC picture."""
    from infarctsam.api import segment as api_segment

    result = run(
        api_segment, dwi, output, adc=adc, engine=engine, weights=weights, reference=reference, bval=bval,
        bids=bids, save_probability=save_probability, qc=qc, case_id=case_id, device=device,
    )
    s = result.stats
    line = (f"{result.case_id}: {s.volume_ml:.2f} mL, {s.lesion_count} lesion(s), largest {s.largest_lesion_ml:.2f} mL"
            f" [engine {result.summary['engine']}]")
    if "reference" in result.summary:
        line += f", Dice {result.summary['reference']['dice']:.3f} vs reference"
    typer.echo(line)
    for f in result.files:
        echo_err(f"wrote {f}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("segment")(segment)
