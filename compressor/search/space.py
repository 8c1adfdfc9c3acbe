"""Candidates: valid combinations of the search spaces that registered passes declare.

A pass joins the search by setting ``stage`` and returning configs from ``search_space(artifact)``; the
core knows only the order of the stages, so a plugin's pass is searched without core changes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from compressor.artifacts import Artifact
from compressor.errors import UsageError
from compressor.passes import Pass
from compressor.plugins import get_registry

#: Stages in the order a pipeline applies them. "recover" (fine-tuning, distillation) only follows "prune".
STAGES = ("prune", "recover", "graph", "quantize")


@dataclass(frozen=True)
class Candidate:
    """An ordered list of (pass name, config) to apply to the source model."""

    steps: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, specs: list[tuple[str, dict[str, Any]]]) -> Candidate:
        return cls(tuple((name, json.dumps(config, sort_keys=True)) for name, config in specs))

    def specs(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, json.loads(config)) for name, config in self.steps]

    @property
    def label(self) -> str:
        parts = []
        for name, config in self.specs():
            args = ",".join(f"{k}={_short(v)}" for k, v in config.items())
            parts.append(f"{name}({args})" if args else name)
        return " > ".join(parts) or "baseline"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + "/".join(map(str, value)) + "]"
    return str(value)


def _options(stage: str, artifact: Artifact, allowed: set[str] | None) -> list[tuple[str, dict[str, Any]]]:
    options = []
    for name, pass_cls in sorted(get_registry().passes.items()):
        if pass_cls.stage == stage and (allowed is None or name in allowed):
            options.extend((name, config) for config in pass_cls.search_space(artifact))
    return options


def final_format(source_format: str, specs: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The format after ``specs`` (registered conversions inserted as needed), or None if one is unreachable."""
    from compressor.pipeline import _conversion_path

    fmt = source_format
    passes: dict[str, type[Pass]] = get_registry().passes
    for name, _ in specs:
        pass_cls = passes[name]
        if fmt not in pass_cls.input_formats and _conversion_path(fmt, pass_cls.input_formats) is None:
            return None
        fmt = pass_cls.output_format or fmt  # "": keeps its input's format
    return fmt


def deployment_steps(source_format: str, target: str = "onnx") -> list[tuple[str, dict[str, Any]]] | None:
    """The conversions from ``source_format`` to ``target`` ([] when already there), or None when none exist."""
    from compressor.pipeline import _conversion_path

    path = _conversion_path(source_format, (target,))
    return None if path is None else [(conversion.name, {}) for conversion in path]


def candidates(artifact: Artifact, allowed: set[str] | None = None, target: str | None = None) -> list[Candidate]:
    """Every valid combination, fewest steps first; ``allowed`` limits the passes searched. With ``target``,
    a candidate that ends in another format gets the conversions to it appended, so all are compared in
    the same runtime."""
    if allowed is not None:
        unknown = allowed - set(get_registry().passes)
        if unknown:
            raise UsageError(f"--passes names unknown passes {sorted(unknown)}; see `compressor plugins --passes`")
    per_stage = [[None, *_options(stage, artifact, allowed)] for stage in STAGES]
    found = []
    for combo in itertools.product(*per_stage):
        chosen = dict(zip(STAGES, combo, strict=True))
        specs = [option for option in combo if option is not None]
        if not specs or (chosen["recover"] and not chosen["prune"]):
            continue
        final = final_format(artifact.format, specs)
        if final is None:
            continue
        tail = deployment_steps(final, target) if target and final != target else []
        if tail is not None:
            found.append(Candidate.of([*specs, *tail]))
    return sorted(found, key=lambda c: len(c.steps))
