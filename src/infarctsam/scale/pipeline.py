"""The batch runner's pipeline in one process: the model never waits for a case to be read or written.

Three stages of :class:`~infarctsam.scale.worker.CaseJob` overlap across consecutive cases:

* a reader thread checks, hashes, reads and preprocesses the next cases (at most ``ahead`` of them are held ready);
* the calling thread runs the model on the current case (a GPU, or OpenVINO's / PyTorch's own CPU threads);
* a writer thread post-processes the previous cases, draws their QC pictures and writes their outputs (at most
  ``ahead`` wait for it).

Memory is bounded by ``2 * ahead + 1`` cases in flight. A failure stays with its case (the stage records it and the
later stages skip it). When the run is interrupted (Ctrl-C, SIGTERM: raised in the calling thread), reading stops,
writes in progress finish (they are atomic) and the cases started but not written are cleared, as the one-at-a-time
runner leaves them.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from infarctsam.scale.cases import PlannedCase
from infarctsam.scale.worker import CaseJob, CaseOptions, EngineSpec, engine_identity


class _Stage:
    """One daemon thread running submitted calls in order. A daemon, so that a read blocked on a dead network
    file system cannot keep an interrupted process alive."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            call, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the thread that waits for it
                future.set_exception(exc)

    def submit(self, call: Callable[[], Any]) -> Future:
        """Run ``call`` after the calls submitted before it."""
        future: Future = Future()
        self._queue.put((call, future))
        return future

    def stop(self, wait_for_current: bool) -> None:
        """Cancel what has not started; wait for the call in progress when ``wait_for_current``."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()
        self._queue.put(None)
        if wait_for_current:
            self._thread.join()


class PipelinedExecutor:
    """Runs the cases in this process with reading and writing overlapping the model.

    Parameters
    ----------
    spec : EngineSpec
        The engine, built once in this process.
    ahead : int
        Cases read ahead of the model, and written behind it, at most (at least 1).
    """

    def __init__(self, spec: EngineSpec, ahead: int = 2) -> None:
        self.spec = spec
        self.ahead = max(1, int(ahead))

    def engine_identity(self) -> dict[str, Any]:
        """Build the engine here and describe it."""
        return engine_identity(self.spec)

    def map(self, items: Sequence[PlannedCase], opts: CaseOptions) -> Iterator[dict[str, Any]]:
        """Yield each case's record as soon as it is written, in case order."""
        todo = iter([CaseJob(p, opts, self.spec) for p in items])
        reading: deque[tuple[CaseJob, Future]] = deque()
        writing: deque[tuple[CaseJob, Future]] = deque()
        current: list[CaseJob] = []
        reader, writer = _Stage("infarctsam-read"), _Stage("infarctsam-write")

        def fill() -> None:
            while len(reading) < self.ahead:
                job = next(todo, None)
                if job is None:
                    return
                reading.append((job, reader.submit(job.prepare)))

        try:
            fill()
            while reading:
                job, ready = reading.popleft()
                current.append(job)
                while not ready.done():  # report the cases written meanwhile
                    wait([ready, *(f for _, f in list(writing)[:1])], return_when=FIRST_COMPLETED)
                    while writing and writing[0][1].done():
                        yield writing.popleft()[1].result()
                ready.result()
                fill()
                job.predict()
                writing.append((job, writer.submit(job.finish)))
                current.clear()
                while writing and (writing[0][1].done() or len(writing) > self.ahead):
                    yield writing.popleft()[1].result()
            while writing:
                yield writing.popleft()[1].result()
        finally:  # normal end, interruption or an abandoned generator
            reader.stop(wait_for_current=False)  # a blocked read must not hold the process
            writer.stop(wait_for_current=True)  # a write in progress finishes (atomic files, JSON last)
            for job in [*current, *(j for j, _ in reading), *(j for j, _ in writing)]:
                job.abandon()

    def close(self) -> None:
        """Nothing to release (the threads end with each run)."""
