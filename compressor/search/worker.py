"""Building and evaluating one candidate: a picklable task in, a picklable result out.

The same function runs in-process, in a local worker process, or as a Ray task: it loads what it needs by
reference (model, datasets, cache folder), so nothing large crosses process boundaries except the outputs
on the evaluation data.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact
from compressor.cache import ResultCache
from compressor.data import Dataset, load_dataset
from compressor.errors import CompressorError
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.runner import RunOptions
from compressor.outputs import scratch_dir
from compressor.pipeline import StepCache, make_steps, outputs_on, plan, run_pipeline
from compressor.pyref import is_reference

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
    #: Run the result on the evaluation data (off when the driver already has its score cached).
    evaluate: bool = True


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


@functools.lru_cache(maxsize=4)
def _source(reference: str, options_json: str, source_key: str) -> tuple[Artifact, LoaderOptions]:
    """The source model, loaded once per worker process and search (its content key is part of the key)."""
    options = LoaderOptions.model_validate_json(options_json)
    return load_model(reference, options), options


def _stamp(reference: str) -> tuple[int, int]:
    """Modification time and size of the file a reference names (so an edited file is read again)."""
    path = Path(reference.rsplit(":", 1)[0] if is_reference(reference) else reference)
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _cached_dataset(reference: str, stamp: tuple[int, int], source_key: str, options_json: str, source: str) -> Dataset:
    artifact, _ = _source(source, options_json, source_key)
    return load_dataset(reference, artifact)


def _dataset(reference: str, source_key: str, options_json: str, source: str) -> Dataset:
    """A dataset read once per worker process and source: a module.py:function one is not re-run per candidate."""
    return _cached_dataset(reference, _stamp(reference), source_key, options_json, source)


def build_candidate(task: BuildTask) -> BuildResult:
    """Build the candidate through the cache and run it on the evaluation data. Errors are returned."""
    started = time.perf_counter()
    result = BuildResult(task.index)
    try:
        options_json = json.dumps(task.loader_options, sort_keys=True)
        source, options = _source(task.source, options_json, task.source_key)
        data = _dataset(task.data, task.source_key, options_json, task.source) if task.data else None
        evaluation = _dataset(task.eval_data, task.source_key, options_json, task.source) if task.eval_data else data
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
        if evaluation is not None and task.evaluate:
            result.outputs = evaluation_outputs(built.output, evaluation, run)
    except CompressorError as exc:
        result.error = exc.message
    except Exception as exc:  # a candidate that crashes is a failed trial, not a failed search
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result
