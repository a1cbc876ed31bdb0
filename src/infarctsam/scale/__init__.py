"""Cohorts at scale: segment every case of a dataset root or case list, resumably, in shards or on a Dask cluster.

* :func:`run_batch` runs a whole cohort: one engine load per process, one failure never stops the run, a run log
  (``infarctsam_run.jsonl``) and a summary table (``infarctsam_summary.csv``) in the output folder.
* A rerun skips the cases already finished with the same inputs, engine and weights, and redoes partial ones.
* ``shard=(i, n)`` splits the sorted case list for job arrays; ``scheduler=`` sends the cases to a Dask cluster
  (``local:N`` starts N worker processes on this machine).

Nothing heavy is imported here: the command line imports this package only for batch runs.
"""

from __future__ import annotations

from infarctsam.scale.cases import discover, is_batch_input, parse_shard, select_shard
from infarctsam.scale.runner import BatchReport, run_batch
from infarctsam.scale.worker import CaseOptions, EngineSpec, run_case

__all__ = [
    "BatchReport",
    "CaseOptions",
    "EngineSpec",
    "discover",
    "is_batch_input",
    "parse_shard",
    "run_batch",
    "run_case",
    "select_shard",
]
