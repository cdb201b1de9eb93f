"""One cached runner for every expensive step of the chapters and the scripts.

``run(fn, *args, **kwargs)`` calls ``fn(*args, **kwargs)`` once and keeps the
result on disk; every later call with the same key returns the stored result
without calling ``fn``. Functions wrapped by :func:`step` (the share sweep,
the ShorT sweep, the layer report, the federated comparison …) do this on
every call; ``cache=False`` turns it off, ``refresh=True`` computes again.

The key of a call is the hash of everything that determines its result: the
function (module, name, code, defaults, the values it closes over and, for a
function defined in a notebook or a script, the globals it reads), every
argument (configurations field by field; arrays, tensors, tables and networks by
content; seeds), the package version and a digest of the package's source, so
changed code never reuses an old result. A hit also restores the global random
state the computation left behind, so that later unseeded draws match a fresh
run.

Entries live in ``$FAIMI_CACHE_DIR`` when set, else in
``~/.cache/faimi-tutorial/sweeps``: flat records of :func:`cached` as JSON, other
results as pickles behind a small header (format, configuration, length,
checksum). Writes replace an entry in one step; an entry that cannot be read
is computed again with a :class:`CacheWarning`. Pickles run code when read:
share a cache folder only with people you trust.

>>> import faimi_tutorial as ft
>>> len(ft.runner.config_hash({"seed": 0}))
16
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import pickle
import random
import sys
import sysconfig
import types
import uuid
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._version import __version__

#: Tag of every JSON record :class:`ResultCache` writes (``clear`` deletes only these).
CACHE_FORMAT = "faimi-tutorial-result-1"
#: First line of every stored object (:meth:`ResultCache.store`).
OBJECT_MAGIC = b"faimi-tutorial-object-1\n"
#: Arguments that never enter a key (they change how a call reports, not its result).
NOT_IN_KEY = ("progress",)


class CacheWarning(UserWarning):
    """A cache entry could not be read or written (it is computed again)."""


# --------------------------------------------------------------------- hashing


def plain(obj: Any) -> Any:
    """Convert to JSON-ready plain types, deterministically.

    Parameters
    ----------
    obj : any
        Dataclasses (field by field), mappings, sequences, numpy values, paths;
        an object with ``to_dict`` by that; anything else by its ``repr``.

    Returns
    -------
    any
        Nested dicts, lists, numbers, text and ``None``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        return {str(k): plain(v) for k, v in items}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "to_dict"):
        return plain(obj.to_dict())
    return repr(obj)


def _canonical(config: Any) -> str:
    return json.dumps(
        plain(config), sort_keys=True, separators=(",", ":"), allow_nan=True
    )


def config_hash(config: Any, length: int = 16) -> str:
    """Stable hash of a configuration (dicts, dataclasses, tuples, numbers).

    Parameters
    ----------
    config : any
        Nested configuration; key order does not matter, tuples equal lists.
    length : int, default 16
        Number of hex digits kept (4 to 64).

    Returns
    -------
    str
        Hex digest prefix of the SHA-256 of the canonical JSON text.
    """
    if not 4 <= length <= 64:
        raise ValueError(f"length={length!r} must be in [4, 64]")
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:length]


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """Digest of every file of the installed package (its code and its data).

    Returns
    -------
    str
        16 hex digits; any edit of the package changes it.
    """
    root = Path(__file__).resolve().parents[1]  # the package, not this subpackage
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _code_digest(code: Any) -> str:
    """Digest of a code object's bytecode, names and constants (stable across runs)."""
    parts = [
        code.co_code.hex(),
        list(code.co_names),
        list(code.co_varnames),
        [
            (_code_digest(c) if hasattr(c, "co_code") else repr(c))
            for c in code.co_consts
        ],
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _global_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _global_names(const)
    return names


def _installed(module_name: str | None) -> bool:
    """Whether a function's module is this package's or an installed library's."""
    if not module_name or module_name == "__main__":
        return False
    if module_name.split(".")[0] == __name__.split(".")[0]:
        return True
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return module is not None and module_name in sys.builtin_module_names
    paths = sysconfig.get_paths()
    roots = [
        str(Path(paths[k]).resolve())
        for k in ("stdlib", "platstdlib", "purelib", "platlib")
    ]
    return any(str(Path(file).resolve()).startswith(r) for r in roots)


def _hash_buffer(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha256(data.reshape(-1).view(np.uint8).data).hexdigest()[:16]


def _opaque(value: Any) -> dict[str, Any]:
    """An object the other rules do not know: by its pickled bytes."""
    try:
        data = pickle.dumps(value, protocol=4)
    except Exception as err:  # noqa: BLE001 - any failure means: no key
        raise ValueError(
            f"cannot build a cache key from a {type(value).__qualname__} "
            f"({err}); pass cache=False to call without the cache"
        ) from None
    return {"type": _type_name(value), "pickle": hashlib.sha256(data).hexdigest()[:16]}


def _type_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


class _Describer:
    """JSON-ready description of a value by content (one instance per key)."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}
        self.keep: list[Any] = []  # described objects stay alive while ids are memoised

    def __call__(self, value: Any, seen: frozenset[int] = frozenset()) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return value.item()
        if isinstance(value, Path):
            return str(value)
        if id(value) in seen:
            return {"recursive": _type_name(value)}
        if id(value) in self.memo:
            return self.memo[id(value)]
        out = self._describe(value, seen | {id(value)})
        self.memo[id(value)] = out
        self.keep.append(value)
        return out

    def _describe(self, value: Any, seen: frozenset[int]) -> Any:
        if isinstance(value, types.ModuleType):
            return {
                "module": value.__name__,
                "version": str(getattr(value, "__version__", "")),
            }
        if isinstance(value, type):
            return {"class": _type_name(value)}
        if isinstance(value, Mapping):
            items = sorted(value.items(), key=lambda kv: str(kv[0]))
            return {str(k): self(v, seen) for k, v in items}
        if isinstance(value, (list, tuple)):
            return [self(v, seen) for v in value]
        if isinstance(value, (set, frozenset)):
            return {"set": sorted((self(v, seen) for v in value), key=json.dumps)}
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            return {
                "tensor": _hash_buffer(t.reshape(-1).view(torch.uint8).numpy()),
                "shape": list(t.shape),
                "dtype": str(t.dtype),
            }
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return {
                    "object_array": [self(v, seen) for v in value.ravel().tolist()],
                    "shape": list(value.shape),
                }
            return {
                "array": _hash_buffer(value),
                "shape": list(value.shape),
                "dtype": str(value.dtype),
            }
        if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
            return self._table(value, seen)
        if isinstance(value, np.random.Generator):
            return {"generator": self(value.bit_generator.state, seen)}
        if isinstance(value, torch.Generator):
            return {"torch_generator": self(value.get_state(), seen)}
        if isinstance(value, torch.nn.Module):
            return {
                "module_type": _type_name(value),
                "architecture": repr(value),
                "training": value.training,
                "state": self(dict(value.state_dict()), seen),
            }
        if callable(value) and (
            hasattr(value, "__code__")
            or hasattr(value, "__func__")
            or isinstance(value, functools.partial)
        ):
            return self.function(value, seen)
        if dataclasses.is_dataclass(value):
            return {
                "type": _type_name(value),
                "fields": {
                    f.name: self(getattr(value, f.name), seen)
                    for f in dataclasses.fields(value)
                },
            }
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            return {"type": _type_name(value), "state": self(state, seen)}
        return _opaque(value)

    def _table(self, value: Any, seen: frozenset[int]) -> Any:
        try:
            hashed = pd.util.hash_pandas_object(value, index=True).to_numpy()
            content = _hash_buffer(hashed)
        except TypeError:  # cells that pandas cannot hash (lists …)
            content = _opaque(value)["pickle"]
        out: dict[str, Any] = {
            "table": _type_name(value),
            "content": content,
            "length": int(len(value)),
        }
        if isinstance(value, pd.DataFrame):
            out["columns"] = [str(c) for c in value.columns]
            out["dtypes"] = [str(d) for d in value.dtypes]
        else:
            out["dtype"] = str(value.dtype)
            named = isinstance(value, pd.Series)
            out["name"] = self(value.name, seen) if named else None
        return out

    def function(self, func: Any, seen: frozenset[int]) -> Any:
        """Name, code, defaults, closure and (for user code) referenced globals."""
        explicit = getattr(func, "cache_key", None)
        if explicit is not None and not callable(explicit):
            return {"cache_key": plain(explicit)}
        if isinstance(func, functools.partial):
            return {
                "partial": self(func.func, seen),
                "args": self(func.args, seen),
                "keywords": self(func.keywords, seen),
            }
        func = getattr(func, "__wrapped_step__", func)
        inner = getattr(func, "__func__", func)  # a bound method: its function
        desc: dict[str, Any] = {
            "module": getattr(inner, "__module__", None),
            "qualname": getattr(inner, "__qualname__", type(inner).__qualname__),
        }
        code = getattr(inner, "__code__", None)
        if code is not None:
            desc["code"] = _code_digest(code)
            desc["defaults"] = self(getattr(inner, "__defaults__", None), seen)
            desc["kwdefaults"] = self(getattr(inner, "__kwdefaults__", None), seen)
            values = []
            for cell in getattr(inner, "__closure__", None) or ():
                try:
                    values.append(self(cell.cell_contents, seen))
                except ValueError:  # an empty cell
                    values.append(None)
            desc["closure"] = dict(zip(code.co_freevars, values))
            if not _installed(desc["module"]):
                space = getattr(inner, "__globals__", {})
                names = sorted(
                    n
                    for n in _global_names(code)
                    if n in space and not n.startswith("__")
                )
                desc["globals"] = {n: self(space[n], seen) for n in names}
        else:  # a callable object: its type and state
            desc["state"] = self(getattr(func, "__dict__", repr(func)), seen)
        if getattr(func, "__self__", None) is not None and not isinstance(
            func.__self__, types.ModuleType
        ):
            desc["self"] = self(func.__self__, seen)
        return desc


def describe(value: Any) -> Any:
    """What a cache key records of a value: its content, in JSON-ready form.

    Parameters
    ----------
    value : any
        Numbers, text, containers, dataclasses (field by field, with their
        type), numpy arrays, torch tensors and networks, pandas tables (by
        content digest), random generators (by state), functions (see
        :func:`factory_key`) or any object whose attributes are such values.

    Returns
    -------
    any
        Equal for equal contents, different when any part differs.

    Raises
    ------
    ValueError
        If a part of the value can be neither described nor pickled.
    """
    return _Describer()(value)


def factory_key(factory: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """What identifies a function in cache keys: its name, code, defaults, the
    values it closes over and, for a function of a notebook or script, the globals
    it reads.

    Two closures made by one function from different values get different keys;
    a function may also set a ``cache_key`` attribute describing everything its
    result depends on.

    Parameters
    ----------
    factory : callable
        For example a cohort factory ``(preset, overrides, seed) -> cohort``.

    Returns
    -------
    any
        A JSON-ready description.
    """
    if not callable(factory):
        raise ValueError(f"factory={factory!r} is invalid; allowed: a callable")
    return _Describer().function(factory, _seen | {id(factory)})


def _describe(value: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """Like :func:`plain`, but by content (see :func:`describe`)."""
    return _Describer()(value, _seen)


# --------------------------------------------------------------------- the cache


def default_cache_dir() -> Path:
    """``$FAIMI_CACHE_DIR`` or ``~/.cache/faimi-tutorial/sweeps``."""
    env = os.environ.get("FAIMI_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "faimi-tutorial" / "sweeps"


def _is_plain_record(record: Any) -> bool:
    return isinstance(record, dict) and all(isinstance(k, str) for k in record)


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class ResultCache:
    """Results on disk, one file per key: JSON records and pickled objects.

    Each file holds the result, the configuration that produced it and a format
    tag. A lookup that names its configuration only hits a file made from that
    same configuration (so a hash collision or a hand-edited file is never
    trusted); an entry that cannot be read is computed again. Writes go to a
    uniquely named temporary file that replaces the entry in one step, so
    concurrent writers of one key never fail or mix their bytes.

    Parameters
    ----------
    directory : path, optional
        Where the files go (default :func:`default_cache_dir`).
    enabled : bool, default True
        ``False`` makes every lookup miss and every store a no-op.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, enabled: bool = True
    ) -> None:
        self.directory = (
            Path(directory) if directory is not None else default_cache_dir()
        )
        self.enabled = bool(enabled)

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r}, enabled={self.enabled})"

    def path(self, key: str, suffix: str = ".json") -> Path:
        """File of ``key`` (``.json`` for records, ``.pkl`` for objects)."""
        key = str(key)
        if not key or "/" in key or "\\" in key or key.startswith(".") or "\x00" in key:
            raise ValueError(
                f"key={key!r} is invalid; allowed: a file-name-safe text "
                "such as a config_hash"
            )
        return self.directory / f"{key}{suffix}"

    def check(self) -> None:
        """Make sure the folder exists and can be written, before any work is done.

        Raises
        ------
        ValueError
            One line naming the folder and what is wrong with it.
        """
        if not self.enabled:
            return
        where = f"cache folder {str(self.directory)!r} (FAIMI_CACHE_DIR or cache=)"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(
                f"{where} cannot be created: {err.strerror or err}; "
                "set FAIMI_CACHE_DIR to a writable folder"
            ) from None
        writable = os.access(self.directory, os.W_OK | os.X_OK)
        if not self.directory.is_dir() or not writable:
            raise ValueError(
                f"{where} is not a writable folder; "
                "set FAIMI_CACHE_DIR to a writable folder"
            )

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or "record" not in data or "config" not in data:
            return None
        return data

    def get(self, key: str, config: Any = None) -> dict[str, Any] | None:
        """The stored record of ``key``, or ``None``.

        Parameters
        ----------
        key : str
            The entry.
        config : any, optional
            The configuration the record must have been made from; a stored record
            of another configuration reads as missing.

        Returns
        -------
        dict or None
            The record; ``None`` when missing, unreadable, of the wrong shape, or
            made from another configuration.
        """
        if not self.enabled:
            return None
        path = self.path(key)
        data = self._load(path)
        if data is None or not _is_plain_record(data["record"]):
            if path.exists():
                _warn(
                    f"cache entry {path.name} in {self.directory} cannot be read; "
                    "it is computed again"
                )
            return None
        if config is not None and _canonical(data["config"]) != _canonical(config):
            return None
        return data["record"]

    def _write(self, target: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".{target.name}.{unique}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, key: str, record: Mapping[str, Any], config: Any = None) -> None:
        """Store ``record`` (and the configuration it came from) under ``key``."""
        if not self.enabled:
            return
        target = self.path(key)
        text = json.dumps(
            {
                "format": CACHE_FORMAT,
                "config": plain(config),
                "record": plain(dict(record)),
            },
            indent=1,
        )
        self._write(target, text.encode("utf-8"))

    def load(self, key: str, config: Any) -> tuple[bool, Any]:
        """The stored object of ``key`` made from ``config``.

        Parameters
        ----------
        key : str
            The entry.
        config : any
            The configuration the object must have been made from.

        Returns
        -------
        (bool, any)
            ``(True, value)`` on a hit, ``(False, None)`` when the entry is
            missing, made from another configuration or unreadable (with a
            :class:`CacheWarning`).
        """
        if not self.enabled:
            return False, None
        path = self.path(key, ".pkl")
        try:
            with open(path, "rb") as f:
                magic = f.readline()
                header = json.loads(f.readline()) if magic == OBJECT_MAGIC else None
                payload = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        except (OSError, ValueError):
            header, payload = None, b""
        try:
            if not isinstance(header, dict) or "config" not in header:
                raise ValueError("not an entry of this cache")
            if _canonical(header["config"]) != _canonical(config):
                return False, None
            if len(payload) != header.get("bytes") or zlib.crc32(payload) != header.get(
                "crc32"
            ):
                raise ValueError("truncated or damaged")
            value = pickle.loads(payload)
            if not isinstance(value, dict) or "result" not in value:
                raise ValueError("not an entry of this cache")
        except Exception as err:  # noqa: BLE001 - any failure to read is a miss
            _warn(
                f"cache entry {path.name} in {self.directory} cannot be read "
                f"({err}); it is computed again"
            )
            return False, None
        _set_random_state(value.get("random"))
        return True, value["result"]

    def store(self, key: str, value: Any, config: Any) -> bool:
        """Store any picklable ``value`` (and the global random state) under ``key``.

        Parameters
        ----------
        key : str
            The entry.
        value : any
            The result.
        config : any
            What it was computed from (checked again by :meth:`load`).

        Returns
        -------
        bool
            Whether it was stored (a value that cannot be pickled is not, with a
            :class:`CacheWarning`).
        """
        if not self.enabled:
            return False
        try:
            payload = pickle.dumps(
                {"result": value, "random": _random_state()},
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except Exception as err:  # noqa: BLE001 - an unpicklable result is not stored
            _warn(
                f"the result of cache entry {key} cannot be stored ({err}); "
                "it is computed again at every call"
            )
            return False
        header = {
            "format": OBJECT_MAGIC.decode().strip(),
            "config": plain(config),
            "type": _type_name(value),
            "bytes": len(payload),
            "crc32": zlib.crc32(payload),
        }
        text = json.dumps(header, allow_nan=True).encode()
        data = OBJECT_MAGIC + text + b"\n" + payload
        self._write(self.path(key, ".pkl"), data)
        return True

    def __contains__(self, key: str) -> bool:
        return self.enabled and (
            self.path(key).exists() or self.path(key, ".pkl").exists()
        )

    def _own_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        out = []
        for p in sorted(self.directory.glob("*.json")):
            data = self._load(p)
            if data is not None and data.get("format", CACHE_FORMAT) == CACHE_FORMAT:
                out.append(p)
        for p in sorted(self.directory.glob("*.pkl")):
            try:
                with open(p, "rb") as f:
                    if f.readline() == OBJECT_MAGIC:
                        out.append(p)
            except OSError:
                pass
        return out

    def __len__(self) -> int:
        return len(self._own_files())

    def clear(self) -> int:
        """Delete every entry this cache wrote (other files in the folder are kept).

        Returns
        -------
        int
            How many entries were deleted.
        """
        n = 0
        for p in self._own_files():
            p.unlink(missing_ok=True)
            n += 1
        if self.directory.is_dir():  # temporary files of interrupted writes
            for pattern in (".*.json.*.tmp", ".*.pkl.*.tmp"):
                for p in self.directory.glob(pattern):
                    p.unlink(missing_ok=True)
        return n


def _random_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def _set_random_state(state: Any) -> None:
    if isinstance(state, dict) and {"python", "numpy", "torch"} <= set(state):
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])


def _as_cache(cache: ResultCache | str | os.PathLike[str] | bool | None) -> ResultCache:
    if cache is None or cache is True:
        return ResultCache()
    if cache is False:
        return ResultCache(enabled=False)
    if isinstance(cache, ResultCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return ResultCache(cache)
    raise ValueError(
        f"cache={cache!r} is invalid; allowed: None (the default folder), "
        "False (no cache), a folder or a ResultCache"
    )


def cached(
    config: Any,
    compute: Callable[[], Mapping[str, Any]],
    cache: ResultCache | None = None,
    refresh: bool = False,
    require: Sequence[str] = (),
    valid: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Return the cached record of ``config``, computing and storing it when missing.

    Parameters
    ----------
    config : any
        The configuration that fully determines the result.
    compute : callable
        Produces the record (a flat mapping of JSON-ready values).
    cache : ResultCache, optional
        Default: a cache in :func:`default_cache_dir`.
    refresh : bool, default False
        Recompute even when a record exists.
    require : sequence of str, default ()
        Other cache keys that must also exist for a hit (companion files).
    valid : callable, optional
        ``valid(record) -> bool``: a stored record it refuses is recomputed.

    Returns
    -------
    dict
        The record, with ``"cached"`` set to whether it came from disk.
    """
    cache = cache if cache is not None else ResultCache()
    key = config_hash(config)
    if not refresh:
        hit = cache.get(key, config) if all(p in cache for p in require) else None
        if hit is not None and (valid is None or _accepts(valid, hit)):
            return {**hit, "cached": True}
    cache.check()
    record = dict(compute())
    cache.put(key, record, config)
    return {**plain(record), "cached": False}


def _accepts(valid: Callable[[dict[str, Any]], bool], record: dict[str, Any]) -> bool:
    try:
        return bool(valid(record))
    except Exception:  # a check that trips on a malformed record refuses it
        return False


# --------------------------------------------------------------------- the runner


def call_config(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that determines the result of ``fn(*args, **kwargs)``, described.

    Parameters
    ----------
    fn : callable
        The function.
    args : sequence
        Positional arguments.
    kwargs : mapping, optional
        Keyword arguments.

    Returns
    -------
    dict
        ``version``, ``source`` (:func:`source_digest`), ``function``
        (:func:`factory_key`) and ``arguments`` (every parameter, defaults
        filled in, by :func:`describe`; :data:`NOT_IN_KEY` left out).

    Raises
    ------
    ValueError
        If the arguments do not fit ``fn``'s signature or cannot be described.
    """
    if not callable(fn):
        raise ValueError(f"fn={fn!r} is invalid; allowed: a callable")
    target = getattr(fn, "__wrapped_step__", fn)
    kwargs = dict(kwargs or {})
    try:
        bound = inspect.signature(target).bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
    except TypeError as err:
        name = getattr(target, "__qualname__", target)
        raise ValueError(f"arguments do not fit {name!r}: {err}") from None
    except ValueError:  # no signature (a builtin): positional and keyword as given
        arguments = {"args": list(args), "kwargs": kwargs}
    arguments = {k: v for k, v in arguments.items() if k not in NOT_IN_KEY}
    describer = _Describer()
    return {
        "version": __version__,
        "source": source_digest(),
        "function": describer.function(target, frozenset({id(target)})),
        "arguments": describer(arguments),
    }


def run(
    fn: Callable[..., Any],
    /,
    *args: Any,
    cache: ResultCache | str | os.PathLike[str] | bool | None = None,
    refresh: bool = False,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)``, computed once and then read from the cache.

    Parameters
    ----------
    fn : callable
        A function whose result depends only on its arguments (and code); its
        other effects, except on the global random state, are not repeated on a hit.
    *args, **kwargs
        Its arguments.
    cache : ResultCache, folder, bool or None, default None
        ``None``: :class:`ResultCache` in :func:`default_cache_dir`; ``False``:
        call ``fn`` without the cache.
    refresh : bool, default False
        Compute again (and store) even when a result is stored.

    Returns
    -------
    any
        What ``fn`` returns (a copy read from disk on a hit).

    Raises
    ------
    ValueError
        If the cache folder cannot be used (one line), or an argument cannot be
        part of a key.
    """
    if not callable(fn):
        raise ValueError(f"fn={fn!r} is invalid; allowed: a callable")
    store = _as_cache(cache)
    if not store.enabled:
        return fn(*args, **kwargs)
    store.check()
    config = call_config(fn, args, kwargs)
    key = config_hash(config, length=24)
    if not refresh:
        hit, value = store.load(key, config)
        if hit:
            return value
    value = fn(*args, **kwargs)
    store.store(key, value, config)
    return value


def stored(
    fn: Callable[..., Any],
    /,
    *args: Any,
    cache: ResultCache | str | os.PathLike[str] | bool | None = None,
    **kwargs: Any,
) -> bool:
    """Whether :func:`run` would find a stored result of ``fn(*args, **kwargs)``.

    Parameters
    ----------
    fn : callable
        The function (a :func:`step` or a plain one).
    *args, **kwargs
        Its arguments.
    cache : ResultCache, folder, bool or None, default None
        As for :func:`run`; ``False`` never holds a result.

    Returns
    -------
    bool
        ``True`` when an entry of this call (same key and configuration) is on
        disk; an entry that then proves unreadable is computed again by :func:`run`.

    Raises
    ------
    ValueError
        If ``fn`` is not callable or an argument cannot be part of a key.
    """
    if not callable(fn):
        raise ValueError(f"fn={fn!r} is invalid; allowed: a callable")
    store = _as_cache(cache)
    if not store.enabled:
        return False
    config = call_config(fn, args, kwargs)
    path = store.path(config_hash(config, length=24), ".pkl")
    try:
        with open(path, "rb") as f:
            if f.readline() != OBJECT_MAGIC:
                return False
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and _canonical(header.get("config")) == _canonical(
        config
    )


_STEP_DOC = """
    Notes
    -----
    Cached through :func:`faimi_tutorial.experiments.runner.run`: ``cache`` (a
    :class:`~faimi_tutorial.experiments.runner.ResultCache`, a folder, ``None`` for
    ``$FAIMI_CACHE_DIR``, ``False`` for none) and ``refresh=True`` (compute
    again) are accepted as keywords.
"""


def step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: every call of ``fn`` goes through :func:`run`.

    The wrapped function takes two more keywords, ``cache`` and ``refresh``
    (see :func:`run`); the original stays reachable as ``uncached``.

    Parameters
    ----------
    fn : callable
        An expensive function whose result depends only on its arguments.

    Returns
    -------
    callable
        The cached function.
    """
    if not callable(fn):
        raise ValueError(f"fn={fn!r} is invalid; allowed: a callable")
    params = inspect.signature(fn).parameters
    if "cache" in params or "refresh" in params:
        raise ValueError(
            f"{fn.__qualname__} already has a 'cache' or 'refresh' parameter"
        )

    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        cache: ResultCache | str | os.PathLike[str] | bool | None = None,
        refresh: bool = False,
        **kwargs: Any,
    ) -> Any:
        return run(fn, *args, cache=cache, refresh=refresh, **kwargs)

    sig = inspect.signature(fn)
    extra = [
        inspect.Parameter("cache", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("refresh", inspect.Parameter.KEYWORD_ONLY, default=False),
    ]
    plist = list(sig.parameters.values())
    at = next(
        (i for i, p in enumerate(plist) if p.kind is inspect.Parameter.VAR_KEYWORD),
        len(plist),
    )
    wrapper.__signature__ = sig.replace(parameters=plist[:at] + extra + plist[at:])
    wrapper.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + _STEP_DOC
    wrapper.__wrapped_step__ = fn
    wrapper.uncached = fn
    return wrapper
