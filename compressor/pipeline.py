"""Pipelines: plan the conversions a list of passes needs, run them, and verify every output.

Every pass output is loaded, run on reference inputs and compared with the pass's input (rule 2 of
the architecture): a pass that silently breaks a model shows up here as low fidelity, and one whose
output does not load or run fails with its name.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, total_size
from compressor.cache import ResultCache, dataset_hash, library_versions, make_key
from compressor.data import Dataset
from compressor.errors import CompressorError, PassError, RecipeError
from compressor.limits import set_activity
from compressor.loaders import LoaderOptions
from compressor.measure.inputs import make_inputs
from compressor.measure.quality import Fidelity, fidelity, looks_like_classifier
from compressor.measure.runner import RunOptions, open_session, run_batches
from compressor.outputs import full_disk_error, write_error
from compressor.passes import Pass, PassConfig, PassContext, PassResult, ProgressFactory, get_pass, no_progress
from compressor.plugins import get_registry

#: Samples of the dataset used to verify each pass output.
VERIFY_SAMPLES = 64
VERIFY_BATCH = 32
#: Below this mean cosine a step's notes warn that its outputs moved a lot.
LOW_FIDELITY = 0.98


@dataclass
class Step:
    """One pass to run with a validated config."""

    pass_cls: type[Pass]
    config: PassConfig
    #: Added by the planner (a conversion the user did not ask for).
    inserted: bool = False

    @property
    def name(self) -> str:
        return self.pass_cls.name


def make_steps(specs: list[tuple[str, dict[str, Any] | None]]) -> list[Step]:
    """Validate every pass name and config before any work starts."""
    steps = []
    for name, config in specs:
        pass_cls = get_pass(name)
        steps.append(Step(pass_cls, pass_cls.parse_config(config)))
    return steps


def _conversion_path(source: str, targets: tuple[str, ...]) -> list[type[Pass]] | None:
    conversions = [p for p in get_registry().passes.values() if p.conversion]
    queue: deque[tuple[str, list[type[Pass]]]] = deque([(source, [])])
    seen = {source}
    while queue:
        fmt, path = queue.popleft()
        if fmt in targets:
            return path
        for conv in conversions:
            if fmt in conv.input_formats and conv.output_format not in seen:
                seen.add(conv.output_format)
                queue.append((conv.output_format, [*path, conv]))
    return None


def plan(steps: list[Step], fmt: str) -> list[Step]:
    """Insert the conversions needed so each pass receives a format it accepts."""
    planned: list[Step] = []
    for step in steps:
        accepted = step.pass_cls.input_formats
        if fmt not in accepted:
            path = _conversion_path(fmt, accepted)
            if path is None:
                raise RecipeError(
                    f"pass '{step.name}' accepts {list(accepted)} models; the model at that point is "
                    f"'{fmt}' and no registered conversion leads there",
                    hint="install the plugin that converts this format (see `compressor plugins`)",
                )
            planned.extend(Step(conv, conv.parse_config({}), inserted=True) for conv in path)
            fmt = path[-1].output_format if path else fmt
        planned.append(step)
        fmt = step.pass_cls.output_format or fmt  # "": the pass keeps its input's format
    return planned


@dataclass
class StepReport:
    """What one step did: time, notes, its own metrics, size after and fidelity to its input."""

    name: str
    config: dict[str, Any]
    seconds: float
    format: str
    size_bytes: int
    inserted: bool = False
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    fidelity: Fidelity | None = None
    #: Taken from the result cache instead of being run (``seconds`` is then the original run's).
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["fidelity"] = self.fidelity.to_dict() if self.fidelity else None
        data["seconds"] = round(self.seconds, 3)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        fields = dict(data)
        fields["fidelity"] = Fidelity(**data["fidelity"]) if data.get("fidelity") else None
        return cls(**fields)


@dataclass
class PipelineResult:
    input: Artifact
    output: Artifact
    steps: list[StepReport]
    #: Each step's output artifact, in order (the last is ``output``).
    outputs: list[Artifact] = field(default_factory=list)
    #: Each step's result-cache key, in order (empty without a cache).
    keys: list[str] = field(default_factory=list)

    @property
    def last_input(self) -> Artifact:
        """What the last step received: the previous step's output, or the input."""
        return self.outputs[-2] if len(self.outputs) > 1 else self.input


def reference_batches(
    artifact: Artifact, dataset: Dataset | None, shapes: dict[str, tuple[int, ...]]
) -> list[dict[str, np.ndarray]]:
    """Inputs every verification runs: the dataset's first samples, or generated ones."""
    if dataset is not None and artifact.inputs:
        sample = dataset.matched_to(artifact.inputs).take(VERIFY_SAMPLES)
        return list(sample.batches(VERIFY_BATCH))
    return [make_inputs(artifact.inputs, batch=2, shapes=shapes)]


def _rename_for(artifact: Artifact, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Feeds keyed by ``artifact``'s input names (a conversion may rename a single input, or drop inputs its
    output does not use, as exporters do)."""
    names = [s.name for s in artifact.inputs]
    if len(names) == 1 and batches and names[0] not in batches[0] and len(batches[0]) == 1:
        return [{names[0]: next(iter(b.values()))} for b in batches]
    if names and batches and set(names) <= set(batches[0]) and set(batches[0]) - set(names):
        return [{n: b[n] for n in names} for b in batches]
    return batches


def outputs_on(artifact: Artifact, batches: list[dict[str, np.ndarray]], run: RunOptions) -> list[np.ndarray]:
    session = open_session(artifact, run)
    try:
        return run_batches(session, _rename_for(artifact, batches))
    finally:
        session.close()


def verify(
    name: str,
    before: Artifact,
    after: Artifact,
    batches: list[dict[str, np.ndarray]],
    run: RunOptions,
    labelled: bool,
) -> Fidelity:
    """Run both artifacts on the same inputs and measure the output's fidelity to the input."""
    reference = outputs_on(before, batches, run)
    try:
        produced = outputs_on(after, batches, run)
    except CompressorError as exc:
        raise PassError(name, f"its output does not run: {exc.message}") from exc
    try:
        first_output = before.outputs[0].name if before.outputs else ""
        return fidelity(reference, produced, looks_like_classifier(first_output, labelled))
    except ValueError as exc:
        raise PassError(name, f"its output does not match the input model's outputs: {exc}") from exc


@dataclass
class StepCache:
    """Where a pipeline looks up and stores its pass results, and the key of its source model."""

    cache: ResultCache
    source_key: str

    def key(self, previous: str, step: Step, dataset: Dataset | None, options: LoaderOptions) -> str:
        return make_key(
            input=previous,
            pass_name=step.name,
            config=step.config.model_dump(mode="json"),
            config_version=step.pass_cls.Config.config_version,
            data=dataset_hash(dataset),
            options=options.model_dump(mode="json"),
            versions=library_versions(step.pass_cls.libraries),
        )


def run_pipeline(
    artifact: Artifact,
    steps: list[Step],
    workroot: Path,
    dataset: Dataset | None = None,
    options: LoaderOptions | None = None,
    run: RunOptions | None = None,
    log: Callable[[str], None] = lambda message: None,
    progress: ProgressFactory = no_progress,
    cache: StepCache | None = None,
) -> PipelineResult:
    """Run ``steps`` (already planned) from ``artifact``; each step writes to its own folder in ``workroot``.

    With a cache, a step whose key is stored is taken from it (already verified when it was stored), and
    every newly run step is stored.
    """
    options = options or LoaderOptions()
    run = run or RunOptions()
    current = artifact
    key = cache.source_key if cache else ""
    reports = []
    produced = []
    keys = []
    for index, step in enumerate(steps, start=1):
        if cache is not None:
            key = cache.key(key, step, dataset, options)
            keys.append(key)
            entry = cache.cache.get(key)
            if entry is not None:
                log(f"[{index}/{len(steps)}] {step.name} (from cache)")
                reports.append(replace(StepReport.from_dict(entry.report), cached=True))
                current = entry.artifact
                produced.append(current)
                continue
        workdir = workroot / f"{index:02d}-{step.name}"
        workdir.mkdir(parents=True)
        set_activity(f"running pass '{step.name}' (step {index} of {len(steps)})")
        log(f"[{index}/{len(steps)}] {step.name}" + (" (inserted conversion)" if step.inserted else ""))
        try:
            result, report = _run_and_verify(step, current, workdir, dataset, options, run, log, progress)
        except PassError as exc:  # a full disk often shows only as a tool failing on its own truncated file
            raise (full_disk_error(workdir) or exc) from exc
        reports.append(report)
        current = result.artifact
        if cache is not None:
            current = cache.cache.put(key, result.artifact, workdir, report.to_dict()).artifact
        produced.append(current)
    return PipelineResult(artifact, current, reports, produced, keys)


def _run_and_verify(
    step: Step,
    current: Artifact,
    workdir: Path,
    dataset: Dataset | None,
    options: LoaderOptions,
    run: RunOptions,
    log: Callable[[str], None],
    progress: ProgressFactory,
) -> tuple[PassResult, StepReport]:
    matched = dataset.matched_to(current.inputs) if dataset is not None and current.inputs else dataset
    ctx = PassContext(workdir, matched, options, run.device, log, progress)
    started = time.perf_counter()
    result = _run_step(step, current, ctx)
    seconds = time.perf_counter() - started
    set_activity(f"verifying the output of pass '{step.name}'")
    batches = reference_batches(current, dataset, options.shapes)
    labelled = dataset is not None and dataset.labels is not None
    measured = verify(step.name, current, result.artifact, batches, run, labelled)
    notes = list(result.notes)
    if measured.cosine_mean < LOW_FIDELITY:
        notes.append(
            f"outputs moved: cosine {measured.cosine_mean:.4f} to the input model; check accuracy before using it"
        )
    report = StepReport(
        name=step.name,
        config=step.config.model_dump(mode="json"),
        seconds=seconds,
        format=result.artifact.format,
        size_bytes=total_size(result.artifact.path),
        inserted=step.inserted,
        notes=notes,
        metrics=result.metrics,
        fidelity=measured,
    )
    return result, report


def _run_step(step: Step, artifact: Artifact, ctx: PassContext) -> PassResult:
    try:
        result = step.pass_cls().run(artifact, step.config, ctx)
    except CompressorError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        # Disk full, read-only...: the output's problem, not the pass's.
        written = write_error(exc, ctx.workdir) if isinstance(exc, OSError) else None
        if written is not None:
            raise written from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PassError(step.name, f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from exc
    if not result.artifact.path.exists():
        raise PassError(step.name, f"it reported an output at {result.artifact.path} but wrote nothing there")
    return result
