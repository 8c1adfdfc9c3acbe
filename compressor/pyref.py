"""``path/to/module.py:name`` references: user code for factories, datasets and metrics."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from compressor.errors import CompressorError

_REF = re.compile(r"^(?P<file>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def is_reference(ref: str) -> bool:
    return bool(_REF.match(str(ref)))


def resolve_reference(ref: str, error: type[CompressorError]) -> Any:
    """Import ``file.py`` and return its attribute ``name``; clear errors for each way it can fail."""
    match = _REF.match(str(ref))
    if not match:
        raise error(f"'{ref}' is not a reference of the form path/to/module.py:name")
    path = Path(match["file"]).expanduser()
    if not path.is_file():
        raise error(f"{ref}: file {path} not found")
    module_name = f"_compressor_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise error(f"{ref}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise error(f"{ref}: importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(path.parent.resolve()))
    if not hasattr(module, match["name"]):
        raise error(f"{ref}: {path.name} has no attribute '{match['name']}'")
    return getattr(module, match["name"])


def call_reference(ref: str, error: type[CompressorError], *args: Any) -> Any:
    """Resolve ``ref`` and call it; an exception inside the user's function becomes ``error``."""
    target = resolve_reference(ref, error)
    if not callable(target):
        raise error(f"{ref} is not callable")
    try:
        return target(*args)
    except Exception as exc:
        raise error(f"{ref} raised {type(exc).__name__}: {exc}") from exc
