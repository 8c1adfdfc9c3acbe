"""Baselines: the committed metrics of each model that ``compressor check --baseline`` compares against.

The file (``compressor-baseline.json`` by default) is versioned JSON, one entry per model key (the model's
path relative to the project root), written atomically with sorted keys so that its diffs review well::

    {"schema": "compressor/baseline", "version": 1,
     "models": {"models/digits.onnx": {
        "updated": "2026-11-29T10:00:00+00:00",
        "environment": {"cpu": "...", "threads": 2, "device": "cpu"},
        "metrics": {"size": {"value": 609690}, "params": {"value": 152234},
                    "latency@b1": {"value": 0.051, "spread": 0.004, "runs": 412}}}}}

A file that is not valid JSON, not a baseline, from a newer version, or without an entry for the model is
an error (exit 3) and is never overwritten.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compressor.errors import BaselineError
from compressor.gate import METRIC_FAMILIES, MetricValue, metric_family
from compressor.outputs import write_text_atomic

SCHEMA = "compressor/baseline"
VERSION = 1
DEFAULT_BASELINE = "compressor-baseline.json"
#: Environment facts that must match for latency to be compared.
LATENCY_ENVIRONMENT = ("cpu", "threads", "device")


@dataclass
class BaselineEntry:
    metrics: dict[str, MetricValue]
    environment: dict[str, Any] = field(default_factory=dict)
    updated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "updated": self.updated,
            "environment": self.environment,
            "metrics": {name: metric.to_dict() for name, metric in self.metrics.items()},
        }

    def latency_skip_reason(self, environment: dict[str, Any] | None) -> str | None:
        """Why latency cannot be compared with this run (measured on another machine or setup), or None."""
        if not any(metric_family(name) == "latency" for name in self.metrics) or environment is None:
            return None
        then = {k: self.environment.get(k) for k in LATENCY_ENVIRONMENT}
        now = {k: environment.get(k) for k in LATENCY_ENVIRONMENT}
        if then == now:
            return None
        differs = ", ".join(f"{k} {then[k]!r} then, {now[k]!r} now" for k in LATENCY_ENVIRONMENT if then[k] != now[k])
        return f"not compared: baseline latency was measured elsewhere ({differs}); update the baseline on this machine"


@dataclass
class Baseline:
    path: Path
    entries: dict[str, BaselineEntry] = field(default_factory=dict)
    exists: bool = False

    def entry(self, key: str) -> BaselineEntry:
        """The entry for the model ``key``; an error naming what the file holds when there is none."""
        if key in self.entries:
            return self.entries[key]
        held = ", ".join(sorted(self.entries)) or "no models"
        raise BaselineError(
            f"baseline {self.path} has no entry for model '{key}' (it holds: {held})",
            hint="record one with --update-baseline, or point --baseline at this model's baseline",
        )


def read_baseline(path: Path, must_exist: bool = True) -> Baseline:
    """Read and validate a baseline file; a missing file is an empty baseline unless ``must_exist``."""
    if path.is_dir():
        raise BaselineError(f"baseline {path} is a folder, expected a JSON file")
    if not path.exists():
        if must_exist:
            raise BaselineError(f"baseline {path} not found", hint="create it with --update-baseline")
        return Baseline(path)
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"baseline {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BaselineError(f"baseline {path} is not valid JSON ({type(exc).__name__})") from None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BaselineError(f'{path} is not a compressor baseline (its "schema" is not "{SCHEMA}")')
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise BaselineError(f"baseline {path} has version {version!r}; this compressor reads version {VERSION}")
    models = data.get("models")
    if not isinstance(models, dict):
        raise BaselineError(f'baseline {path}: "models" must be an object')
    return Baseline(path, {key: _entry(path, key, raw) for key, raw in models.items()}, exists=True)


def _entry(path: Path, key: str, raw: Any) -> BaselineEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise BaselineError(f"baseline {path}: model '{key}' has no \"metrics\" object")
    metrics = {}
    for name, value in raw["metrics"].items():
        if metric_family(name) not in METRIC_FAMILIES:
            raise BaselineError(
                f"baseline {path}: model '{key}' has an unknown metric '{name}'. "
                f"Valid metrics: {', '.join(METRIC_FAMILIES)}"
            )
        try:
            metrics[name] = MetricValue.from_dict(name, value)
            if not math.isfinite(metrics[name].value):
                raise ValueError("not finite")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BaselineError(
                f"baseline {path}: model '{key}' metric '{name}' must be an object with a finite numeric \"value\""
            ) from None
    environment = raw.get("environment") if isinstance(raw.get("environment"), dict) else {}
    return BaselineEntry(metrics, environment, str(raw.get("updated", "")))


def new_entry(metrics: dict[str, MetricValue], environment: dict[str, Any] | None) -> BaselineEntry:
    env = {k: environment.get(k) for k in LATENCY_ENVIRONMENT} if environment else {}
    return BaselineEntry(dict(metrics), env, datetime.now(timezone.utc).isoformat(timespec="seconds"))


def write_baseline(baseline: Baseline, updates: dict[str, BaselineEntry]) -> Path:
    """Write ``baseline`` with ``updates`` merged in (other models' entries are kept), atomically."""
    entries = {**baseline.entries, **updates}
    data = {
        "schema": SCHEMA,
        "version": VERSION,
        "models": {key: entries[key].to_dict() for key in sorted(entries)},
    }
    return write_text_atomic(baseline.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
