"""Validation of predicted infarct masks against reference masks: ``evaluate(gt, preds, ...)``.

Pairing of reference and predicted files lives in :mod:`infarctsam.evaluate.pairing`, the cohort summary in
:mod:`infarctsam.evaluate.summary`, the report in :mod:`infarctsam.report`.
"""

from infarctsam.evaluate.api import EvaluationResult, evaluate, load_mask

__all__ = ["EvaluationResult", "evaluate", "load_mask"]
