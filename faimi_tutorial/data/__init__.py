"""Data: the brain template and its regions, the simulator, and BIDS datasets.

Modules: :mod:`~faimi_tutorial.data.anatomy` (template, masks, regions),
:mod:`~faimi_tutorial.data.labels` (labels as fallible readers give them),
:mod:`~faimi_tutorial.data.simulate` (subjects with disease and bias effects and their
counterfactual twins) and :mod:`~faimi_tutorial.data.datasets` (writing and reading
cohorts as BIDS datasets; the ``faimi simulate`` command).
"""

from . import anatomy, datasets, harmonise, labels, simulate
from .datasets import read_dataset, write_cohort
from .simulate import Cohort, SimulationConfig, generate

__all__ = [
    "anatomy",
    "datasets",
    "harmonise",
    "labels",
    "simulate",
    "Cohort",
    "SimulationConfig",
    "generate",
    "read_dataset",
    "write_cohort",
]
