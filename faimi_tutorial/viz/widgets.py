"""Interactive explorers (ipywidgets) for the chapters.

Each explorer has a pure ``render(...)`` method that draws one matplotlib figure from
the current settings, so the same picture can be shown statically (in the built
book, or in tests) and interactively (in a live notebook, where sliders call it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ..data import anatomy
from .plotting import as_array, axial_view, draw_regions, show_image
from .plotting import slice_index as default_slice

__all__ = ["CohortExplorer", "explore_cohort", "VIEWS"]

#: What the cohort explorer can show.
VIEWS: tuple[str, ...] = ("image", "twin", "image - twin", "twin - template")


class CohortExplorer:
    """Browse a simulated cohort: subject, slice, view and region overlay.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort (with twins and a configuration).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The controls and the figure; display it in a notebook.
    """

    def __init__(self, cohort: Any) -> None:
        import ipywidgets as w

        if cohort.config is None:
            raise ValueError(
                "the explorer needs a simulated cohort (cohort.config is None)"
            )
        self.cohort = cohort
        cfg = cohort.config
        self._template = None
        n = len(cohort)
        self.subject = w.IntSlider(
            value=0, min=0, max=n - 1, description="subject", continuous_update=False
        )
        if cfg.dims == 3:
            k0 = int(
                round((cfg.disease.centre_mm[2] - cfg.grid.origin[2]) / cfg.spacing)
            )
            self.slice = w.IntSlider(
                value=min(max(k0, 0), cfg.grid.shape[2] - 1),
                min=0,
                max=cfg.grid.shape[2] - 1,
                description="axial slice",
                continuous_update=False,
            )
        else:
            self.slice = w.IntSlider(
                value=0, min=0, max=0, description="axial slice", disabled=True
            )
        self.view = w.ToggleButtons(
            options=list(VIEWS), value="image", description="show"
        )
        self.regions = w.Checkbox(value=True, description="outline regions")
        self.info = w.HTML()
        self.output = w.Output()
        for control in (self.subject, self.slice, self.view, self.regions):
            control.observe(self._changed, names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.subject, self.slice]),
                self.view,
                self.regions,
                self.info,
                self.output,
            ]
        )
        self.update()

    # ------------------------------------------------------------------
    def _changed(self, _change: dict) -> None:
        self.update()

    def describe(self, subject: int) -> str:
        """One line about a subject: label, group and drawn coefficients.

        Parameters
        ----------
        subject : int
            Position in the cohort.

        Returns
        -------
        str
            The description.
        """
        row = self.cohort.meta.iloc[int(subject)]
        return (
            f"{row['subject_id']}: {'disease' if row['label'] else 'control'}, "
            f"bias group {int(row['bias_group'])}, split {row['split']}, "
            f"c = {row['disease_coef']:+.2f}, b = {row['bias_coef']:+.2f}"
        )

    def render(
        self,
        subject: int = 0,
        slice_index: int | None = None,
        view: str = "image",
        regions: bool = True,
    ):
        """Draw one view of one subject.

        Parameters
        ----------
        subject : int, default 0
            Position in the cohort.
        slice_index : int, optional
            Axial slice of a 3D cohort (default: through the disease region).
        view : str, default "image"
            One of :data:`VIEWS`.
        regions : bool, default True
            Outline the disease (green) and bias (orange) regions.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        import matplotlib.pyplot as plt

        if view not in VIEWS:
            raise ValueError(f"view={view!r} must be one of {', '.join(VIEWS)}")
        cohort = self.cohort
        cfg = cohort.config
        if not 0 <= int(subject) < len(cohort):
            raise ValueError(f"subject={subject!r} must be in [0, {len(cohort) - 1}]")
        k = (
            default_slice(cfg, None)
            if slice_index is None or cfg.dims == 2
            else int(slice_index)
        )
        if k is not None and not 0 <= k < cfg.grid.shape[2]:
            raise ValueError(
                f"slice_index={slice_index!r} must be in [0, {cfg.grid.shape[2] - 1}]"
            )
        image = as_array(cohort.images[subject])
        twin = as_array(cohort.twins[subject]) if cohort.twins is not None else image
        if view == "image":
            data, cmap, lim = image, "gray", (0.0, 1.0)
        elif view == "twin":
            data, cmap, lim = twin, "gray", (0.0, 1.0)
        else:
            if self._template is None:
                self._template = anatomy.load_template(cfg.grid)
            data = image - twin if view == "image - twin" else twin - self._template
            m = max(0.05, float(np.abs(data).max()))
            cmap, lim = "RdBu_r", (-m, m)
        fig, ax = plt.subplots(figsize=(4.2, 4.4), constrained_layout=True)
        show_image(
            ax, axial_view(data, k), cmap=cmap, vmin=lim[0], vmax=lim[1], title=view
        )
        if regions:
            draw_regions(ax, cfg, k)
        ax.set_xlabel(self.describe(subject), fontsize=7)
        return fig

    def update(self) -> None:
        """Redraw the figure from the controls' current values."""
        import matplotlib.pyplot as plt

        self.info.value = f"<code>{self.describe(self.subject.value)}</code>"
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.render(
                self.subject.value,
                self.slice.value,
                self.view.value,
                self.regions.value,
            )
            if _in_notebook():
                from IPython.display import display

                display(fig)
            plt.close(fig)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False


def explore_cohort(cohort: Any):
    """An interactive explorer of a simulated cohort (display the returned widget).

    Sliders choose the subject and the axial slice; buttons switch between the image,
    its counterfactual twin, ``image - twin`` (the bias effect) and
    ``twin - template`` (shape and disease); a checkbox outlines the regions.

    Parameters
    ----------
    cohort : Cohort
        A simulated cohort.

    Returns
    -------
    ipywidgets.VBox
        The explorer (its :class:`CohortExplorer` is at ``.explorer``).
    """
    explorer = CohortExplorer(cohort)
    explorer.widget.explorer = explorer
    return explorer.widget
