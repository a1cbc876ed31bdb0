"""Running one case of a batch, in this process or on a Dask worker.

:func:`run_case` never raises for a problem of the case itself: it returns a small dict (status, figures, error
line, input hashes) that the driver records. The engine is built once per process and kept in a cache keyed by
(engine, weights, device). A case is finished when its JSON (written last, atomically) matches the inputs' sha256,
the engine and the weights; anything else left by an earlier or interrupted run is removed before the case is redone,
and a case that fails leaves no output.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infarctsam.errors import InfarctsamError

if TYPE_CHECKING:
    from infarctsam.engines.base import Engine, EngineInfo
    from infarctsam.outputs.case import CasePaths
    from infarctsam.scale.cases import PlannedCase

STATUSES = ("ok", "warnings", "skipped", "failed")
_ENGINES: dict[tuple[Any, ...], Engine] = {}
_ENGINES_LOCK = threading.Lock()  # a Dask worker with several threads builds its engine once
_ACTIVE: dict[int, CasePaths] = {}  # thread id -> outputs of the case that thread is writing
STOP_GRACE_S = 10.0  # how long a stopping worker waits for its cases to unwind before removing their files itself


class WorkerStopping(KeyboardInterrupt):
    """Raised in a worker thread running a case when its process gets SIGTERM or SIGHUP, so the case unwinds like an
    interrupted local run: its temporary files and partial outputs are removed."""


def install_signal_handlers() -> bool:
    """Make SIGTERM and SIGHUP end this worker process cleanly, like the local runner.

    On the signal every case this process is running unwinds (:class:`WorkerStopping` raised in its thread): its
    temporary files and any output it already wrote are removed, exactly as when a local run is interrupted. A case
    stuck in a library call for more than :data:`STOP_GRACE_S` has its files removed by the handler. The process then
    ends with exit code 128 + the signal. Call it in the main thread of a worker process (a Dask worker plugin does).

    Returns
    -------
    bool
        False when not in the main thread (nothing installed).
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return False
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, _stop_worker)
    return True


def _stop_worker(signum: int, frame: Any) -> None:
    import ctypes

    for tid in list(_ACTIVE):
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(WorkerStopping))
    deadline = time.monotonic() + STOP_GRACE_S
    while _ACTIVE and time.monotonic() < deadline:
        time.sleep(0.02)
    for paths in list(_ACTIVE.values()):
        clear_case(paths)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(128 + signum)


@dataclass(frozen=True)
class EngineSpec:
    """How to build the engine, so that each process builds it once.

    Attributes
    ----------
    name : str
        ``auto``, ``threshold`` or ``sam``.
    weights : str or None
        Weights file for ``sam``.
    device : str
        ``cpu`` or ``cuda``.
    factory : callable, optional
        Builds a custom engine instead (must be importable by name on Dask workers); ``name``/``weights`` are then
        ignored.
    threads : int, optional
        torch threads per process (set when several worker processes share one machine).
    cache_dir : str, optional
        Folder for the exported model parts (default ``~/.cache/infarctsam/onnx``).
    precision : str
        Arithmetic of ``sam`` on CPU (``auto``, ``fp32``, ``mixed``, ``bf16``).
    """

    name: str = "auto"
    weights: str | None = None
    device: str = "cpu"
    factory: Callable[[], Engine] | None = None
    threads: int | None = None
    cache_dir: str | None = None
    precision: str = "auto"

    def key(self) -> tuple[Any, ...]:
        """Cache key of the engine this spec builds."""
        factory = None if self.factory is None else getattr(self.factory, "__qualname__", repr(self.factory))
        return (self.name, self.weights, self.device, factory, self.precision)


@dataclass(frozen=True)
class CaseOptions:
    """Per-case settings shared by every case of a batch.

    Attributes
    ----------
    outdir : str
        Output folder (must be reachable at the same path from every worker).
    bids : bool
        BIDS-derivatives naming.
    save_probability : bool
        Also write the probability map.
    qc : bool
        Write the QC montage.
    location : bool
        Register to MNI and report the lesion's territories.
    force : bool
        Redo cases even when their outputs are finished.
    run_id : str, optional
        Identifier of the batch run, written into each case's JSON: a retried task (its worker died after finishing
        the case) that finds the case finished by this very run reports it ``ok``, not ``skipped``.
    allow_mismatched_adc : bool
        Use an ADC that does not match its DWI, with a warning (default: the case fails).
    allow_unusual_images : bool
        Use a DWI with bright fluid or an ADC with dark fluid, with a warning (default: the case fails).
    """

    outdir: str
    bids: bool = False
    save_probability: bool = False
    qc: bool = True
    location: bool = True
    force: bool = False
    run_id: str | None = None
    allow_mismatched_adc: bool = False
    allow_unusual_images: bool = False


def get_engine(spec: EngineSpec) -> Engine:
    """The engine of ``spec``, built on first use in this process and reused afterwards."""
    key = spec.key()
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if spec.factory is not None:
                engine = spec.factory()
            else:
                from infarctsam.engines import load_engine

                engine = load_engine(spec.name, weights=spec.weights, device=spec.device,
                                     cache_dir=spec.cache_dir, precision=spec.precision)
            if spec.threads and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(int(spec.threads))
            _ENGINES[key] = engine
    return engine


def engine_identity(spec: EngineSpec) -> dict[str, Any]:
    """Name, weights and configuration of the engine of ``spec`` (building it in this process if needed)."""
    info = get_engine(spec).info
    return {"engine": info.name, "weights": info.weights, "engine_config": info.config}


def now_iso() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def input_hashes(planned: PlannedCase) -> dict[str, str | None]:
    """sha256 of the case's DWI and ADC (``None`` for an absent ADC)."""
    from infarctsam.errors import InputError
    from infarctsam.io.hashing import file_sha256
    from infarctsam.io.safety import check_input_path

    out: dict[str, str | None] = {}
    for key, path in (("dwi", planned.case.dwi), ("adc", planned.case.adc)):
        if path is None:
            out[key] = None
            continue
        check_input_path(path, key.upper(), folder_ok=key == "dwi")  # a FIFO would block the hashing forever
        try:
            out[key] = file_sha256(path)
        except OSError as exc:
            raise InputError(f"{Path(path).name}: cannot read ({exc.strerror or exc})") from exc
    return out


def finished_summary(paths: CasePaths, hashes: dict[str, str | None], info: EngineInfo,
                     opts: CaseOptions) -> dict[str, Any] | None:
    """The case's JSON when its outputs are complete and match these inputs, engine, weights and options."""
    try:
        data = json.loads(paths.summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    dwi = inputs.get("dwi") if isinstance(inputs.get("dwi"), dict) else {}
    adc = inputs.get("adc") if isinstance(inputs.get("adc"), dict) else {}
    if dwi.get("sha256") != hashes["dwi"] or adc.get("sha256") != hashes["adc"]:
        return None
    if data.get("engine") != info.name or data.get("weights") != info.weights:
        return None
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    wanted = {"mask"} | ({"qc"} if opts.qc else set()) | ({"probability"} if opts.save_probability else set())
    if not wanted <= set(outputs):
        return None
    folder = paths.summary.parent
    if not all(isinstance(name, str) and (folder / Path(name).name).is_file() for name in outputs.values()):
        return None
    return data


def clear_case(paths: CasePaths) -> list[Path]:
    """Remove a case's outputs and any temporary file an interrupted write left; return what was removed."""
    removed = []
    for p in paths.all():
        leftovers = glob.glob(os.path.join(glob.escape(str(p.parent)), f".{glob.escape(p.name)}.*.tmp*"))
        for f in [p, *map(Path, leftovers)]:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed.append(f)
    return removed


def failed_record(planned: PlannedCase, error: str | None = None) -> dict[str, Any]:
    """A record of ``planned`` with status ``failed`` and the given error (filled in as the case progresses)."""
    case = planned.case
    return {
        "case": planned.case_id, "status": "failed", "error": error, "volume_ml": None, "voxel_count": None,
        "lesion_count": None, "largest_lesion_ml": None, "warnings": None, "seconds": 0.0, "engine": None,
        "weights": None,
        "dwi": str(case.dwi), "adc": None if case.adc is None else str(case.adc), "dwi_sha256": None,
        "adc_sha256": None, "json": None, "host": socket.gethostname(), "pid": os.getpid(), "time": None,
    }


def _fill(record: dict[str, Any], summary: dict[str, Any], paths: CasePaths, outdir: Path) -> None:
    for key in ("volume_ml", "voxel_count", "lesion_count", "largest_lesion_ml"):
        value = summary.get(key)
        record[key] = round(value, 4) if isinstance(value, float) else value
    from infarctsam.io.text import plain_line
    from infarctsam.location.report import location_columns

    record["warnings"] = "; ".join(plain_line(w, limit=2000) for w in summary.get("warnings") or [])
    record.update(location_columns(summary.get("location")))
    with contextlib.suppress(ValueError):
        record["json"] = paths.summary.relative_to(outdir).as_posix()


def written_by_run(planned: PlannedCase, opts: CaseOptions) -> dict[str, Any] | None:
    """The record of a case whose JSON this run (``opts.run_id``) wrote but whose record had not reached the run's
    summary when the run was interrupted (a batch pipeline writes behind the model): a case is finished exactly when
    its JSON is there. None when the case has no JSON from this run, or one whose outputs are incomplete."""
    paths = planned.paths
    if paths is None or opts.run_id is None:
        return None
    try:
        data = json.loads(paths.summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    batch = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(batch, dict) or batch.get("run") != opts.run_id:
        return None
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    folder = paths.summary.parent
    if "mask" not in outputs or not all(isinstance(n, str) and (folder / Path(n).name).is_file()
                                        for n in outputs.values()):
        return None
    record = failed_record(planned)
    record["status"], record["error"] = _done_status(data), None
    record["engine"], record["weights"] = data.get("engine"), data.get("weights")
    elapsed = data.get("elapsed_s")
    record["seconds"] = elapsed if isinstance(elapsed, (int, float)) else record["seconds"]
    record["time"] = now_iso()
    _fill(record, data, paths, Path(opts.outdir))
    return record


def _done_status(summary: dict[str, Any]) -> str:
    """``warnings`` for a segmented case whose JSON holds warnings, else ``ok``."""
    return "warnings" if summary.get("warnings") else "ok"


def error_line(exc: BaseException) -> str:
    """One line describing an exception (user errors as they are, others with their type)."""
    from infarctsam.io.text import plain_line

    if isinstance(exc, InfarctsamError):
        return plain_line(exc, limit=2000)
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = plain_line(exc, limit=2000)
    return f"unexpected {type(exc).__name__}: {text}" if text else f"unexpected {type(exc).__name__}"


def run_case(planned: PlannedCase, opts: CaseOptions, spec: EngineSpec) -> dict[str, Any]:
    """Segment one case of a batch (or skip it when already finished) and return its record.

    The three stages of :class:`CaseJob` (read, model, outputs) run in turn; the batch runner's pipeline
    (:mod:`infarctsam.scale.pipeline`) overlaps them across cases instead.

    Parameters
    ----------
    planned : PlannedCase
        The case and its output paths.
    opts : CaseOptions
        Output options.
    spec : EngineSpec
        The engine, built once per process.

    Returns
    -------
    dict
        ``case``, ``status`` (ok / warnings: segmented, with warnings in its JSON / skipped / failed), ``error``
        (one line or None), ``volume_ml``, ``voxel_count``,
        ``lesion_count``, ``largest_lesion_ml``, ``seconds``, ``engine``, ``weights``, ``dwi``, ``adc``,
        ``dwi_sha256``, ``adc_sha256``, ``json`` (relative to the output folder), ``host``, ``pid``, ``time``.
    """
    job = CaseJob(planned, opts, spec)
    job.prepare()
    writing = not job.done and job.cleared and planned.paths is not None
    with _registered(planned.paths) if writing else contextlib.nullcontext():
        job.predict()
        return job.finish()


@contextlib.contextmanager
def _registered(paths: CasePaths | None):
    """Record ``paths`` as the outputs this thread is writing, so that a stopping worker process
    (:func:`install_signal_handlers`) unwinds the case and removes its files; the previous entry comes back after."""
    tid = threading.get_ident()
    previous = _ACTIVE.get(tid)
    if paths is not None:
        _ACTIVE[tid] = paths
    try:
        yield
    finally:
        if previous is None:
            _ACTIVE.pop(tid, None)
        else:
            _ACTIVE[tid] = previous


class CaseJob:
    """One case of a batch in three stages: :meth:`prepare` (engine identity, input hashes, finished check, clearing
    and reading and preprocessing the case), :meth:`predict` (the model) and :meth:`finish` (post-processing and
    outputs). A stage that fails records the error and makes the later stages do nothing (``done``); only
    :meth:`finish` returns the record.

    Parameters
    ----------
    planned : PlannedCase
        The case and its output paths.
    opts : CaseOptions
        Output options.
    spec : EngineSpec
        The engine, built once per process.
    """

    def __init__(self, planned: PlannedCase, opts: CaseOptions, spec: EngineSpec) -> None:
        self.planned, self.opts, self.spec = planned, opts, spec
        self.record = failed_record(planned)
        self.busy_s = 0.0  # seconds in this case's own stages (not waiting in the pipeline's queues)
        self.done = False
        self.cleared = False  # the case's earlier outputs were removed: it must be written or cleared again
        self.inputs: Any = None
        self.prob: Any = None
        self._engine: Engine | None = None

    def _fail(self, exc: BaseException) -> None:
        self.record["status"], self.record["error"] = "failed", error_line(exc)
        self.done = True
        self.inputs = self.prob = None  # the memory goes now, not when the record is collected

    def prepare(self) -> None:
        """Check, skip (already finished), or clear the case's outputs and read and preprocess its images."""
        with self._timed():
            self._prepare()

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        """Adds the time spent inside to :attr:`busy_s`."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.busy_s += time.perf_counter() - t0

    def _prepare(self) -> None:
        from infarctsam.api import read_case
        from infarctsam.outputs.case import check_replaceable

        planned, opts, record = self.planned, self.opts, self.record
        try:
            if planned.error is not None or planned.paths is None:
                record["error"] = planned.error or "no output paths"
                self.done = True
                return
            paths = planned.paths
            self._engine = engine = get_engine(self.spec)
            info = engine.info
            record["engine"], record["weights"] = info.name, info.weights
            hashes = input_hashes(planned)
            record["dwi_sha256"], record["adc_sha256"] = hashes["dwi"], hashes["adc"]
            done = finished_summary(paths, hashes, info, opts)
            batch = done.get("batch") if done is not None else None
            by_this_run = opts.run_id is not None and isinstance(batch, dict) and batch.get("run") == opts.run_id
            if done is not None and (by_this_run or not opts.force):
                record["status"] = _done_status(done) if by_this_run else "skipped"
                _fill(record, done, paths, Path(opts.outdir))
                self.done = True
                return
            check_replaceable(paths)  # never remove or replace a file infarctsam did not write
            with _registered(paths):  # a stopping worker process removes what this case wrote
                clear_case(paths)
                self.cleared = True
                self.inputs = read_case(planned.case.dwi, opts.outdir, adc=planned.case.adc, bids=opts.bids,
                                        case_id=planned.case_id, input_sha256={k: v for k, v in hashes.items() if v},
                                        allow_mismatched_adc=opts.allow_mismatched_adc,
                                        allow_unusual_images=opts.allow_unusual_images)
        except Exception as exc:  # one case's failure is recorded, the batch goes on
            self._fail(exc)

    def predict(self) -> None:
        """The engine's lesion probability of the prepared case."""
        from infarctsam.api import predict_case

        if self.done or self._engine is None:
            return
        try:
            with self._timed():
                self.prob = predict_case(self._engine, self.inputs, location=self.opts.location)
        except Exception as exc:
            self._fail(exc)

    def finish(self) -> dict[str, Any]:
        """Write the case's outputs (a failure leaves none) and return its record."""
        from infarctsam.api import finish_case

        record, opts = self.record, self.opts
        t0 = time.perf_counter()
        try:
            if not self.done and self._engine is not None and self.planned.paths is not None:
                paths = self.planned.paths
                try:
                    with _registered(paths):  # a stopping worker process removes what this case wrote
                        result = finish_case(self.inputs, self._engine, self.prob,
                                             save_probability=opts.save_probability, qc=opts.qc,
                                             location=opts.location, provenance={"run": opts.run_id,
                                                                                 "host": record["host"],
                                                                                 "pid": record["pid"]})
                except BaseException:
                    clear_case(paths)
                    raise
                record["status"], record["error"] = _done_status(result.summary), None
                _fill(record, result.summary, paths, Path(opts.outdir))
        except Exception as exc:  # one case's failure is recorded, the batch goes on
            self._fail(exc)
        finally:
            self.done = True
            self.inputs = self.prob = None
            record["seconds"] = round(self.busy_s + time.perf_counter() - t0, 3)
            record["time"] = now_iso()
        return record

    def abandon(self) -> None:
        """Remove what an interrupted case may have left (its outputs were cleared before it was read); a case not
        yet started, or already written, is left as it is."""
        if self.planned.paths is not None and self.cleared and not self.done:
            clear_case(self.planned.paths)
        self.done = True
        self.inputs = self.prob = None
