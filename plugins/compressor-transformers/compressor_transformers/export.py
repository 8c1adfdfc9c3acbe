"""``convert.hf.onnx``: a Hugging Face folder to ONNX through Optimum, checked against the PyTorch model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact
from compressor.builtin.ort_tools import OUTPUT_NAME, quiet_logging, scratch_folder
from compressor.errors import PassError
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_transformers.folder import (
    FORMAT,
    METADATA_KEY,
    RECORDED_FACTS,
    offline_environment,
    task_from_architecture,
)
from compressor_transformers.masked_softmax import DEFAULT_THRESHOLD, rewrite_masked_softmax
from compressor_transformers.models import first_line, load_tokenizer, load_torch_model

#: Texts of different lengths, padded together, when the pass has no dataset to check the export on.
CHECK_TEXTS = (
    "A short sentence.",
    "Model compression trades a little accuracy for a lot of speed, and measuring proves what it cost.",
    "Quantization maps floating point weights to eight bit integers; pruning removes channels that contribute "
    "little; distillation trains a small student to mimic a large teacher. Each is verified before it ships.",
)
CHECK_SAMPLES = 8
#: Outputs moved to the front of the graph's output list: fidelity compares the first output.
PRIMARY_OUTPUTS = ("sentence_embedding",)


class HfToOnnxConfig(PassConfig):
    #: ONNX opset; None for Optimum's default for the architecture.
    opset: int | None = Field(None, ge=11)
    #: transformers' attention implementation to trace. "eager" exports attention as MatMul/Softmax, which
    #: ORT's transformer optimizer can fuse and the masked-Softmax rewrite recognizes; "sdpa" is Optimum's default.
    attention: Literal["eager", "sdpa"] = "eager"
    #: Apply graph.masked_softmax's exact rewrite (see that pass) to the export.
    masked_softmax: bool = True
    #: Largest difference of any output from PyTorch allowed, relative to the output's largest magnitude
    #: (at least 1): the export fails beyond it.
    atol: float = Field(1e-4, gt=0)


class HfToOnnx(Pass):
    name = "convert.hf.onnx"
    summary = (
        "Hugging Face folder -> ONNX with Optimum (sentence-transformers pooling included), checked against PyTorch"
    )
    input_formats = (FORMAT,)
    output_format = "onnx"
    Config = HfToOnnxConfig
    conversion = True

    def run(self, artifact: Artifact, config: HfToOnnxConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        offline_environment()
        extra = artifact.extra
        task, library = extra["task"], extra["library"]
        supported = _supported_tasks(extra["model_type"], library)
        if task not in supported:
            raise PassError(
                self.name,
                f"Optimum cannot export '{extra['model_type']}' models for {task}; "
                f"it can for: {', '.join(sorted(supported)) or 'no task (unsupported architecture)'}",
            )
        notes = []
        inferred = task_from_architecture(extra.get("architecture"))
        if library == "transformers" and inferred and inferred != task:
            notes.append(
                f"the folder's architecture {extra['architecture']} is a {inferred} model; exported as {task}, "
                "any head it lacks starts untrained"
            )
        model = load_torch_model(artifact.path, task, library, attention=config.attention)
        export_dir = ctx.workdir.resolve() / "optimum"
        with scratch_folder(ctx.workdir), quiet_logging():
            from optimum.exporters.onnx import onnx_export_from_model

            try:
                onnx_export_from_model(
                    model, export_dir, task=task, opset=config.opset, do_validation=False, device="cpu"
                )
            except Exception as exc:  # optimum/torch raise many types when tracing fails
                raise PassError(self.name, f"Optimum's export failed: {first_line(exc)}") from exc
        facts = {k: extra[k] for k in RECORDED_FACTS if k in extra}
        output, rewritten, opset = _finish(export_dir / "model.onnx", ctx.workdir / OUTPUT_NAME, config, facts)
        shutil.rmtree(export_dir, ignore_errors=True)

        from compressor.onnx_io import graph_specs, read_model

        inputs, outputs = graph_specs(read_model(output))
        feeds = _check_feeds(artifact, ctx, [spec.name for spec in inputs])
        diffs = _compare(model, library, output, outputs, feeds, ctx)
        worst = max(diffs.values(), key=lambda d: d[0] / d[1])
        if worst[0] > config.atol * worst[1]:
            name = next(n for n, d in diffs.items() if d == worst)
            raise PassError(
                self.name,
                f"output '{name}' differs from PyTorch by {worst[0]:.3g} (allowed {config.atol * worst[1]:.3g})",
                hint="try attention: sdpa, or another opset",
            )
        import optimum.version

        notes.insert(
            0,
            f"exported {task} ({library.replace('_', '-')}) with Optimum {optimum.version.__version__}, opset {opset}, "
            f"{config.attention} attention; outputs {', '.join(s.name for s in outputs)}",
        )
        notes.append(
            f"outputs match PyTorch on {len(next(iter(feeds.values())))} samples: max abs diff "
            + ", ".join(f"{n} {d[0]:.2g}" for n, d in diffs.items())
        )
        if rewritten:
            notes.append(f"masked Softmax rewritten exactly in {rewritten} attention layers (graph.masked_softmax)")
        record = self.record(config, notes)
        derived = artifact.derive(output, record, fmt="onnx", inputs=inputs, outputs=outputs)
        derived.extra["opset"] = opset
        metrics = {"max_abs_diff": {n: d[0] for n, d in diffs.items()}, "masked_softmax_rewritten": rewritten}
        return PassResult(derived, notes, metrics)


def _supported_tasks(model_type: str, library: str) -> list[str]:
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    from optimum.exporters.tasks import TasksManager

    lookup = "transformer" if library == "sentence_transformers" else model_type.replace("_", "-")
    try:
        return list(TasksManager.get_supported_tasks_for_model_type(lookup, "onnx", library_name=library))
    except KeyError:
        return []


def _finish(exported: Path, target: Path, config: HfToOnnxConfig, facts: dict[str, Any]) -> tuple[Path, int, int]:
    """The primary output first, the optional masked-Softmax rewrite, the folder facts recorded in the model's
    metadata; saved at ``target``."""
    from compressor.onnx_io import read_model, write_model

    model = read_model(exported, load_weights=True)
    outputs = sorted(model.graph.output, key=lambda o: o.name not in PRIMARY_OUTPUTS)
    if [o.name for o in outputs] != [o.name for o in model.graph.output]:
        kept = [type(o)() for o in outputs]
        for copy, original in zip(kept, outputs, strict=True):
            copy.CopyFrom(original)
        del model.graph.output[:]
        model.graph.output.extend(kept)
    rewritten = rewrite_masked_softmax(model, DEFAULT_THRESHOLD)[0] if config.masked_softmax else 0
    kept_props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept_props)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(facts, sort_keys=True))
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return write_model(model, target), rewritten, opset


def _check_feeds(artifact: Artifact, ctx: PassContext, names: list[str]) -> dict[str, np.ndarray]:
    """Inputs to compare PyTorch and ONNX on: the dataset's first samples, or texts of different lengths."""
    if ctx.dataset is not None and all(n in ctx.dataset.inputs for n in names):
        sample = ctx.dataset.take(CHECK_SAMPLES)
        return {n: sample.inputs[n].astype(np.int64) for n in names}
    from compressor_transformers.text_data import tokenize

    encoded = tokenize(load_tokenizer(artifact.extra["tokenizer"]), list(CHECK_TEXTS), None, None)
    return {n: encoded[n] for n in names}


def _compare(
    model: Any, library: str, onnx_path: Path, outputs: list[Any], feeds: dict[str, np.ndarray], ctx: PassContext
) -> dict[str, tuple[float, float]]:
    """Per output: (max abs difference between PyTorch and ONNX Runtime, scale = max(1, max |PyTorch|))."""
    import torch

    from compressor.measure.runner import RunOptions, open_session

    tensors = {n: torch.from_numpy(a) for n, a in feeds.items()}
    with torch.inference_mode():
        produced = model(tensors) if library == "sentence_transformers" else model(**tensors)
    session = open_session(Artifact(onnx_path, "onnx", outputs=outputs), RunOptions(device=ctx.device))
    try:
        onnx_outputs = session.run(feeds)
    finally:
        session.close()
    diffs = {}
    for spec, got in zip(session.outputs, onnx_outputs, strict=True):
        want = produced[spec.name].float().numpy()
        scale = max(1.0, float(np.abs(want).max()))
        diffs[spec.name] = (float(np.abs(want - got).max()), scale)
    return diffs
