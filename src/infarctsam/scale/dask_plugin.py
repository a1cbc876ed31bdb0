"""The Dask worker plugin that installs infarctsam's signal handling in every worker process (needs the dask extra).

Kept apart from :mod:`infarctsam.scale.distributed` so that importing that module does not import Dask; a worker
unpickles the plugin by importing this module.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from infarctsam.scale.worker import install_signal_handlers


class SignalCleanup(WorkerPlugin):
    """On each worker (also one restarted after a death): SIGTERM and SIGHUP remove the outputs and temporary files
    of the cases it is running, then end it (see :func:`infarctsam.scale.worker.install_signal_handlers`)."""

    name = "infarctsam-signal-cleanup"

    def setup(self, worker: Any) -> None:
        """Install the handlers (the worker's event loop runs in its process's main thread)."""
        install_signal_handlers()
