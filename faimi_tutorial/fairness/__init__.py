"""Fairness: the one metrics core (AUROC, bootstrap, signed gaps, subgroup reports,
calibration), post-processing (group thresholds) and audits built on them
(recalibration, agreement, intersections, prevalence).

Every metric the book reports is defined once, in
:mod:`~faimi_tutorial.fairness.metrics`.
"""

from . import audit, metrics, postprocess
from .metrics import (
    SubgroupReport,
    auroc,
    bootstrap_indices,
    expected_calibration_error,
    signed_gaps,
    subgroup_report,
)
from .postprocess import fit_threshold_optimizer

__all__ = [
    "audit",
    "metrics",
    "postprocess",
    "SubgroupReport",
    "auroc",
    "bootstrap_indices",
    "expected_calibration_error",
    "fit_threshold_optimizer",
    "signed_gaps",
    "subgroup_report",
]
