"""Building and evaluating one candidate: a picklable task in, a picklable result out.

The same function runs in-process, in a local worker process, or as a Ray task: it loads what it needs by
reference (model, datasets, cache folder), so nothing large crosses process boundaries except the outputs
on the evaluation data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.cache import ResultCache
from compressor.data import load_dataset
from compressor.errors import CompressorError
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.runner import RunOptions
from compressor.outputs import scratch_dir
from compressor.pipeline import StepCache, make_steps, outputs_on, plan, run_pipeline

EVAL_BATCH = 64


@dataclass(frozen=True)
class BuildTask:
    """Everything a worker needs to build and evaluate one candidate, by reference."""

    index: int
    source: str
    source_key: str
    loader_options: dict[str, Any]
    specs: list[tuple[str, dict[str, Any]]]
    data: str | None
    eval_data: str | None
    cache_dir: str
    device: str = "cpu"
    threads: int = 0


@dataclass
class BuildResult:
    """The built artifact (inside the cache), its step reports, and its outputs on the evaluation data."""

    index: int
    artifact: dict[str, Any] | None = None
    #: The float model the last pass received (for finding sensitive nodes of a quantization).
    last_input: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[np.ndarray] | None = None
    seconds: float = 0.0
    error: str | None = None
    #: Whether every step came from the cache.
    cached: bool = False
    #: The result-cache key of each step, in order (an executor whose workers have their own cache uses them
    #: to bring the built pass results back into the driver's).
    keys: list[str] = field(default_factory=list)


def evaluation_outputs(artifact: Any, dataset: Any, run: RunOptions) -> list[np.ndarray]:
    """The artifact's outputs on the whole evaluation dataset."""
    batches = list(dataset.matched_to(artifact.inputs).batches(EVAL_BATCH)) if artifact.inputs else []
    return outputs_on(artifact, batches or list(dataset.batches(EVAL_BATCH)), run)


def build_candidate(task: BuildTask) -> BuildResult:
    """Build the candidate through the cache and run it on the evaluation data. Errors are returned."""
    started = time.perf_counter()
    result = BuildResult(task.index)
    try:
        options = LoaderOptions.model_validate(task.loader_options)
        source = load_model(task.source, options)
        data = load_dataset(task.data, source) if task.data else None
        evaluation = load_dataset(task.eval_data, source) if task.eval_data else data
        steps = plan(make_steps(task.specs), source.format)
        run = RunOptions(device=task.device, threads=task.threads)
        cache = StepCache(ResultCache(Path(task.cache_dir)), task.source_key)
        with scratch_dir("build") as work:
            built = run_pipeline(source, steps, work, data, options, run, cache=cache)
        result.artifact = built.output.to_dict()
        result.last_input = built.last_input.to_dict()
        result.steps = [s.to_dict() for s in built.steps]
        result.cached = all(s.cached for s in built.steps)
        result.keys = list(built.keys)
        if evaluation is not None:
            result.outputs = evaluation_outputs(built.output, evaluation, run)
    except CompressorError as exc:
        result.error = exc.message
    except Exception as exc:  # a candidate that crashes is a failed trial, not a failed search
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result
