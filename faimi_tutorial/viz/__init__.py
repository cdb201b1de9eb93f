"""Visualisation: the book's figures (:mod:`~faimi_tutorial.viz.plotting`) and the
interactive explorer (:mod:`~faimi_tutorial.viz.widgets`). Figures depend on the
metrics, never the reverse."""

from . import plotting, widgets

__all__ = ["plotting", "widgets"]
