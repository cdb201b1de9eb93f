"""Cross-references in the package's docstrings name real objects by their real path.

The API reference is built with ``--nitpick``: a reference such as
``:func:`faimi_tutorial.metrics.auroc``` (an alias path, not where the function is
documented) breaks the book build. This test finds such references without building it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faimi_tutorial"
ROLE = re.compile(
    r":(?:py:)?(func|class|meth|data|mod|attr|exc|obj):`~?(faimi_tutorial[\w.]*)`"
)


def references() -> list[tuple[str, str, str]]:
    """Every (file, role, target) in the package's sources."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = re.sub(r"\s*\n\s*", " ", path.read_text())  # targets may wrap lines
        for role, target in ROLE.findall(text):
            found.append((path.relative_to(PACKAGE.parent).as_posix(), role, target))
    return found


def resolve(target: str) -> object:
    """The object at ``target``; modules must be named by their real path."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if module.__name__ != name:
            raise LookupError(f"{name} is an alias of {module.__name__}")
        obj: object = module
        path = name
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
            path += "." + attr
            if inspect.ismodule(obj) and obj.__name__ != path:
                raise LookupError(f"{path} is an alias of {obj.__name__}")
        return obj
    raise LookupError(f"no module in {target}")


REFS = references()


def test_references_were_found():
    assert len(REFS) > 50


@pytest.mark.parametrize(
    "where,role,target", REFS, ids=[f"{r[0]}:{r[2]}" for r in REFS]
)
def test_reference_resolves(where, role, target):
    try:
        resolve(target)
    except (LookupError, AttributeError) as exc:
        pytest.fail(f"{where}: :{role}:`{target}` does not resolve ({exc})")


def test_an_alias_path_is_caught():
    with pytest.raises(LookupError):
        resolve("faimi_tutorial.metrics.auroc")
