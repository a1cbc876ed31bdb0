"""The batch driver: discover, plan, shard, run each case (here or on Dask), record, summarise."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infarctsam._version import __version__
from infarctsam.errors import ConfigError
from infarctsam.review.decisions import decisions_beside
from infarctsam.scale.cases import PlannedCase, discover, input_guard, plan, select_shard
from infarctsam.scale.records import RunLog, SummaryFile, counts, pending_row, record_names
from infarctsam.scale.worker import CaseOptions, EngineSpec, engine_identity, now_iso, run_case, written_by_run

if TYPE_CHECKING:
    from infarctsam.engines.base import Engine


@dataclass
class BatchReport:
    """What a batch run did.

    Attributes
    ----------
    records : list of dict
        One record per case of the run (see :func:`infarctsam.scale.worker.run_case`), in case order.
    counts : dict
        Cases per status (ok, warnings, skipped, failed, pending).
    log : Path
        The JSON-lines run log.
    summary : Path
        The summary CSV.
    engine : dict
        Engine name, weights and configuration.
    elapsed_s : float
        Wall time of the run.
    """

    records: list[dict[str, Any]]
    counts: dict[str, int]
    log: Path
    summary: Path
    engine: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when any case failed (or did not run), else 0."""
        return 1 if self.counts.get("failed", 0) or self.counts.get("pending", 0) else 0

    @property
    def warned(self) -> int:
        """Cases whose results carry warnings (segmented now or earlier)."""
        return sum(1 for r in self.records if r.get("status") != "failed" and r.get("warnings"))


class SerialExecutor:
    """Runs the cases one after the other in this process (the engine is built once)."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    def engine_identity(self) -> dict[str, Any]:
        """Build the engine here and describe it."""
        return engine_identity(self.spec)

    def map(self, items: Sequence[PlannedCase], opts: CaseOptions) -> Iterator[dict[str, Any]]:
        """Yield each case's record as it finishes."""
        for item in items:
            yield run_case(item, opts, self.spec)

    def close(self) -> None:
        """Nothing to release."""


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((0, 0))
    # a terminal that reports no size (some CI and container ttys) would make tqdm print nothing
    shape: dict[str, Any] = {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": 100,
                                                                                                  "nrows": 24}
    return tqdm(total=total, unit="case", file=sys.stderr, smoothing=0.1, disable=not (enabled and _is_tty()),
                **shape)


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def run_batch(
    root: str | Path,
    output: str | Path,
    *,
    engine: str = "auto",
    weights: str | Path | None = None,
    device: str = "cpu",
    bids: bool = False,
    save_probability: bool = False,
    qc: bool = True,
    location: bool = True,
    shard: tuple[int, int] | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = False,
    engine_factory: Callable[[], Engine] | None = None,
    summary_every_s: float = 2.0,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    cache_dir: str | Path | None = None,
    precision: str = "auto",
    allow_mismatched_adc: bool = False,
    allow_unusual_images: bool = False,
    read_ahead: int = 2,
) -> BatchReport:
    """Segment every case of a dataset root or case list.

    Parameters
    ----------
    root : str or Path
        BIDS / ISLES'22 root, flat folder of images, or a ``.txt``/``.tsv``/``.csv`` list of ``DWI [ADC]`` lines.
    output : str or Path
        Output folder (reachable at the same path from every worker when a cluster is used).
    engine, weights, device
        The engine, built once per process.
    bids, save_probability, qc, location
        Output options, as for :func:`infarctsam.api.segment`.
    shard : (int, int), optional
        ``(i, n)``: run only the cases k of the sorted list with ``k mod n == i``.
    scheduler : str, optional
        Dask scheduler address (``tcp://host:8786``) or ``local:N`` for N local worker processes; default: run here.
    force : bool
        Redo finished cases too.
    progress : bool
        Progress bar with ETA on stderr (only shown when stderr is a terminal).
    engine_factory : callable, optional
        Builds a custom engine in each process instead of ``engine``/``weights``.
    summary_every_s : float
        Minimum interval between incremental rewrites of the summary CSV.
    on_record : callable, optional
        Called with each case's record as it arrives (after the log and summary are updated).
    cache_dir : str or Path, optional
        Folder for the exported model parts (default ``~/.cache/infarctsam/onnx``).
    precision : str
        Arithmetic of ``sam`` on CPU (``auto``, ``fp32``, ``mixed``, ``bf16``; see :func:`infarctsam.api.segment`).
    allow_mismatched_adc : bool
        Segment a case whose ADC does not match its DWI (with a warning) instead of failing it.
    allow_unusual_images : bool
        Segment a case whose DWI does not look like a b~1000 DWI, or whose ADC does not look like an ADC map (with a
        warning; :mod:`infarctsam.preprocess.image_kind`), instead of failing it.
    read_ahead : int
        Without a scheduler: cases read and preprocessed ahead of the model, and written behind it, in two background
        threads (:mod:`infarctsam.scale.pipeline`), so the model (a GPU) does not wait for them; 0 runs one case at a
        time.

    Returns
    -------
    BatchReport

    Raises
    ------
    InfarctsamError
        Problems of the whole run (no case found, unwritable output folder, bad engine or weights, unreachable
        scheduler); problems of one case are recorded and the run goes on.
    """
    from infarctsam.outputs.case import check_writable, ensure_folder

    t0 = time.perf_counter()
    root, outdir = Path(root).absolute(), Path(output).absolute()  # workers may run elsewhere, in another cwd
    cases = discover(root)
    if root.is_dir() and outdir.resolve() == root.resolve():
        raise ConfigError("the output folder must not be the input folder (outputs would be read as new cases)")
    guard = input_guard(cases, *([root] if root.is_file() else []))
    guard.check([outdir / name for name in record_names(shard)])  # e.g. a case list named like the summary
    planned = plan(cases, outdir, bids=bids, guard=guard)
    items = select_shard(planned, *shard) if shard else planned
    check_writable(outdir)  # nothing is created before the engine is built
    review = decisions_beside(outdir)  # the review page's decisions, added to the summary CSV
    spec = EngineSpec(engine, None if weights is None else str(weights), device, engine_factory,
                      cache_dir=None if cache_dir is None else str(Path(cache_dir).absolute()), precision=precision)
    opts = CaseOptions(str(outdir), bids=bids, save_probability=save_probability, qc=qc, force=force,
                       location=location, run_id=uuid.uuid4().hex[:12], allow_mismatched_adc=allow_mismatched_adc,
                       allow_unusual_images=allow_unusual_images)
    if scheduler:
        from infarctsam.scale.distributed import DaskExecutor

        executor: Any = DaskExecutor(scheduler, spec)
    elif read_ahead > 0:
        from infarctsam.scale.pipeline import PipelinedExecutor

        executor = PipelinedExecutor(spec, read_ahead)
    else:
        executor = SerialExecutor(spec)
    try:
        identity = executor.engine_identity()
        ensure_folder(outdir)
        header = {"time": now_iso(), "host": socket.gethostname(), "pid": os.getpid(), "version": __version__,
                  "input": str(root), "output": str(outdir), "cases_total": len(cases), "cases": len(items),
                  "shard": None if shard is None else f"{shard[0]}/{shard[1]}", "scheduler": scheduler,
                  "device": device, "bids": bids, "save_probability": save_probability, "qc": qc, "location": location,
                  "force": force, **identity}
        report = _drive(executor, items, opts, header, shard, progress, summary_every_s, on_record, review)
    finally:
        executor.close()
    report.engine = identity
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report


def _drive(executor: Any, items: Sequence[PlannedCase], opts: CaseOptions, header: dict[str, Any],
           shard: tuple[int, int] | None, progress: bool, summary_every_s: float,
           on_record: Callable[[dict[str, Any]], None] | None,
           review: dict[str, dict[str, str]] | None = None) -> BatchReport:
    """Run the cases, writing the log and the summary as records arrive; both are closed properly even when the run
    is interrupted (unfinished cases stay ``pending``)."""
    from infarctsam.io.atomic import remove_stale_temps

    t0 = time.perf_counter()
    log_name, csv_name = record_names(shard)
    remove_stale_temps([Path(opts.outdir) / csv_name])  # a run killed while rewriting its summary
    log = RunLog(Path(opts.outdir) / log_name)
    summary = SummaryFile(Path(opts.outdir) / csv_name,
                          [pending_row(p.case_id, str(p.case.dwi), None if p.case.adc is None else str(p.case.adc))
                           for p in items], summary_every_s, review=review)
    log.event("run_start", run=opts.run_id, **header)
    summary.write()
    bar = _progress(len(items), progress)
    status, failed = "interrupted", 0
    records: Iterator[dict[str, Any]] = iter(())
    try:
        runnable = [p for p in items if p.error is None]
        refused = [run_case(p, opts, executor.spec) for p in items if p.error is not None]
        records = _chain(refused, executor.map(runnable, opts) if runnable else iter(()))
        for record in records:
            record["run"] = opts.run_id
            log.event("case", **record)
            summary.update(record)
            bar.update(1)
            if record["status"] == "failed":
                failed += 1
                bar.set_postfix_str(f"{failed} failed")
            if on_record is not None:
                on_record(record)
        status = "finished"
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # an interrupted pipeline stops its threads before the records are closed
            close()
        if status != "finished":  # cases written behind the model whose records had not arrived yet
            for record in _written_unrecorded(items, opts, summary):
                log.event("case", **record)
                summary.update(record)
                bar.update(1)
        bar.close()
        summary.write()
        n = counts(summary.rows.values())
        log.event("run_end", run=opts.run_id, time=now_iso(), status=status, counts=n,
                  elapsed_s=round(time.perf_counter() - t0, 3))
        log.close()
    return BatchReport(list(summary.rows.values()), n, log.path, summary.path)


def _written_unrecorded(items: Sequence[PlannedCase], opts: CaseOptions, summary: Any) -> list[dict[str, Any]]:
    """Records of the cases still ``pending`` in the summary whose JSON this run wrote before it was interrupted."""
    found = []
    for p in items:
        row = summary.rows.get(p.case_id)
        if row is not None and row.get("status") == "pending":
            record = written_by_run(p, opts)
            if record is not None:
                record["run"] = opts.run_id
                found.append(record)
    return found


def _chain(first: list[dict[str, Any]], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from first
    yield from rest
