"""Running a batch on a Dask distributed cluster.

Each case is one task (:func:`infarctsam.scale.worker.run_case`) that returns a small dict, never an image. Every
worker process builds the engine once (a per-process cache keyed by engine, weights and device) and writes the
case's outputs itself, atomically and all or nothing, into the shared output folder. When a worker dies in the
middle of a case, the scheduler gives the case to another worker; the retry removes whatever the dead attempt left
and redoes the case. A case that kills more workers than ``allowed-failures`` allows (a crash or out-of-memory on
that very case) is recorded as failed and the run goes on.

``local:N`` starts a :class:`~dask.distributed.LocalCluster` of N worker processes with one thread each on this
machine; any other value is the address of a running scheduler (``tcp://host:8786``), whose own configuration
(``distributed.scheduler.allowed-failures``, ``distributed.scheduler.worker-saturation``) then applies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from infarctsam.errors import ConfigError
from infarctsam.scale.cases import PlannedCase
from infarctsam.scale.worker import (
    CaseOptions,
    EngineSpec,
    engine_identity,
    error_line,
    failed_record,
    now_iso,
    run_case,
)

LOCAL_ALLOWED_FAILURES = 2  # a case may take down two workers; the third death marks it failed


def parse_scheduler(text: str) -> tuple[str, int | str]:
    """``local:N`` -> ``("local", N)``; ``local`` -> one worker per core; anything else -> ``("address", text)``.

    Raises
    ------
    ConfigError
        ``local:N`` with N not a positive integer.
    """
    text = text.strip()
    if text == "local":
        return "local", max(1, os.cpu_count() or 1)
    if text.startswith("local:"):
        match = re.fullmatch(r"local:(\d+)", text)
        if not match or int(match.group(1)) < 1:
            raise ConfigError(f"--scheduler {text}: expected local:N with N >= 1 worker processes")
        return "local", int(match.group(1))
    if not text:
        raise ConfigError("--scheduler needs an address (tcp://host:8786) or local:N")
    return "address", text


class DaskExecutor:
    """Send cases to a Dask cluster and yield their records as they complete.

    Parameters
    ----------
    scheduler : str
        ``local:N`` or a scheduler address.
    spec : EngineSpec
        The engine each worker builds once.
    allowed_failures : int
        For a local cluster: how many worker deaths a case may cause before it is recorded as failed.
    """

    def __init__(self, scheduler: str, spec: EngineSpec, allowed_failures: int = LOCAL_ALLOWED_FAILURES) -> None:
        from infarctsam.extras import require_extra

        require_extra("dask", "--scheduler")
        import dask
        from dask.distributed import Client, LocalCluster

        kind, value = parse_scheduler(scheduler)
        self.cluster = None
        if kind == "local":
            n = int(value)
            spec = dataclasses.replace(spec, threads=spec.threads or max(1, (os.cpu_count() or 1) // n))
            # worker-saturation 1.0: a worker holds only the case it runs, so when a case kills its worker no
            # innocent case queued behind it is counted as a suspect (and marked failed after a few deaths)
            with dask.config.set({"distributed.scheduler.allowed-failures": int(allowed_failures),
                                  "distributed.scheduler.worker-saturation": 1.0}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.CRITICAL)
            self.client = Client(self.cluster, set_as_default=False)
        else:
            try:
                self.client = Client(str(value), timeout="20s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                first = " ".join(str(exc).split()) or type(exc).__name__
                raise ConfigError(f"cannot reach the Dask scheduler at {value}: {first}") from exc
        from infarctsam.scale.dask_plugin import SignalCleanup

        # every worker process, also one started later, cleans up on SIGTERM/SIGHUP like the local runner
        self.client.register_plugin(SignalCleanup(), name=SignalCleanup.name)
        self.spec = spec

    def engine_identity(self) -> dict[str, Any]:
        """Build the engine on one worker (raising its one-line error if it cannot be built) and describe it."""
        return self.client.submit(engine_identity, self.spec, pure=False, key=f"infarctsam-engine-{_token()}").result()

    def map(self, items: Sequence[PlannedCase], opts: CaseOptions) -> Iterator[dict[str, Any]]:
        """Submit every case and yield each record as it completes (a case that kept killing workers: failed)."""
        from dask.distributed import as_completed

        token = _token()
        keys = [f"infarctsam-{item.case_id}-{token}" for item in items]
        futures = self.client.map(run_case, items, opts=opts, spec=self.spec, key=keys, pure=False)
        by_key = {f.key: item for f, item in zip(futures, items, strict=True)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                # result() also waits when the worker holding a finished case's record died meanwhile (the key is
                # then "lost" and recomputed: the recomputation finds the case finished by this run)
                try:
                    record = future.result()
                except (Exception, asyncio.CancelledError) as exc:
                    record = _lost(by_key[future.key], exc)
                future.release()
                yield record
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this executor started one."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _token() -> str:
    return uuid.uuid4().hex[:10]


def _lost(item: PlannedCase, exc: BaseException) -> dict[str, Any]:
    record = failed_record(item)
    if type(exc).__name__ == "KilledWorker":
        record["error"] = ("the worker process running this case died repeatedly (out of memory or a crash); "
                           "see the worker logs")
    else:
        record["error"] = f"the cluster lost this case: {error_line(exc)}"
    record["time"] = now_iso()
    return record
