"""The recorded multi-seed results (``results/*.csv`` and their JSON records).

The scripts in ``scripts/`` write these files into ``results/`` at the root of the
repository; the same files ship inside the installed package (as
``faimi_tutorial/_results``, mapped from ``results/`` at build time), so a chapter
shows the same tables in a checkout, after ``pip install`` and on Colab. One loader
serves both: the repository's copy first (the newest, where a script just wrote it),
then the installed copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["results_dir", "available", "results_path", "load", "recorded"]

_SUFFIXES = (".csv", ".json")


def _repo_dir() -> Path | None:
    """``results/`` of the checkout this module was imported from, if it is one."""
    root = Path(__file__).resolve().parent.parent
    folder = root / "results"
    if (root / "pyproject.toml").is_file() and folder.is_dir():
        return folder
    return None


def _installed_dir() -> Path | None:
    folder = Path(__file__).resolve().parent / "_results"
    return folder if folder.is_dir() else None


def results_dir() -> Path:
    """The folder the results are read from.

    ``$FAIMI_RESULTS_DIR`` if set, else the repository's ``results/`` when running
    from a checkout, else the copy installed with the package.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    FileNotFoundError
        If there is no results folder at all (a broken installation).
    """
    env = os.environ.get("FAIMI_RESULTS_DIR")
    if env:
        return Path(env)
    for folder in (_repo_dir(), _installed_dir()):
        if folder is not None and any(p.suffix in _SUFFIXES for p in folder.iterdir()):
            return folder
    raise FileNotFoundError(
        "no results folder: neither a checkout's results/ nor the "
        "installed faimi_tutorial/_results; reinstall faimi-tutorial"
    )


def available() -> list[str]:
    """Names of the recorded results (file names, without folder).

    Returns
    -------
    list of str
        Sorted, e.g. ``["layer_findings.json", "layer_models.csv", ...]``.
    """
    return sorted(p.name for p in results_dir().iterdir() if p.suffix in _SUFFIXES)


def results_path(name: str) -> Path:
    """Path of one recorded result.

    Parameters
    ----------
    name : str
        File name, with or without ``.csv`` (e.g. ``"shortcut_salience"`` or
        ``"shortcut_findings.json"``).

    Returns
    -------
    pathlib.Path
        The file.

    Raises
    ------
    FileNotFoundError
        If no such result is recorded; the message lists what is.
    """
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"name={name!r} must be a file name in the results folder")
    file = name if name.endswith(_SUFFIXES) else f"{name}.csv"
    path = results_dir() / file
    if not path.is_file():
        raise FileNotFoundError(
            f"{file} is not among the recorded results in {results_dir()} "
            f"(recorded: {', '.join(available()) or 'none'}); the "
            "scripts in scripts/ compute it"
        )
    return path


def load(name: str) -> Any:
    """Read one recorded result: a table for ``.csv``, the parsed record for ``.json``.

    Parameters
    ----------
    name : str
        File name, with or without ``.csv`` (see :func:`results_path`).

    Returns
    -------
    pandas.DataFrame or dict
        The table, or the JSON record.

    Examples
    --------
    >>> from faimi_tutorial import results
    >>> table = results.load("shortcut_salience")
    """
    path = results_path(name)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import pandas as pd

    return pd.read_csv(path)


def recorded(name: str, command: str) -> Any:
    """:func:`load` a result when it is recorded; otherwise say how to compute it.

    Parameters
    ----------
    name : str
        File name, with or without ``.csv`` (see :func:`results_path`).
    command : str
        The command that writes it, named in the message when it is missing.

    Returns
    -------
    pandas.DataFrame, dict or None
        The result, or None (after printing one line) when it is not recorded.
    """
    file = name if name.endswith(_SUFFIXES) else f"{name}.csv"
    if file not in available():
        print(f"{file} not recorded: run {command}")
        return None
    return load(name)
