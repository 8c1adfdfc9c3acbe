"""Project configuration: ``[tool.compressor.check]`` in the nearest pyproject.toml.

    [tool.compressor.check]
    max-size = "25MB"
    baseline = "compressor-baseline.json"
    max-regression = "5%"                 # or "latency=10%,size=0%" or {default = "5%", latency = "10%"}

    [tool.compressor.check.models."models/*-int8.onnx"]
    max-size = "200KB"
    min-accuracy = "98%"
    data = "data/test.npz"

Precedence, lowest first: built-in defaults, ``[tool.compressor.check]``, every matching
``models."<glob>"`` section in file order, then command-line flags. Keys are kebab-case (``max_size`` is
accepted too); paths are relative to the pyproject.toml's folder, the project root. A model's key (used to
match globs, and in baselines and the history store) is its path relative to the project root.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import ConfigError, UsageError
from compressor.parsing import parse_count, parse_percent, parse_size

PYPROJECT = "pyproject.toml"
#: Where ``check --record`` appends measurements, relative to the project root.
DEFAULT_HISTORY = ".compressor/history.sqlite"
SECTION = "[tool.compressor.check]"


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError('expected a size such as "25MB" or a number of bytes')
    return parse_size(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError('expected a whole number such as 5000000 or "5M"')
    return parse_count(value, "number")


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError('expected a fraction such as 0.98 or a percentage such as "98%"')
    return parse_percent(value)


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UsageError(f"expected a positive number, got {value!r}")
    return float(value)


def _non_negative_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"expected a number that is not negative, got {value!r}")
    return float(value)


def _int_at_least(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"expected a whole number of at least {low}, got {value!r}")
        return value

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"expected a non-empty string, got {value!r}")
    return value


def _device(value: Any) -> str:
    from compressor.measure.runner import DEVICES

    if value not in DEVICES:
        raise UsageError(f"expected one of {', '.join(DEVICES)}, got {value!r}")
    return str(value)


def _regression(value: Any) -> tuple[float | None, dict[str, float]]:
    from compressor.gate import parse_max_regression

    if isinstance(value, str):
        return parse_max_regression(value)
    if isinstance(value, dict):
        items = [str(v) if k == "default" else f"{k}={v}" for k, v in value.items()]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value.values()):
            raise UsageError('expected percentages, e.g. {default = "5%", latency = "10%"}')
        return parse_max_regression(items)
    raise UsageError('expected "5%", "latency=10%,size=0%" or a table such as {default = "5%", latency = "10%"}')


#: Keys a per-model section may set (and the global section too). Values are parsed with these functions.
MODEL_KEYS: dict[str, Callable[[Any], Any]] = {
    "max-size": _size,
    "max-params": _count,
    "max-latency-ms": _positive_float,
    "min-accuracy": _fraction,
    "min-fidelity": _fraction,
    "batch": _int_at_least(1),
    "data": _text,
    "reference": _text,
    "latency": _bool,
    "max-regression": _regression,
}
#: Keys that apply to the whole run, so only ``[tool.compressor.check]`` may set them.
RUN_KEYS: dict[str, Callable[[Any], Any]] = {
    "device": _device,
    "threads": _int_at_least(0),
    "min-runs": _int_at_least(1),
    "min-time": _non_negative_float,
    "warmup": _int_at_least(0),
    "baseline": _text,
    "history": _text,
    "record": _bool,
}


@dataclass(frozen=True)
class ModelSection:
    pattern: str
    values: dict[str, Any]

    def matches(self, key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        return fnmatch.fnmatchcase(key, self.pattern) or (
            "/" not in self.pattern and fnmatch.fnmatchcase(name, self.pattern)
        )


@dataclass(frozen=True)
class ProjectConfig:
    """The parsed ``[tool.compressor.check]`` of one pyproject.toml (or none)."""

    #: The pyproject.toml read, or None when there is none (or it has no such section).
    path: Path | None
    #: Paths in the file and model keys are relative to this folder.
    root: Path
    values: dict[str, Any] = field(default_factory=dict)
    models: tuple[ModelSection, ...] = ()

    def run_value(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def for_model(self, key: str) -> tuple[dict[str, Any], list[str]]:
        """The per-model settings for the model ``key``, and the sections they came from, in order."""
        merged = {k: v for k, v in self.values.items() if k in MODEL_KEYS}
        sources = [SECTION] if self.values else []
        for section in self.models:
            if section.matches(key):
                for name, value in section.values.items():
                    if name == "max-regression" and name in merged:
                        default, overrides = value
                        old_default, old_overrides = merged[name]
                        value = (old_default if default is None else default, {**old_overrides, **overrides})
                    merged[name] = value
                sources.append(f'[tool.compressor.check.models."{section.pattern}"]')
        return merged, sources

    def resolve(self, value: str) -> Path:
        """A path from the file, relative to the project root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml in ``start`` or a folder above it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / PYPROJECT
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: Path | None = None, cwd: Path | None = None) -> ProjectConfig:
    """Read ``[tool.compressor.check]`` from ``explicit`` or the nearest pyproject.toml above ``cwd``."""
    cwd = Path.cwd() if cwd is None else cwd
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} not found")
        path: Path | None = explicit
    else:
        path = find_pyproject(cwd)
    if path is None:
        return ProjectConfig(None, cwd.resolve())
    root = path.resolve().parent
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    section = data.get("tool", {}).get("compressor", {}).get("check") if isinstance(data.get("tool"), dict) else None
    if section is None:
        return ProjectConfig(None if explicit is None else path, root)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {SECTION} must be a table")
    values = _parse_table(path, SECTION, section, {**MODEL_KEYS, **RUN_KEYS}, allow_models=True)
    models = []
    raw_models = section.get("models", {})
    if not isinstance(raw_models, dict):
        raise ConfigError(f'{path}: {SECTION} models must hold tables, e.g. [tool.compressor.check.models."*.onnx"]')
    for pattern, table in raw_models.items():
        where = f'[tool.compressor.check.models."{pattern}"]'
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {where} must be a table of settings")
        models.append(ModelSection(pattern, _parse_table(path, where, table, MODEL_KEYS, allow_models=False)))
    return ProjectConfig(path, root, values, tuple(models))


def _parse_table(
    path: Path, where: str, table: dict[str, Any], keys: dict[str, Callable[[Any], Any]], allow_models: bool
) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        if key == "models" and allow_models:
            continue
        if key not in keys:
            if key in RUN_KEYS:
                raise ConfigError(f"{path}: {where} {raw_key}: applies to the whole run; set it in {SECTION}")
            valid = ", ".join(sorted([*keys, *(["models"] if allow_models else [])]))
            raise ConfigError(f"{path}: {where} has an unknown key '{raw_key}'. Valid keys: {valid}")
        try:
            parsed[key] = keys[key](value)
        except UsageError as exc:
            raise ConfigError(f"{path}: {where} {raw_key}: {exc.message}") from None
    return parsed


def model_key(model: str | Path, root: Path) -> str:
    """How baselines, the history store and per-model sections name a model: its path relative to ``root``."""
    path = Path(model).expanduser()
    absolute = path if path.is_absolute() else Path.cwd() / path
    absolute = Path(os.path.normpath(absolute))
    root = Path(os.path.normpath(root.resolve()))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        resolved = absolute.resolve()
        try:
            return resolved.relative_to(root).as_posix()
        except ValueError:
            return resolved.as_posix()
