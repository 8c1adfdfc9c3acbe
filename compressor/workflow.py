"""The compress flow shared by commands: check the output, plan, run, verify, publish atomically."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from compressor.artifacts import Artifact, artifact_files, write_sidecar
from compressor.data import Dataset
from compressor.limits import set_activity
from compressor.loaders import LoaderOptions
from compressor.measure.runner import RunOptions
from compressor.outputs import check_output_path, publish, staging_dir
from compressor.passes import ProgressFactory, no_progress
from compressor.pipeline import PipelineResult, Step, plan, run_pipeline

MODEL_FILE_STEM = "model"


@dataclass
class Compressed:
    """A finished pipeline run and the artifact as published at the output path."""

    pipeline: PipelineResult
    output: Artifact


def compress(
    source: Artifact,
    steps: list[Step],
    output: Path,
    dataset: Dataset | None = None,
    options: LoaderOptions | None = None,
    run: RunOptions | None = None,
    log=lambda message: None,  # type: ignore[no-untyped-def]
    progress: ProgressFactory = no_progress,
) -> Compressed:
    """Run ``steps`` on ``source`` and publish the result at ``output`` (all or nothing)."""
    check_output_path(output, [source.path])
    planned = plan(steps, source.format)
    with staging_dir(output) as stage:
        result = run_pipeline(source, planned, stage / "work", dataset, options, run, log, progress)
        published = save_artifact(result.output, output)
    return Compressed(result, published)


def save_artifact(artifact: Artifact, target: Path) -> Artifact:
    """Write ``artifact`` at ``target``: an ONNX file when ``target`` ends in .onnx, else a folder."""
    set_activity(f"writing {target}")
    with staging_dir(target) as stage:
        if artifact.format == "onnx" and target.suffix == ".onnx":
            from compressor.onnx_io import copy_model

            staged = copy_model(artifact.path, stage / target.name, artifact.lineage)
            data_files = artifact_files(staged)[1:]
            if data_files and target.exists():  # never the old model over the new data: the old one goes first
                os.replace(target, stage / f"old-{target.name}")
            for data_file in data_files:
                publish(data_file, target.parent / data_file.name)
            publish(staged, target)
            return replace(artifact, path=target.resolve())
        folder = stage / "artifact"
        folder.mkdir()
        main = _copy_into(artifact, folder)
        saved = replace(artifact, path=main)
        write_sidecar(saved, folder)
        publish(folder, target)
        return replace(artifact, path=target.resolve() / main.relative_to(folder))


def _copy_into(artifact: Artifact, folder: Path) -> Path:
    if artifact.format == "onnx":
        from compressor.onnx_io import copy_model

        return copy_model(artifact.path, folder / f"{MODEL_FILE_STEM}.onnx", artifact.lineage)
    if artifact.path.is_dir():
        shutil.copytree(artifact.path, folder, dirs_exist_ok=True)
        return folder
    destination = folder / f"{MODEL_FILE_STEM}{''.join(artifact.path.suffixes)}"
    shutil.copy2(artifact.path, destination)
    return destination
