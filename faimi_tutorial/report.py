"""Subgroup fairness report of any model's predictions: ``faimi report``.

Point it at a predictions table (CSV, TSV or Parquet) with a label column, a score
column and one or more group columns; it writes, per group column, the metrics of
:func:`faimi_tutorial.fairness.metrics.subgroup_report` at one global threshold with
bootstrap intervals, signed contrasts against a reference group with their
intervals, calibration per group, and the figures of chapter 1, as Markdown and
HTML pages with PNG figures and a JSON record::

    faimi report predictions.csv --label y --score p --group sex --group site --out rep/

Every number comes from :mod:`faimi_tutorial.fairness.metrics` (one AUROC, one
bootstrap,
one signed contrast); this module reads and checks the table and writes files.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .fairness.metrics import SubgroupReport, UndefinedMetricWarning, subgroup_report
from .viz.plotting import (
    plot_calibration_by_group,
    plot_roc_by_group,
    plot_subgroup_report,
)

__all__ = [
    "PredictionsError",
    "FairnessReport",
    "read_predictions",
    "fairness_report",
    "write_report",
    "register",
]

#: Metrics shown in the report's tables and figure, in order.
SHOWN: tuple[str, ...] = (
    "n",
    "prevalence",
    "TPR",
    "FPR",
    "PPV",
    "accuracy",
    "AUROC",
    "ECE",
)
#: Metrics whose signed contrast (group minus reference) is reported.
CONTRASTED: tuple[str, ...] = (
    "selection_rate",
    "TPR",
    "FPR",
    "PPV",
    "accuracy",
    "AUROC",
    "ECE",
)
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


class PredictionsError(ValueError):
    """A predictions table cannot be used; the message names the file, column or row."""


# ------------------------------------------------------------------------------ reading


def _read_any(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    for ext in (".gz", ".bz2", ".zip", ".xz"):
        name = name.removesuffix(ext)
    if name.endswith((".parquet", ".pq")):
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise PredictionsError(
                f"{path}: reading Parquet needs pyarrow "
                "(pip install pyarrow), or save the table as CSV"
            ) from None
    sep = "\t" if name.endswith((".tsv", ".tab")) else ","
    return pd.read_csv(path, sep=sep, keep_default_na=True)


def read_predictions(
    path: str | os.PathLike[str],
    label: str = "label",
    score: str = "score",
    groups: Sequence[str] = ("group",),
    positive: str | None = None,
) -> pd.DataFrame:
    """Read and check a predictions table.

    Parameters
    ----------
    path : path
        CSV (``.csv``), TSV (``.tsv``) or Parquet (``.parquet``) file, optionally
        compressed (``.gz``); one row per prediction.
    label : str, default "label"
        Column of true labels: 0/1, true/false or yes/no (or any two values with
        ``positive``).
    score : str, default "score"
        Column of predicted probabilities of the positive class, in [0, 1].
    groups : sequence of str, default ("group",)
        Columns of group membership (one report per column).
    positive : str, optional
        The label value that means positive, when labels are not 0/1.

    Returns
    -------
    pandas.DataFrame
        The label (int 0/1), score (float) and group (str) columns, in that order.

    Raises
    ------
    PredictionsError
        On one line, naming the file and the column or row at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: file not found")
    try:
        table = _read_any(path)
    except PredictionsError:
        raise
    except Exception as err:
        text = " ".join(str(err).split())
        raise PredictionsError(
            f"{path}: cannot read the table ({type(err).__name__}: {text})"
        ) from None
    groups = list(groups)
    if not groups:
        raise PredictionsError(f"{path}: name at least one group column (--group)")
    needed = [label, score, *groups]
    for column in needed:
        if column not in table.columns:
            shown = ", ".join(map(str, table.columns[:20]))
            raise PredictionsError(f"{path}: no column {column!r} (columns: {shown})")
    if len(set(needed)) != len(needed):
        raise PredictionsError(
            f"{path}: a column is named twice among label, score and "
            f"groups ({', '.join(needed)})"
        )
    if len(table) == 0:
        raise PredictionsError(f"{path}: the table has no rows")
    out = pd.DataFrame(index=table.index)
    out[label] = _labels(table[label], path, label, positive)
    out[score] = _scores(table[score], path, score)
    for column in groups:
        values = table[column]
        missing = values.isna().to_numpy()
        if missing.any():
            raise PredictionsError(
                f"{path}: column {column!r} is empty in row {_row(missing)}"
            )
        out[column] = values.astype(str).to_numpy()
        if out[column].nunique() < 2:
            raise PredictionsError(
                f"{path}: column {column!r} has one group only "
                f"({out[column].iloc[0]!r}); a report compares two or more"
            )
    return out.reset_index(drop=True)


def _row(mask: np.ndarray) -> int:
    """1-based data row (the header is not counted) of the first true entry."""
    return int(np.flatnonzero(mask)[0]) + 1


def _labels(
    values: pd.Series, path: Path, column: str, positive: str | None
) -> np.ndarray:
    missing = values.isna().to_numpy()
    if missing.any():
        raise PredictionsError(
            f"{path}: column {column!r} is empty in row {_row(missing)}"
        )
    text = values.astype(str).str.strip().str.lower()
    if positive is not None:
        if not (text == str(positive).strip().lower()).any():
            raise PredictionsError(
                f"{path}: column {column!r} never holds the positive value {positive!r}"
            )
        return (text == str(positive).strip().lower()).to_numpy().astype(int)
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        row = _row(bad.to_numpy())
        raise PredictionsError(
            f"{path}: column {column!r} holds {values.iloc[row - 1]!r} in row {row}; "
            "labels "
            "must be 0/1, true/false or yes/no (or name the positive value with "
            "--positive)"
        )
    return text.isin(_TRUE).to_numpy().astype(int)


def _scores(values: pd.Series, path: Path, column: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = _row(bad)
        raise PredictionsError(
            f"{path}: column {column!r} holds {values.iloc[row - 1]!r} in "
            f"row {row}; scores must be numbers in [0, 1]"
        )
    outside = (numbers < 0) | (numbers > 1)
    if outside.any():
        row = _row(outside)
        raise PredictionsError(
            f"{path}: column {column!r} holds {numbers[row - 1]:g} in row {row}; "
            "scores must "
            "be probabilities in [0, 1] (apply a sigmoid or softmax to logits first)"
        )
    return numbers


# ------------------------------------------------------------------------------ report


@dataclass
class FairnessReport:
    """Result of :func:`fairness_report`: one subgroup report per group column.

    Attributes
    ----------
    reports : dict of str to SubgroupReport
        Per group column, the output of
        :func:`faimi_tutorial.fairness.metrics.subgroup_report`.
    contrasts : dict of str to pandas.DataFrame
        Per group column, one row per (group, metric): the signed difference group
        minus reference with its bootstrap interval (``low``, ``high``).
    calibration : dict of str to pandas.DataFrame
        Per group column, per group and score bin: ``n``, ``mean_score`` and
        ``observed`` (fraction positive).
    references : dict of str to str
        The reference group of each column.
    settings : dict
        Columns, threshold, bootstrap settings, source file and its SHA-256.
    notes : list of str
        Undefined metrics and other caveats, in words.
    """

    reports: dict[str, SubgroupReport]
    contrasts: dict[str, pd.DataFrame]
    calibration: dict[str, pd.DataFrame]
    references: dict[str, str]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data (NaN becomes ``None``).

        Returns
        -------
        dict
            ``settings``, ``notes`` and, per group column, metrics, intervals, gaps,
            fairness summaries, contrasts and calibration tables.
        """
        out: dict[str, Any] = {
            "faimi_tutorial": __version__,
            "settings": self.settings,
            "notes": self.notes,
            "group_columns": {},
        }
        for column, rep in self.reports.items():
            out["group_columns"][column] = {
                "reference": self.references[column],
                "threshold": rep.threshold,
                "n_boot": rep.n_boot,
                "confidence": rep.confidence,
                "metrics": _records(rep.table),
                "ci_low": _records(rep.ci_low),
                "ci_high": _records(rep.ci_high),
                "gaps": _records(rep.gaps),
                "fairness": {k: _clean(v) for k, v in rep.fairness.items()},
                "contrasts": [
                    {k: _clean(v) for k, v in row.items()}
                    for row in self.contrasts[column].to_dict("records")
                ],
                "calibration": [
                    {k: _clean(v) for k, v in row.items()}
                    for row in self.calibration[column].to_dict("records")
                ],
            }
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {
        str(index): {str(k): _clean(v) for k, v in row.items()}
        for index, row in frame.iterrows()
    }


def _calibration_table(
    y: np.ndarray, s: np.ndarray, g: np.ndarray, n_bins: int
) -> pd.DataFrame:
    """Reliability table per group: the equal-width bins of the ECE."""
    rows = []
    bins = np.minimum((s * n_bins).astype(int), n_bins - 1)
    for group in sorted(set(g.tolist())):
        member = g == group
        for b in range(n_bins):
            inb = member & (bins == b)
            if inb.any():
                rows.append(
                    {
                        "group": group,
                        "bin": f"[{b / n_bins:.2f}, {(b + 1) / n_bins:.2f})",
                        "n": int(inb.sum()),
                        "mean_score": float(s[inb].mean()),
                        "observed": float(y[inb].mean()),
                    }
                )
    return pd.DataFrame(rows, columns=["group", "bin", "n", "mean_score", "observed"])


def _contrasts(
    y: np.ndarray,
    s: np.ndarray,
    g: np.ndarray,
    reference: str,
    rep: SubgroupReport,
    **options: Any,
) -> pd.DataFrame:
    """Each group minus the reference, with the paired bootstrap of subgroup_report."""
    rows = []
    for group in rep.groups:
        if group == reference:
            continue
        if len(rep.groups) == 2:
            pair = rep
        else:
            keep = (g == group) | (g == reference)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                pair = subgroup_report(y[keep], s[keep], g[keep], **options)
        # subgroup_report's contrast is (second minus first) in sorted order
        sign = 1.0 if pair.groups[1] == group else -1.0
        for metric in CONTRASTED:
            value = sign * pair.gaps.loc[metric, "contrast"]
            low, high = (
                pair.gaps.loc[metric, "contrast_low"],
                pair.gaps.loc[metric, "contrast_high"],
            )
            if sign < 0:
                low, high = -high, -low
            rows.append(
                {
                    "group": group,
                    "reference": reference,
                    "metric": metric,
                    "difference": float(value),
                    "low": float(low),
                    "high": float(high),
                }
            )
    return pd.DataFrame(
        rows, columns=["group", "reference", "metric", "difference", "low", "high"]
    )


def fairness_report(
    table: pd.DataFrame,
    label: str = "label",
    score: str = "score",
    groups: Sequence[str] = ("group",),
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    reference: str | None = None,
    source: str | os.PathLike[str] | None = None,
) -> FairnessReport:
    """Subgroup fairness report of a predictions table, one section per group column.

    Parameters
    ----------
    table : pandas.DataFrame
        Predictions, as returned by :func:`read_predictions` (labels 0/1, scores in
        [0, 1], groups as strings).
    label, score : str
        Columns of the true label and the predicted probability.
    groups : sequence of str
        Group columns; each gets its own per-group metrics and contrasts.
    threshold : float, default 0.5
        The one global decision threshold (``score >= threshold`` is positive).
    n_boot : int, default 1000
        Bootstrap replicates of the intervals (stratified by group).
    confidence : float, default 0.95
        Level of the percentile intervals.
    seed : int, default 0
        Seed of the bootstrap.
    n_bins : int, default 10
        Equal-width score bins of the calibration tables and the ECE.
    reference : str, optional
        Reference group of the contrasts, in every column where it occurs; default:
        the largest group of each column.
    source : path, optional
        The file the table came from (recorded with its SHA-256).

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValueError
        If a column is missing or an option is out of range (from
        :func:`faimi_tutorial.fairness.metrics.subgroup_report`).
    """
    options = dict(
        threshold=threshold,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        n_bins=n_bins,
    )
    for column in (label, score, *groups):
        if column not in table.columns:
            raise PredictionsError(f"no column {column!r} in the table")
    y = table[label].to_numpy().astype(int)
    s = table[score].to_numpy(dtype=float)
    reports, contrasts, calibration, references, notes = {}, {}, {}, {}, []
    for column in groups:
        g = table[column].astype(str).to_numpy()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            rep = subgroup_report(y, s, g, **options)
        notes += [
            f"{column}: {w.message}"
            for w in caught
            if issubclass(w.category, UndefinedMetricWarning)
        ]
        counts = pd.Series(g).value_counts()
        ref = (
            reference
            if reference is not None and reference in counts.index
            else str(counts.sort_index().idxmax())
        )
        reports[column] = rep
        references[column] = ref
        contrasts[column] = _contrasts(y, s, g, ref, rep, **options)
        calibration[column] = _calibration_table(y, s, g, n_bins)
    settings: dict[str, Any] = {
        "label": label,
        "score": score,
        "groups": list(groups),
        "n": int(len(table)),
        **options,
        "reference": reference,
        "interval": "percentile bootstrap, resampled within each group",
    }
    if source is not None:
        path = Path(source)
        settings["source"] = path.name
        settings["source_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return FairnessReport(reports, contrasts, calibration, references, settings, notes)


# ------------------------------------------------------------------------------ writing


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, (float, np.floating)):
        return "undefined" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _interval_table(rep: SubgroupReport) -> pd.DataFrame:
    return rep.summary(SHOWN)


def _contrast_table(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "group": frame["group"],
            "metric": frame["metric"],
            "group minus reference": [
                "undefined"
                if not math.isfinite(d)
                else (
                    f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                    if math.isfinite(lo)
                    else f"{d:+.3f}"
                )
                for d, lo, hi in zip(frame["difference"], frame["low"], frame["high"])
            ],
            "interval excludes 0": [
                "yes" if math.isfinite(lo) and (lo > 0 or hi < 0) else "no"
                for lo, hi in zip(frame["low"], frame["high"])
            ],
        }
    )
    return out


def _markdown(frame: pd.DataFrame, index: bool = True) -> str:
    frame = frame.reset_index() if index else frame
    cells = [[str(c) for c in frame.columns]] + [
        [_fmt(v) for v in row] for row in frame.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
        for row in cells[1:]
    ]
    return "\n".join(lines)


def _figures(
    report: FairnessReport, table: pd.DataFrame, out: Path
) -> dict[str, list[str]]:
    import matplotlib.pyplot as plt

    label, score = report.settings["label"], report.settings["score"]
    files: dict[str, list[str]] = {}
    for i, (column, rep) in enumerate(report.reports.items()):
        stem = f"{i + 1:02d}_{''.join(c if c.isalnum() else '-' for c in column)}"
        y, s, g = table[label], table[score], table[column]
        made = []
        for kind, fig in (
            (
                "metrics",
                lambda: plot_subgroup_report(rep, ("TPR", "FPR", "AUROC", "ECE")),
            ),
            ("roc", lambda: plot_roc_by_group(y, s, g, threshold=rep.threshold)),
            (
                "calibration",
                lambda: plot_calibration_by_group(
                    y, s, g, n_bins=report.settings["n_bins"]
                ),
            ),
        ):
            figure = fig()
            title = figure.get_suptitle()
            figure.suptitle(f"{column}: {title}" if title else column, fontsize=10)
            name = f"{stem}_{kind}.png"
            figure.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(figure)
            made.append(name)
        files[column] = made
    return files


def write_report(
    report: FairnessReport,
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("md", "html"),
) -> dict[str, Path]:
    """Write a report as Markdown and/or HTML pages, PNG figures and a JSON record.

    Parameters
    ----------
    report : FairnessReport
        From :func:`fairness_report`.
    table : pandas.DataFrame
        The table it was computed from (for the ROC and calibration figures).
    out_dir : path
        Folder to write (created if missing; files of the same names are replaced).
    formats : sequence of {"md", "html"}
        Pages to write; the JSON record and figures are always written.

    Returns
    -------
    dict of str to pathlib.Path
        Paths of ``"json"``, ``"md"`` and/or ``"html"``.
    """
    bad = [f for f in formats if f not in ("md", "html")]
    if bad:
        raise ValueError(f"formats={bad!r}; allowed: md, html")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(report, table, out)
    written = {"json": out / "report.json"}
    record = report.to_dict()
    record["figures"] = figures
    written["json"].write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    st = report.settings
    level = f"{st['confidence']:.0%}"
    intro = (
        f"{st['n']} predictions{' from ' + st['source'] if 'source' in st else ''}; "
        f"label `{st['label']}`, score `{st['score']}`; one global threshold "
        f"{st['threshold']:g} (score >= threshold is positive); {level} percentile "
        f"bootstrap intervals from {st['n_boot']} replicates resampled within each "
        "group "
        f"(seed {st['seed']}); calibration in {st['n_bins']} equal-width bins."
    )
    if "md" in formats:
        md = ["# Subgroup fairness report", "", intro, ""]
        for column, rep in report.reports.items():
            md += [
                f"## Groups: `{column}`",
                "",
                "### Per-group metrics",
                "",
                _markdown(_interval_table(rep)),
                "",
                f"### Contrasts: each group minus the reference "
                f"(`{report.references[column]}`)",
                "",
                _markdown(_contrast_table(report.contrasts[column]), index=False),
                "",
                "### Calibration per group",
                "",
                _markdown(report.calibration[column], index=False),
                "",
                "### Figures",
                "",
            ]
            md += [f"![{name}]({name})" for name in figures[column]] + [""]
        if report.notes:
            md += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
        md += [f"Written by faimi-tutorial {__version__} (`faimi report`).", ""]
        written["md"] = out / "report.md"
        written["md"].write_text("\n".join(md))
    if "html" in formats:
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            "<title>Subgroup fairness report</title><style>body{font-family:sans-serif;"
            "max-width:70em;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
            "</style></head><body>",
            "<h1>Subgroup fairness report</h1>",
            f"<p>{html.escape(intro)}</p>",
        ]
        for column, rep in report.reports.items():
            parts += [
                f"<h2>Groups: <code>{html.escape(column)}</code></h2>",
                "<h3>Per-group metrics</h3>",
                _interval_table(rep).to_html(),
                "<h3>Contrasts: each group minus the reference "
                f"(<code>{html.escape(report.references[column])}</code>)</h3>",
                _contrast_table(report.contrasts[column]).to_html(index=False),
                "<h3>Calibration per group</h3>",
                report.calibration[column].to_html(index=False, float_format="%.3f"),
                "<h3>Figures</h3>",
            ]
            parts += [
                f"<img src='{html.escape(n)}' alt='{html.escape(n)}'>"
                for n in figures[column]
            ]
        if report.notes:
            parts += (
                ["<h2>Notes</h2><ul>"]
                + [f"<li>{html.escape(n)}</li>" for n in report.notes]
                + ["</ul>"]
            )
        parts += [
            f"<p>Written by faimi-tutorial {__version__} (<code>faimi report</code>)."
            "</p></body></html>"
        ]
        written["html"] = out / "report.html"
        written["html"].write_text("\n".join(parts) + "\n")
    return written


# ------------------------------------------------------------------------------ command


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand to the ``faimi`` command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``ArgumentParser.add_subparsers``.
    """
    import argparse

    parser = subparsers.add_parser(
        "report",
        help="subgroup fairness report of any predictions table (CSV/TSV/Parquet)",
        description="Subgroup fairness report of a predictions table: per-group "
                    "metrics at "
        "one global threshold with bootstrap intervals, contrasts against a reference "
        "group, calibration per group and figures, written as Markdown/HTML pages, PNG "
        "figures and a JSON record.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "table",
        metavar="TABLE",
        help="predictions: .csv, .tsv or .parquet (optionally .gz), one row "
        "per prediction",
    )
    parser.add_argument(
        "--label",
        default="label",
        help="column of true labels (0/1, true/false, yes/no)",
    )
    parser.add_argument(
        "--score",
        default="score",
        help="column of predicted probabilities of the positive class, in [0, 1]",
    )
    parser.add_argument(
        "--group",
        dest="groups",
        action="append",
        metavar="COLUMN",
        default=argparse.SUPPRESS,
        help="group column; repeat for several (none given: the column named group)",
    )
    parser.add_argument(
        "--positive",
        default=None,
        metavar="VALUE",
        help="label value meaning positive when labels are not 0/1",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="the one global decision threshold (score >= threshold is positive)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="GROUP",
        help="reference group of the contrasts (default: each column's largest group)",
    )
    parser.add_argument(
        "--n-boot",
        type=int,
        default=1000,
        help="bootstrap replicates of the intervals (0: none)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="level of the bootstrap intervals",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument(
        "--bins",
        type=int,
        default=10,
        help="equal-width score bins of the calibration tables and ECE",
    )
    parser.add_argument(
        "--format",
        dest="formats",
        choices=("md", "html", "both"),
        default="both",
        help="pages to write (the JSON record and PNG figures are always written)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write the report into"
    )
    parser.set_defaults(func=_run_cli)


def _run_cli(args: Any) -> int:
    import sys

    groups = getattr(args, "groups", None) or ["group"]
    try:
        table = read_predictions(
            args.table, args.label, args.score, groups, args.positive
        )
        report = fairness_report(
            table,
            args.label,
            args.score,
            groups,
            threshold=args.threshold,
            n_boot=args.n_boot,
            confidence=args.confidence,
            seed=args.seed,
            n_bins=args.bins,
            reference=args.reference,
            source=args.table,
        )
    except ValueError as err:
        text = " ".join(str(err).split())
        for name in ("threshold", "n_boot", "confidence", "seed", "n_bins"):
            option = "--bins" if name == "n_bins" else "--" + name.replace("_", "-")
            text = (
                text.replace(f"{name}=", f"{option} ", 1)
                if text.startswith(name)
                else text
            )
        print(f"faimi report: error: {text}", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, also without a display
    formats = ("md", "html") if args.formats == "both" else (args.formats,)
    written = write_report(report, table, args.out, formats)
    for column, rep in report.reports.items():
        gaps = rep.gaps
        print(
            f"{column}: groups {', '.join(map(str, rep.groups))}; TPR gap "
            f"{_fmt(gaps.loc['TPR', 'difference'])}, FPR gap "
            f"{_fmt(gaps.loc['FPR', 'difference'])}, AUROC gap "
            f"{_fmt(gaps.loc['AUROC', 'difference'])} (max - min over groups)"
        )
    for note in report.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
