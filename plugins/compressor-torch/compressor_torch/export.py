"""``convert.onnx``: torch -> ONNX with the dynamo exporter (legacy fallback), checked against torch."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import PassError
from compressor.measure.quality import within_tolerance
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_torch import models

OUTPUT_NAME = "model.onnx"
#: Models whose weights stay under this many bytes are written as one .onnx file (protobuf's limit is 2 GiB).
SINGLE_FILE_LIMIT = 1_800_000_000
#: Samples the export is checked on (besides the example batch and a batch of one).
CHECK_SAMPLES = 64
CHECK_BATCH = 32


class ExportConfig(PassConfig):
    #: auto: the dynamo exporter (torch.export), then the legacy TorchScript exporter if it fails.
    exporter: Literal["auto", "dynamo", "legacy"] = "auto"
    #: ONNX opset; None for the exporter's default.
    opset: int | None = Field(None, ge=7)
    #: Make the first axis of every input and output symbolic.
    dynamic_batch: bool = True
    #: Keep the exporter's per-node metadata (source stack traces); off keeps files small.
    keep_node_metadata: bool = False
    #: Outputs must match torch within |onnx - torch| <= atol + rtol * |torch|.
    atol: float = Field(1e-4, ge=0)
    rtol: float = Field(1e-3, ge=0)


class ExportFailed(Exception):
    """One exporter's failure, with a one-line reason."""

    def __init__(self, exporter: str, exc: BaseException) -> None:
        self.exporter = exporter
        self.exc = exc
        self.reason = _reason(exc)
        super().__init__(f"{exporter}: {self.reason}")


class ConvertOnnx(Pass):
    name = "convert.onnx"
    summary = "torch -> ONNX: dynamo exporter (legacy fallback), dynamic batch, outputs checked against torch"
    input_formats = ("torch",)
    output_format = "onnx"
    Config = ExportConfig
    conversion = True
    libraries = ("torch", "onnxscript", "onnx")

    def run(self, artifact: Artifact, config: ExportConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch

        loaded = models.open_model(artifact)
        specs = models.concrete_specs(artifact, ctx.dataset)
        fixed = loaded.program is not None and bool(specs) and isinstance(specs[0].shape[0], int)
        if fixed and config.dynamic_batch:  # a program exported with a static batch keeps it
            config = config.model_copy(update={"dynamic_batch": False})
        batch = int(specs[0].shape[0]) if fixed else models.EXAMPLE_BATCH
        feeds = models.example_feeds(specs, ctx.dataset, ctx.options.shapes, batch=batch)
        example = tuple(models.to_tensors(specs, feeds))
        with torch.inference_mode():
            reference = models.flatten_outputs(loaded.module(*example))
        out_specs = artifact.outputs if len(artifact.outputs) == len(reference) else models.output_specs(reference)
        names = ([s.name for s in specs], [s.name for s in out_specs])
        output = ctx.workdir / OUTPUT_NAME
        large = _weight_bytes(loaded.module) > SINGLE_FILE_LIMIT
        attempts = ["dynamo", "legacy"] if config.exporter == "auto" else [config.exporter]
        failures: list[ExportFailed] = []
        used = None
        for exporter in attempts:
            try:
                _export(exporter, loaded, example, output, names, config, large)
                used = exporter
                break
            except ExportFailed as failure:
                failures.append(failure)
                for leftover in ctx.workdir.glob(f"{OUTPUT_NAME}*"):
                    leftover.unlink()
        if used is None:
            raise _export_error(self.name, failures)
        _tidy(output, config.keep_node_metadata, large)
        checked, max_diff = _check(self.name, output, loaded, specs, feeds, ctx, config)

        from compressor.builtin.onnx_loader import load_onnx

        onnx_artifact = load_onnx(output)
        notes = [
            f"exported with the {used} exporter"
            + (f" (the dynamo exporter failed: {failures[0].reason})" if failures else "")
            + f", opset {onnx_artifact.extra.get('opset')}, "
            + ("dynamic batch" if config.dynamic_batch else "static shapes")
            + (", external data" if large else ", single file"),
            f"outputs match torch on {checked} samples (max |diff| {max_diff:.3g}, atol {config.atol:g}, "
            f"rtol {config.rtol:g})",
        ]
        metrics = {
            "exporter": used,
            "fallback_reason": failures[0].reason if failures else None,
            "opset": onnx_artifact.extra.get("opset"),
            "dynamic_batch": config.dynamic_batch,
            "single_file": not large,
            "max_abs_diff": max_diff,
            "checked_samples": checked,
        }
        extra = {**onnx_artifact.extra, "exporter": used}
        derived = artifact.derive(
            output.resolve(),
            self.record(config, notes),
            fmt="onnx",
            inputs=onnx_artifact.inputs,
            outputs=onnx_artifact.outputs,
            extra=extra,
        )
        return PassResult(derived, notes, metrics)


def _weight_bytes(module: Any) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(int(t.numel() * t.element_size()) for t in tensors)


def _export(
    exporter: str,
    loaded: models.Loaded,
    example: tuple[Any, ...],
    output: Path,
    names: tuple[list[str], list[str]],
    config: ExportConfig,
    large: bool,
) -> None:
    import torch

    inputs, outputs = names
    options: dict[str, Any] = {"input_names": inputs, "output_names": outputs}
    if config.opset is not None:
        options["opset_version"] = config.opset
    try:
        with models.quiet(), contextlib.redirect_stdout(sys.stderr):
            if exporter == "dynamo":
                target = loaded.program if loaded.program is not None else loaded.module
                if config.dynamic_batch and loaded.program is None:
                    batch = torch.export.Dim("batch")
                    options["dynamic_shapes"] = tuple({0: batch} for _ in example)
                torch.onnx.export(
                    target, example, str(output), dynamo=True, external_data=large, verbose=False, **options
                )
            else:
                if config.dynamic_batch:
                    options["dynamic_axes"] = {name: {0: "batch"} for name in inputs + outputs}
                with _native_output_silenced():  # it logs the TorchScript graph from C++ (stdout) on failure
                    torch.onnx.export(loaded.module, example, str(output), dynamo=False, verbose=False, **options)
    except Exception as exc:
        raise ExportFailed(exporter, exc) from exc
    if not output.is_file():
        raise ExportFailed(exporter, RuntimeError("the exporter wrote no file"))


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Send file descriptors 1 and 2 (where C++ code writes) to a scratch file while the block runs."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def _tidy(output: Path, keep_metadata: bool, large: bool) -> None:
    """Drop per-node stack traces and write one file when the weights fit in it."""
    import onnx

    model = onnx.load(str(output))
    if not keep_metadata:
        for node in model.graph.node:
            del node.metadata_props[:]
    for data_file in output.parent.glob(f"{output.name}.data"):
        data_file.unlink()
    if large:
        onnx.save_model(model, str(output), save_as_external_data=True, location=f"{output.name}.data")
    else:
        onnx.save_model(model, str(output))


def _check(
    pass_name: str,
    output: Path,
    loaded: models.Loaded,
    specs: list[TensorSpec],
    example: dict[str, np.ndarray],
    ctx: PassContext,
    config: ExportConfig,
) -> tuple[int, float]:
    """Run the export with ONNX Runtime beside torch: the example, one sample, and the data (or generated)."""
    import onnxruntime as ort
    import torch

    from compressor.builtin.ort_runner import session_options
    from compressor.measure.runner import RunOptions

    session = ort.InferenceSession(str(output), session_options(RunOptions()), providers=["CPUExecutionProvider"])
    onnx_inputs = [i.name for i in session.get_inputs()]
    batches = [example, {k: v[:1] for k, v in example.items()}]
    if ctx.dataset is not None:
        batches += list(ctx.dataset.matched_to(specs).take(CHECK_SAMPLES).batches(CHECK_BATCH))
    else:
        batches.append(models.example_feeds(specs, None, ctx.options.shapes, batch=8, seed=1))
    if not config.dynamic_batch:
        batches = [example]
    checked, worst = 0, 0.0
    for feeds in batches:
        with torch.inference_mode():
            expected = [
                t.cpu().numpy() for t in models.flatten_outputs(loaded.module(*models.to_tensors(specs, feeds)))
            ]
        try:
            produced = session.run(
                None, {name: feeds[spec.name] for name, spec in zip(onnx_inputs, specs, strict=False)}
            )
        except Exception as exc:
            batch = len(next(iter(feeds.values())))
            raise PassError(
                pass_name, f"the ONNX export fails in ONNX Runtime at batch {batch}: {models.first_line(exc)}"
            ) from exc
        for index, (want, got) in enumerate(zip(expected, produced, strict=False)):
            if want.shape != got.shape:
                raise PassError(
                    pass_name,
                    f"output {index} of the ONNX export has shape {list(got.shape)}, torch gives {list(want.shape)}",
                )
            close, diff = within_tolerance(want, got, config.atol, config.rtol)
            worst = max(worst, diff)
            if not close:
                raise PassError(
                    pass_name,
                    f"the ONNX export's output {index} differs from torch's: max |diff| {diff:.4g} "
                    f"(atol {config.atol:g}, rtol {config.rtol:g}) on {len(want)} samples",
                    hint="the exporter traced something that depends on the input values (data-dependent control "
                    "flow?); fix the model, or raise atol/rtol if the difference is acceptable",
                )
        checked += len(next(iter(feeds.values())))
    return checked, worst


_OP = re.compile(r"op='([\w.:]+)', overload='(\w+)'")
_NODE = re.compile(r"translating node %(\w+)")
_LEGACY_OP = re.compile(r"(?:operator|namespace) '?([\w:.]+::[\w.]+|aten::\w+|[\w.]+)'?")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _reason(exc: BaseException) -> str:
    """The most specific line of an exporter failure: the deepest cause, its type and first line."""
    chain = _chain(exc)
    for candidate in reversed(chain):
        line = models.first_line(candidate)
        if line and "This is step" not in line:
            return f"{type(candidate).__name__}: {line}"[:300]
    return f"{type(exc).__name__}: {models.first_line(exc)}"[:300]


def _unsupported_op(failures: list[ExportFailed]) -> tuple[str, str | None] | None:
    """(op, node) when an exporter said an op has no ONNX translation."""
    for failure in failures:
        text = "\n".join(models._ANSI.sub("", str(e)) for e in _chain(failure.exc))
        op = _OP.search(text)
        if op:
            node = _NODE.search(text)
            return f"{op.group(1)}.{op.group(2)}", node.group(1) if node else None
        if failure.exporter == "legacy" and ("UnsupportedOperator" in type(failure.exc).__name__ or "operator" in text):
            match = _LEGACY_OP.search(text)
            if match:
                return match.group(1), None
    return None


def _export_error(pass_name: str, failures: list[ExportFailed]) -> PassError:
    tried = "; ".join(f"{f.exporter} exporter: {f.reason}" for f in failures)
    unsupported = _unsupported_op(failures)
    if unsupported:
        op, node = unsupported
        where = f" at node '{node}'" if node else ""
        return PassError(
            pass_name,
            f"op {op}{where} has no ONNX translation ({tried})",
            hint="replace the op with standard torch ops, or register an ONNX translation for it "
            "(torch.onnx.export(..., custom_translation_table=...))",
        )
    return PassError(pass_name, f"no exporter could export the model ({tried})")
