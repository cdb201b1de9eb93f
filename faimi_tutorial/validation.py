"""Shared checks of user input: configuration fields, seeds, devices, paths and memory.

Every check raises :class:`ValueError` whose message names the setting, the
rejected value and what is allowed, so that the command line can print it as one
line (and the API raises something a reader can act on).

Configuration dataclasses validate themselves in ``__post_init__`` with the
``check_*`` field checks below, which take the configuration (or its name) first,
so that every message reads ``TrainConfig.lr=-1 is invalid; allowed: ...``, and
return the value in its canonical type (``int``, ``float``, ``tuple``)::

    def __post_init__(self) -> None:
        self.epochs = check_positive_int(self, "epochs", self.epochs)
        self.lr = check_range(self, "lr", self.lr, 0.0, 10.0, low_open=True)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ConfigError",
    "config_error",
    "check_choice",
    "check_range",
    "check_probability",
    "check_integer",
    "check_positive_int",
    "check_numbers",
    "check_integers",
    "check_text",
    "check_flag",
    "check_finite",
    "check_int",
    "check_seed",
    "check_device",
    "check_output_folder",
    "check_output_file",
    "memory_bytes",
    "check_memory",
    "format_bytes",
]


# ----------------------------------------------------------------- configuration fields


class ConfigError(ValueError):
    """An invalid configuration value: names the configuration, the field, the value and
    the allowed range.

    Parameters
    ----------
    field : str
        The configuration field.
    value : object
        The rejected value.
    allowed : str
        The allowed range, in words.
    config : str, optional
        The configuration's name (e.g. ``"TrainConfig"``), the message's prefix.
    """

    def __init__(self, field: str, value: Any, allowed: str, config: str = "") -> None:
        self.config = config
        self.field = field
        self.value = value
        self.allowed = allowed
        prefix = f"{config}." if config else ""
        super().__init__(f"{prefix}{field}={value!r} is invalid; allowed: {allowed}")


def _owner_name(owner: Any) -> str:
    if owner is None or isinstance(owner, str):
        return owner or ""
    return owner.__name__ if isinstance(owner, type) else type(owner).__name__


def config_error(owner: Any, name: str, value: Any, allowed: str) -> ConfigError:
    """The error for an invalid field (to ``raise``), for checks the helpers lack.

    Parameters
    ----------
    owner : object or str
        The configuration (its class name is used) or a name; ``None`` for none.
    name : str
        The field.
    value : any
        The rejected value.
    allowed : str
        What is allowed, in words.

    Returns
    -------
    ConfigError
        A :class:`ValueError` with the one-line message.
    """
    return ConfigError(name, value, allowed, _owner_name(owner))


def check_choice(owner: Any, name: str, value: Any, choices: Any) -> Any:
    """One of ``choices``.

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    choices : iterable
        The allowed values.

    Returns
    -------
    any
        The value.

    Raises
    ------
    ValueError
        If the value is not one of the choices.
    """
    options = tuple(choices)
    try:
        ok = any(value == c and type(value) is type(c) for c in options) or (
            not isinstance(value, (bool, np.bool_)) and value in options
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise config_error(owner, name, value, ", ".join(map(str, options)))
    return value


def _interval(lo: float, hi: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(hi) and not math.isinf(lo):
        return f"> {lo:g}" if low_open else f">= {lo:g}"
    if math.isinf(lo) and not math.isinf(hi):
        return f"< {hi:g}" if high_open else f"<= {hi:g}"
    return f"{'(' if low_open else '['}{lo:g}, {hi:g}{')' if high_open else ']'}"


def _whole_float(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_range(
    owner: Any,
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> float | None:
    """A finite real number between ``lo`` and ``hi`` (not a boolean, not a string).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    lo, hi : float
        Bounds (inclusive unless ``low_open``/``high_open``).
    low_open, high_open : bool, default False
        Exclude the bound.
    optional : bool, default False
        Also allow ``None`` (returned as is).

    Returns
    -------
    float or None
        The value as a float.

    Raises
    ------
    ValueError
        If the value is not a finite number within the bounds.
    """
    if value is None and optional:
        return None
    interval = _interval(lo, hi, low_open, high_open)
    allowed = f"a finite number {'in ' if interval[-1] in ')]' else ''}{interval}"
    if optional:
        allowed = "None or " + allowed
    if not _is_real(value) or not math.isfinite(float(value)):
        raise config_error(owner, name, value, allowed)
    v = float(value)
    if v < lo or v > hi or (low_open and v == lo) or (high_open and v == hi):
        raise config_error(owner, name, value, allowed)
    return v


def check_probability(
    owner: Any,
    name: str,
    value: Any,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> float | None:
    """A share or probability in ``[0, 1]`` (bounds excluded on request).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    low_open, high_open : bool, default False
        Exclude 0 (1).
    optional : bool, default False
        Also allow ``None``.

    Returns
    -------
    float or None
        The value as a float.

    Raises
    ------
    ValueError
        If the value is not a number in the interval.
    """
    return check_range(
        owner,
        name,
        value,
        0.0,
        1.0,
        low_open=low_open,
        high_open=high_open,
        optional=optional,
    )


def check_integer(
    owner: Any,
    name: str,
    value: Any,
    lo: int | None = None,
    hi: int | None = None,
    *,
    optional: bool = False,
    whole_floats: bool = False,
) -> int | None:
    """An integer (not a bool) in ``[lo, hi]``.

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    lo, hi : int, optional
        Inclusive bounds (``None``: unbounded).
    optional : bool, default False
        Also allow ``None``.
    whole_floats : bool, default False
        Also accept floats with an integer value (``3.0``, as JSON may hold).

    Returns
    -------
    int or None
        The value as an ``int``.

    Raises
    ------
    ValueError
        If the value is not an integer within the bounds.
    """
    if value is None and optional:
        return None
    if lo is not None and hi is not None:
        allowed = f"an integer in [{lo}, {hi}]"
    elif lo is not None:
        allowed = f"an integer >= {lo}"
    elif hi is not None:
        allowed = f"an integer <= {hi}"
    else:
        allowed = "an integer"
    if optional:
        allowed = "None or " + allowed
    if whole_floats and _whole_float(value):
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise config_error(owner, name, value, allowed)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise config_error(owner, name, value, allowed)
    return int(value)


def check_positive_int(
    owner: Any, name: str, value: Any, *, optional: bool = False
) -> int | None:
    """An integer >= 1 (a count of epochs, rounds, samples ...).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    optional : bool, default False
        Also allow ``None``.

    Returns
    -------
    int or None
        The value.

    Raises
    ------
    ValueError
        If the value is not an integer >= 1.
    """
    return check_integer(owner, name, value, 1, optional=optional)


def _items(owner: Any, name: str, value: Any, allowed: str) -> tuple:
    if isinstance(value, (str, bytes)) or value is None:  # "01" is not the pair (0, 1)
        raise config_error(owner, name, value, allowed)
    try:
        return tuple(value)
    except TypeError:
        raise config_error(owner, name, value, allowed) from None


def check_numbers(
    owner: Any,
    name: str,
    value: Any,
    n: int,
    lo: float = -math.inf,
    hi: float = math.inf,
) -> tuple[float, ...]:
    """Exactly ``n`` finite numbers, each in ``[lo, hi]``.

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        A sequence (a tuple or a list).
    n : int
        How many numbers.
    lo, hi : float
        Inclusive bounds of each number.

    Returns
    -------
    tuple of float
        The numbers.

    Raises
    ------
    ValueError
        If the value is not a sequence of ``n`` numbers within the bounds.
    """
    interval = _interval(lo, hi, False, False)
    allowed = f"{n} finite numbers {'in ' if interval[-1] in ')]' else ''}{interval}"
    items = _items(owner, name, value, allowed)
    if len(items) != n:
        raise config_error(owner, name, value, allowed)
    out = []
    for item in items:
        if not _is_real(item) or not math.isfinite(float(item)) or not lo <= item <= hi:
            raise config_error(owner, name, value, allowed)
        out.append(float(item))
    return tuple(out)


def check_integers(
    owner: Any,
    name: str,
    value: Any,
    lo: int = 1,
    hi: int | None = None,
    *,
    n: int | None = None,
    whole_floats: bool = False,
) -> tuple[int, ...]:
    """A non-empty sequence of integers in ``[lo, hi]`` (exactly ``n`` when given).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        A sequence (a tuple or a list).
    lo, hi : int, optional
        Inclusive bounds of each integer (``hi=None``: unbounded).
    n : int, optional
        Required length.
    whole_floats : bool, default False
        Also accept floats with an integer value.

    Returns
    -------
    tuple of int
        The integers.

    Raises
    ------
    ValueError
        If the value is not such a sequence.
    """
    count = "a non-empty tuple of" if n is None else f"{n}"
    bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    allowed = f"{count} integers {bounds}"
    items = _items(owner, name, value, allowed)
    if not items or (n is not None and len(items) != n):
        raise config_error(owner, name, value, allowed)
    out = []
    for item in items:
        if whole_floats and _whole_float(item):
            item = int(item)
        if (
            isinstance(item, (bool, np.bool_))
            or not isinstance(item, (int, np.integer))
            or item < lo
            or (hi is not None and item > hi)
        ):
            raise config_error(owner, name, value, allowed)
        out.append(int(item))
    return tuple(out)


def check_text(owner: Any, name: str, value: Any, *, empty: bool = False) -> str:
    """A string (non-blank unless ``empty``).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.
    empty : bool, default False
        Allow the empty string.

    Returns
    -------
    str
        The value.

    Raises
    ------
    ValueError
        If the value is not a string, or is blank when that is not allowed.
    """
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise config_error(
            owner, name, value, "a string" if empty else "a non-empty string"
        )
    return value


def check_flag(owner: Any, name: str, value: Any) -> bool:
    """``True`` or ``False`` (numpy booleans too; not 0 or 1).

    Parameters
    ----------
    owner : object or str
        The configuration (or its name), for the message.
    name : str
        The field.
    value : any
        The value to check.

    Returns
    -------
    bool
        The value.

    Raises
    ------
    ValueError
        If the value is not a boolean.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise config_error(owner, name, value, "True or False")
    return bool(value)


# ----------------------------------------------------------------- other settings


def check_finite(
    name: str, value: Any, lo: float = -math.inf, hi: float = math.inf
) -> float:
    """A finite real number in ``[lo, hi]`` (booleans and strings are refused).

    Parameters
    ----------
    name : str
        The setting, used in the message.
    value : any
        The value to check.
    lo, hi : float
        Inclusive bounds.

    Returns
    -------
    float
        The value as a float.

    Raises
    ------
    ValueError
        If the value is not a finite number within the bounds.
    """
    allowed = f"a finite number in [{lo:g}, {hi:g}]"
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return v


def check_int(
    name: str, value: Any, lo: int | None = None, hi: int | None = None
) -> int:
    """An integer (not a bool, not a float) in ``[lo, hi]``.

    Parameters
    ----------
    name : str
        The setting, used in the message.
    value : any
        The value to check.
    lo, hi : int, optional
        Inclusive bounds.

    Returns
    -------
    int
        The value.

    Raises
    ------
    ValueError
        If the value is not an integer within the bounds.
    """
    bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name}={value!r} is invalid; allowed: an integer in {bounds}"
        )
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(
            f"{name}={value!r} is invalid; allowed: an integer in {bounds}"
        )
    return int(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """A non-negative integer seed (what numpy and torch accept).

    Parameters
    ----------
    value : any
        The seed.
    name : str, default "seed"
        The setting, used in the message.

    Returns
    -------
    int
        The seed.
    """
    return check_int(name, value, 0, 2**63 - 1)


def check_device(device: Any, name: str = "device"):
    """A torch device that exists on this machine.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` ...
    name : str, default "device"
        The setting, used in the message (e.g. ``"FAIMI_DEVICE"``).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ValueError
        If the text is not a device, or the device is not available here.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{name}={device!r} is not a torch device; allowed: cpu, cuda, "
            "cuda:N or mps (where available)"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"{name}={device!r} is not available: this machine has no CUDA "
                "GPU; allowed: cpu"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{name}={device!r} is not available; allowed: cpu or cuda:0 to "
                f"cuda:{count - 1}"
            )
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"{name}={device!r} is not available on this machine; allowed: cpu"
            )
        return dev
    raise ValueError(
        f"{name}={device!r} is not supported; allowed: cpu, cuda, cuda:N or mps"
    )


def _check_nearest_parent(
    out: Path, name: str, text: str, inside_file: str, not_writable: str
) -> None:
    """Raise if the nearest existing parent of ``out`` is a file or cannot be written
    in."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"{name}={text!r} lies inside the file {parent}; allowed: "
                    f"{inside_file}"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(
                    f"{name}={text!r}: cannot write in {parent}; allowed: "
                    f"{not_writable}"
                )
            return


def check_output_folder(path: str | os.PathLike[str], name: str = "out") -> Path:
    """A folder path that can be created or replaced: not a file, not inside a file,
    not ``.``.

    Parameters
    ----------
    path : path
        The folder.
    name : str, default "out"
        The setting, used in the message.

    Returns
    -------
    pathlib.Path
        The path as given.

    Raises
    ------
    ValueError
        If the path is a file, lies below a file, or is the current folder, the
        file-system root or a parent of the current folder.
    """
    out = Path(path)
    text = str(path)
    if not text.strip():
        raise ValueError(f"{name}={text!r} is invalid; allowed: a folder path")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved.parent == resolved:
        raise ValueError(
            f"{name}={text!r} is the current folder, one of its parents or the "
            "root; allowed: a new or empty folder below them (e.g. ./dataset)"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}={text!r} is a file; allowed: a new or empty folder")
    _check_nearest_parent(
        out, name, text, "a folder path", "a folder in a writable place"
    )
    return out


def check_output_file(path: str | os.PathLike[str], name: str = "checkpoint") -> Path:
    """A file path that can be written: not a folder, not inside a file.

    Parameters
    ----------
    path : path
        The file.
    name : str, default "checkpoint"
        The setting, used in the message.

    Returns
    -------
    pathlib.Path
        The path as given.

    Raises
    ------
    ValueError
        If the path is a folder, lies below a file or in a folder that cannot be
        written.
    """
    out = Path(path)
    text = str(path)
    if not text.strip() or text.endswith(("/", os.sep)):
        raise ValueError(
            f"{name}={text!r} is invalid; allowed: a file path (e.g. model.pt)"
        )
    if out.is_dir():
        raise ValueError(
            f"{name}={text!r} is a folder; allowed: a file path (e.g. "
            f"{Path(text) / 'model.pt'})"
        )
    _check_nearest_parent(
        out, name, text, "a file path in a folder", "a file in a writable folder"
    )
    return out


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (0 when unknown).

    ``$FAIMI_MEMORY_BYTES`` overrides it (for tests, or to keep a job within a share
    of a larger machine).

    Returns
    -------
    int
        Bytes.
    """
    env = os.environ.get("FAIMI_MEMORY_BYTES", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(
                f"FAIMI_MEMORY_BYTES={env!r} is invalid; allowed: a positive "
                "integer (bytes)"
            ) from None
        if value <= 0:
            raise ValueError(
                f"FAIMI_MEMORY_BYTES={env!r} is invalid; allowed: a positive "
                "integer (bytes)"
            )
        return value
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def format_bytes(n: float) -> str:
    """``1.5 GB``-style text for a byte count.

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str
        The size with a unit.
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n:.3g} PB"  # pragma: no cover


def check_memory(estimate: float, what: str, hint: str = "") -> None:
    """Refuse work whose memory estimate exceeds this machine's memory.

    Parameters
    ----------
    estimate : float
        Bytes the work needs (at least).
    what : str
        What needs it, for the message (e.g. ``"n_subjects=5000 on a 512^3 grid"``).
    hint : str, optional
        What to change, appended to the message.

    Raises
    ------
    ValueError
        With the estimate and the machine's memory in the message.
    """
    total = memory_bytes()
    if total and estimate > total:
        raise ValueError(
            f"{what} needs about {format_bytes(estimate)} of memory, more than "
            f"this machine's {format_bytes(total)}" + (f"; {hint}" if hint else "")
        )
