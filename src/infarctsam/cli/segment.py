"""``infarctsam segment``: one DWI (file or DICOM folder) or a whole dataset (root folder or list of cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from infarctsam.cli.common import PlainCommand, echo_err, fail, naming_options, run

_SINGLE_ONLY = ("--adc", "--reference", "--bval", "--case-id", "--dicom-reference", "--b0")
STRICT_EXIT = 3


def segment(
    dwi: Path = typer.Argument(..., metavar="DWI", help="DWI: a NIfTI or MetaImage file or a DICOM folder (3D, or 4D "
                               "with b-values). For a batch: a dataset root (BIDS, ISLES'22 or a flat folder) or a "
                               ".txt/.tsv/.csv file listing 'DWI [ADC]' per line."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FOLDER", help="Output folder."),
    adc: Path | None = typer.Option(None, "--adc", metavar="FILE", help="ADC map (any unit: mm^2/s, x10^-3 or "
                                    "x10^-6)."),
    engine: Literal["auto", "threshold", "sam"] = typer.Option(
        "auto", "--engine", "-e", help="auto: sam when a model is installed, else threshold."),
    weights: Path | None = typer.Option(None, "--weights", "-w", metavar="FILE", help="Model weights for --engine "
                                        "sam."),
    reference: Path | None = typer.Option(None, "--reference", "-r", metavar="FILE", help="Reference lesion mask: "
                                          "adds Dice to the JSON and TP/FP/FN outlines to the QC picture."),
    bval: Path | None = typer.Option(None, "--bval", metavar="FILE", help="b-values of a 4D DWI without sidecar."),
    b0: Path | None = typer.Option(None, "--b0", metavar="FILE", help="b0 image of the same series, when there is "
                                   "no ADC map: the ADC is computed as ln(S0/S_b)/b (a 4D DWI's own b0 volumes are "
                                   "used the same way)."),
    bids: bool = typer.Option(False, "--bids", help="BIDS-derivatives output naming."),
    save_probability: bool = typer.Option(False, "--save-probability", help="Also write the probability map."),
    qc: bool = typer.Option(True, "--qc/--no-qc", help="Write the QC picture (PNG)."),
    location: bool = typer.Option(True, "--location/--no-location", help="Register to MNI and report the arterial "
                                  "territories and regions of the lesion (JSON, result line, CASE_location.png)."),
    device: Literal["cpu", "cuda"] = typer.Option("cpu", "--device", help="Where the model runs."),
    precision: Literal["auto", "fp32", "mixed", "bf16"] = typer.Option(
        "auto", "--precision", help="Arithmetic of the sam engine on CPU. auto = fp32: the unoptimised model's "
        "results to float rounding. mixed: float32 encoder, bfloat16 decoder, faster on CPUs with AMX or AVX-512 "
        "BF16 (checked cases within 0.0102 Dice of fp32). bf16: all bfloat16, fastest (up to 0.024 Dice)."),
    case_id: str | None = typer.Option(None, "--case-id", metavar="NAME", help="Output name (default: from the file "
                                       "name)."),
    shard: str | None = typer.Option(None, "--shard", metavar="I/N", help="Batch: run shard I/N of the sorted case "
                                     "list (case k goes to shard k mod N; I from 0), e.g. --shard "
                                     "$SLURM_ARRAY_TASK_ID/50."),
    scheduler: str | None = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Batch: Dask scheduler "
                                         "address (tcp://host:8786), or local:N for N local worker processes "
                                         "(needs the dask extra)."),
    force: bool = typer.Option(False, "--force", help="Batch: redo finished cases too (default: skip cases whose "
                               "outputs match the inputs, engine and weights)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", metavar="FOLDER", help="Where the exported model "
                                          "parts are kept (default: ~/.cache/infarctsam/onnx)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the result line (and errors): no progress, "
                               "warning or 'wrote' lines (progress is shown only when stderr is a terminal)."),
    strict: bool = typer.Option(False, "--strict", help=f"Exit with code {STRICT_EXIT} when a result carries "
                                "warnings (outputs are still written)."),
    allow_mismatched_adc: bool = typer.Option(False, "--allow-mismatched-adc", help="Use an ADC that does not match "
                                              "the DWI's anatomy (another patient, shifted) with a warning instead "
                                              "of refusing the case."),
    allow_unusual_images: bool = typer.Option(False, "--allow-unusual-images", help="Use a DWI that looks like a "
                                              "b0, T2 or ADC image (bright fluid), or an ADC that looks like a DWI, "
                                              "with a warning instead of refusing the case."),
    dicom_reference: Path | None = typer.Option(None, "--dicom-reference", metavar="SERIES", help="DICOM series the "
                                                "DWI was converted from: also write a DICOM SEG + SR referencing it "
                                                "(written anyway for a DICOM DWI)."),
) -> None:
    """Segment the infarct on a DWI: lesion mask (NIfTI, on the input grid), volume JSON and QC picture.

    Given a dataset root or a case list, segments every case (a batch): the engine is loaded once, a failed case is
    recorded and the run goes on, finished cases are skipped on a rerun, and OUT/infarctsam_run.jsonl and
    OUT/infarctsam_summary.csv record the run. Exit code 1 when any case failed.
    """
    from infarctsam.scale.cases import is_batch_input

    if is_batch_input(dwi):
        _batch(dwi, output, engine=engine, weights=weights, device=device, bids=bids,
               save_probability=save_probability, qc=qc, location=location, shard=shard, scheduler=scheduler,
               force=force, quiet=quiet, cache_dir=cache_dir, precision=precision, strict=strict,
               allow_mismatched_adc=allow_mismatched_adc, allow_unusual_images=allow_unusual_images,
               single=dict(zip(_SINGLE_ONLY, (adc, reference, bval, case_id, dicom_reference, b0), strict=True)))
        return
    for name, value in (("--shard", shard), ("--scheduler", scheduler)):
        if value is not None:
            raise fail(f"{name} applies to a batch (a dataset root or a list of cases), not to one DWI")
    from infarctsam.cli.progress import StageProgress

    progress = StageProgress.for_terminal(quiet)
    progress("loading infarctsam")
    from infarctsam.api import segment as api_segment

    named = {"--adc": adc, "--reference": reference, "--bval": bval, "--weights": weights,
             "--dicom-reference": dicom_reference, "--b0": b0}
    result = run(
        naming_options(api_segment, named, argument=dwi),
        dwi, output, adc=adc, engine=engine, weights=weights, reference=reference, bval=bval,
        bids=bids, save_probability=save_probability, qc=qc, case_id=case_id, device=device, cache_dir=cache_dir,
        progress=_announcing(progress, _first_export_notice(engine, weights, cache_dir, device, quiet)),
        dicom_reference=dicom_reference, precision=precision, location=location,
        allow_mismatched_adc=allow_mismatched_adc, allow_unusual_images=allow_unusual_images, b0=b0,
    )
    progress.finish()
    warnings = result.summary.get("warnings", [])
    typer.echo(result_line(result.case_id, result.stats, result.summary))
    if not quiet:
        from infarctsam.io.text import plain_line

        for warning in warnings:
            echo_err(f"warning: {plain_line(warning, limit=2000)}")
        for f in result.files:
            echo_err(f"wrote {f}")
    if strict and warnings:
        raise fail(f"--strict: the result carries {plural(len(warnings), 'warning')} (outputs written)", STRICT_EXIT)


def _first_export_notice(engine: str, weights: Path | None, cache_dir: Path | None, device: str,
                         quiet: bool) -> str | None:
    """The line to print before the model's one-time export (the first run of a model on this machine), or None."""
    if quiet or engine == "threshold":
        return None
    from infarctsam.engines.sam import export_pending

    if not export_pending(weights, cache_dir, device):
        return None
    where = cache_dir or "~/.cache/infarctsam/onnx"
    return (f"first run of this model: exporting and compiling it once into {where} (about 200 MB, tens of "
            "seconds); later runs start in seconds")


def _say_first_export(engine: str, weights: Path | None, cache_dir: Path | None, device: str, quiet: bool) -> None:
    """One line on stderr before the model's one-time export (the first run of a model on this machine)."""
    notice = _first_export_notice(engine, weights, cache_dir, device, quiet)
    if notice:
        echo_err(notice)


def _announcing(progress: Any, notice: str | None) -> Any:
    """``progress`` that first prints ``notice`` on stderr when the engine starts loading: after the case's inputs
    were checked and read, so a bad input still fails in one line."""
    if not notice:
        return progress
    pending = [notice]

    def say(stage: str, done: int = 0, total: int = 0) -> None:
        if pending and stage.startswith("loading the "):
            echo_err(pending.pop())
        progress(stage, done, total)

    return say


def plural(n: int, word: str) -> str:
    """``1 warning``, ``2 warnings``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def result_line(case: str, stats: Any, summary: dict[str, Any]) -> str:
    """The one-line result on stdout: volume, lesions, engine, Dice against a reference, warnings."""
    line = (f"{case}: {stats.volume_ml:.2f} mL, {plural(stats.lesion_count, 'lesion')}, largest "
            f"{stats.largest_lesion_ml:.2f} mL [engine {summary['engine']}]")
    if "reference" in summary:
        line += f", Dice {summary['reference']['dice']:.3f} vs reference"
    if summary.get("location"):
        line += f", {summary['location']['summary']}"
    n = len(summary.get("warnings") or [])
    return line + (f", {plural(n, 'warning')} (see the JSON)" if n else "")


def _batch(root: Path, output: Path, *, engine: str, weights: Path | None, device: str, bids: bool,
           save_probability: bool, qc: bool, location: bool, shard: str | None, scheduler: str | None, force: bool,
           quiet: bool,
           cache_dir: Path | None, precision: str, strict: bool, allow_mismatched_adc: bool,
           allow_unusual_images: bool, single: dict[str, object]) -> None:
    from infarctsam.scale.cases import parse_shard
    from infarctsam.scale.records import format_table
    from infarctsam.scale.runner import run_batch

    given = [name for name, value in single.items() if value is not None]
    if given:
        raise fail(f"{', '.join(given)} applies to one DWI; in a batch each case's ADC is found beside its DWI "
                   "(or in the list's second column)")
    shard_ix = run(parse_shard, shard) if shard is not None else None
    _say_first_export(engine, weights, cache_dir, device, quiet)
    report = run(run_batch, root, output, engine=engine, weights=weights, device=device, bids=bids,
                 save_probability=save_probability, qc=qc, location=location, shard=shard_ix, scheduler=scheduler,
                 force=force,
                 progress=not quiet, cache_dir=cache_dir, precision=precision,
                 allow_mismatched_adc=allow_mismatched_adc, allow_unusual_images=allow_unusual_images)
    if not quiet:
        typer.echo(format_table(report.records))
    c = report.counts
    warned = f" ({c['warnings']} with warnings)" if c["warnings"] else ""
    typer.echo(f"{plural(len(report.records), 'case')}: {c['ok'] + c['warnings']} segmented{warned}, {c['skipped']} "
               f"already done, {c['failed']} failed in {report.elapsed_s:.1f} s [engine {report.engine.get('engine')}]")
    for r in report.records:
        if r["status"] == "failed":
            echo_err(f"failed: {r['case']}: {r['error']}")
        elif r.get("warnings") and not quiet:
            echo_err(f"warnings: {r['case']}: {r['warnings']}")
    if not quiet:
        echo_err(f"run log {report.log}; summary {report.summary}")
    if report.exit_code == 0 and strict and report.warned:
        raise fail(f"--strict: {plural(report.warned, 'case')} with warnings", STRICT_EXIT)
    raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("segment", cls=PlainCommand, short_help="Segment the infarct on a DWI or a whole dataset.")(segment)
