"""PT2E static INT8 with Intel Neural Compressor, shared by ``quantize.inc.static`` and ``quantize.inc.autotune``.

The steps and the traps each one guards (INC 3.10, torch 2.13):

1. ``neural_compressor.torch.export.export(model, example_inputs=(x[:2],), dynamic_shapes=...)``: a plain
   ``nn.Module`` cannot be prepared, it must be exported first; without ``dynamic_shapes`` calibrating with another
   batch size fails on a guard, and a batch-1 example specializes the batch away, so the example has batch 2 and
   axis 0 of every input is a ``Dim``. INC only *logs* why an export failed; we keep its log and say it.
2. ``prepare(exported, StaticQuantConfig(...))`` inserts observers.
3. Calibration runs the dataset through them. ``convert`` after no forward pass silently produces garbage scales
   (only a warning), so we refuse to convert unless at least one batch ran and every observer saw data.
   Batches of one sample are merged into the previous batch (the exported batch is >= 2).
4. ``convert`` gives a GraphModule with quantize/dequantize ops; its fidelity to the float model is checked.
5. The GraphModule is exported with torch's dynamo ONNX exporter (dynamic batch) and the constant weight
   quantization is folded into INT8 initializers (:mod:`compressor_inc.onnx_qdq`), then ONNX Runtime runs it beside
   the PT2E model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from compressor_torch import models

from compressor.artifacts import Artifact, TensorSpec
from compressor.data import Dataset
from compressor.errors import PassError
from compressor.measure.quality import Fidelity, fidelity
from compressor_inc import inc

#: The ONNX file a PT2E pass writes.
OUTPUT_NAME = "model.onnx"
#: ONNX Runtime must reproduce the PT2E model this closely (cosine, mean over samples): integer rounding may move
#: single activations by one step, nothing more.
EXPORT_COSINE = 0.999
#: Models whose float weights stay under this many bytes are exported as one file.
SINGLE_FILE_LIMIT = 1_800_000_000
HINT_NOT_EXPORTABLE = (
    "PT2E quantization needs a model torch.export can trace (no Python control flow on tensor values, no "
    "unsupported ops); otherwise quantize the ONNX export with quantize.static (ONNX Runtime), whose exporter has a "
    "TorchScript fallback, or use quantize.inc.weight_only"
)


@dataclass
class Prepared:
    """The float model, its exported graph and the data to calibrate and check with."""

    module: Any
    graph: Any
    specs: list[TensorSpec]
    out_names: list[str]
    example: tuple[Any, ...]
    batches: list[tuple[Any, ...]]
    #: Float outputs of ``module`` on each batch (first output), for the fidelity checks.
    reference: list[np.ndarray]
    samples: int


def load(
    pass_name: str, artifact: Artifact, dataset: Dataset, samples: int, batch: int, shapes: dict[str, Any]
) -> Prepared:
    """Load the float module, cut the calibration batches and export the model for PT2E."""
    import torch

    loaded = models.module_of(artifact, pass_name, "PT2E quantization")
    module = loaded.module.eval()
    specs = models.concrete_specs(artifact, dataset)
    chosen = dataset.matched_to(specs).take(samples)
    if len(chosen) == 0:
        raise PassError(pass_name, f"dataset {dataset.source} has no samples to calibrate on")
    batches = calibration_batches(chosen, specs, batch)
    example = tuple(models.to_tensors(specs, models.example_feeds(specs, chosen, shapes, batch=models.EXAMPLE_BATCH)))
    with torch.inference_mode():
        reference = [models.flatten_outputs(module(*b))[0].float().numpy() for b in batches]
        probe = models.flatten_outputs(module(*example))
    outs = artifact.outputs if len(artifact.outputs) == len(probe) else models.output_specs(probe)
    graph = export(pass_name, module, example)
    return Prepared(module, graph, specs, [o.name for o in outs], example, batches, reference, len(chosen))


def calibration_batches(dataset: Dataset, specs: list[TensorSpec], batch: int) -> list[tuple[Any, ...]]:
    """Tensors of ``batch`` samples; a trailing single sample joins the batch before it (or is doubled)."""
    feeds = list(dataset.batches(batch))
    if len(feeds) > 1 and len(next(iter(feeds[-1].values()))) == 1:
        last = feeds.pop()
        feeds[-1] = {k: np.concatenate([feeds[-1][k], last[k]]) for k in feeds[-1]}
    if len(feeds) == 1 and len(next(iter(feeds[0].values()))) == 1:
        feeds[0] = {k: np.concatenate([v, v]) for k, v in feeds[0].items()}
    return [tuple(models.to_tensors(specs, f)) for f in feeds]


def export(pass_name: str, module: Any, example: tuple[Any, ...]) -> Any:
    """``neural_compressor.torch.export.export`` with a dynamic batch; a clear PassError when it cannot."""
    import torch

    with inc.captured() as logs:
        from neural_compressor.torch.export import export as inc_export

        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} for _ in example)
        try:
            graph = inc_export(module, example_inputs=example, dynamic_shapes=dynamic)
        except Exception as exc:
            logged = [m for m in logs.errors() if m.strip()]
            reason = logged[-1].removeprefix("Failed to export the model: ") if logged else inc.deepest_reason(exc)
            reason = _first_sentence(" ".join(reason.split()))
            raise PassError(
                pass_name,
                f"Neural Compressor cannot export the model for PT2E quantization (torch.export): {reason}",
                hint=HINT_NOT_EXPORTABLE,
            ) from exc
    return graph


def _first_sentence(text: str, limit: int = 240) -> str:
    """torch's export errors run to several sentences of advice; the first says what failed."""
    end = text.find(". ")
    text = text[: end + 1] if 0 < end < limit else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def static_config(
    act_algo: str = "minmax",
    act_sym: bool = False,
    act_dtype: str = "uint8",
    w_granularity: str = "per_channel",
    skip_op_types: tuple[str, ...] = (),
) -> Any:
    """INC's ``StaticQuantConfig``; ``skip_op_types`` (e.g. Linear, Conv2d) stay in float."""
    import torch

    with inc.captured():
        from neural_compressor.torch.quantization import StaticQuantConfig

        config = StaticQuantConfig(
            act_algo=act_algo, act_sym=act_sym, act_dtype=act_dtype, w_granularity=w_granularity, w_sym=True
        )
        for op_type in skip_op_types:
            # a class, not its name: INC reads a string as a module *name* and silently matches nothing
            config.set_local(getattr(torch.nn, op_type), StaticQuantConfig(w_dtype="fp32", act_dtype="fp32"))
    return config


def observer_report(prepared: Any) -> tuple[int, list[str]]:
    """(observers, names of those that saw no data): an observer that saw nothing has infinite or empty ranges."""
    import torch

    total, blind = 0, []
    for name, sub in prepared.named_modules():
        low, high = getattr(sub, "min_val", None), getattr(sub, "max_val", None)
        if not isinstance(low, torch.Tensor) or not isinstance(high, torch.Tensor):
            continue
        total += 1
        if low.numel() == 0 or high.numel() == 0 or not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            blind.append(name)
    return total, blind


def calibrate(pass_name: str, prepared: Any, batches: list[tuple[Any, ...]]) -> int:
    """Run the batches through the observers; refuse to go on when nothing was observed."""
    import torch

    ran = 0
    with torch.no_grad():
        for batch in batches:
            prepared(*batch)
            ran += 1
    total, blind = observer_report(prepared)
    if ran == 0 or (total and blind):
        what = "no calibration batch ran" if ran == 0 else f"{len(blind)} of {total} observers saw no data"
        raise PassError(
            pass_name,
            f"refusing to convert: {what} ({', '.join(blind[:4])}{' ...' if len(blind) > 4 else ''}); "
            "Neural Compressor would silently produce a model with meaningless scales",
            hint="give a dataset with samples for every input of the model",
        )
    return ran


def quantize(pass_name: str, data: Prepared, config: Any) -> Any:
    """prepare, calibrate (guarded), convert: the PT2E-quantized GraphModule."""
    with inc.captured():
        from neural_compressor.torch.quantization import convert, prepare

        graph = copy_exported(data.graph)
        prepared = prepare(graph, config)
        calibrate(pass_name, prepared, data.batches)
        quantized = convert(prepared)
    if not any("quantize_per" in str(node.target) for node in quantized.graph.nodes):
        raise PassError(pass_name, "nothing was quantized: no op of the model was annotated for INT8 (all skipped?)")
    return quantized


def copy_exported(graph: Any) -> Any:
    """A deep copy keeping the attributes INC's export set (``prepare`` works in place)."""
    import copy

    fresh = copy.deepcopy(graph)
    for key in ("_exported", "dynamic_shapes"):
        setattr(fresh, key, getattr(graph, key, None))
    return fresh


def outputs_of(module: Any, batches: list[tuple[Any, ...]]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [models.flatten_outputs(module(*b))[0].float().numpy() for b in batches]


def fidelity_to(reference: list[np.ndarray], produced: list[np.ndarray], classifier: bool) -> Fidelity:
    return fidelity([np.concatenate(reference)], [np.concatenate(produced)], classifier)


def check_fidelity(pass_name: str, measured: Fidelity, minimum: float, what: str) -> None:
    if measured.cosine_mean < minimum:
        raise PassError(
            pass_name,
            f"{what} is too far from the float model: cosine {measured.cosine_mean:.4f} < min_cosine {minimum:g} "
            f"on {measured.samples} calibration samples"
            + (f" (top-1 agreement {measured.top1_agreement:.4f})" if measured.top1_agreement is not None else ""),
            hint="try act_algo: kl, leave sensitive op types in float (skip_op_types), or quantize.inc.autotune",
        )


def to_onnx(pass_name: str, quantized: Any, data: Prepared, output: Path, opset: int | None) -> dict[str, Any]:
    """Export the PT2E GraphModule to ONNX (dynamic batch), fold the weights to INT8, check it in ONNX Runtime."""
    import onnx
    import torch

    from compressor.onnx_io import write_model
    from compressor_inc.onnx_qdq import fold_weight_quantization

    options: dict[str, Any] = {"input_names": [s.name for s in data.specs], "output_names": data.out_names}
    if opset is not None:
        options["opset_version"] = opset
    raw = output.parent / "pt2e-raw.onnx"
    batch = torch.export.Dim("batch")
    weights = sum(int(t.numel() * t.element_size()) for t in data.module.state_dict().values())
    large = weights > SINGLE_FILE_LIMIT  # protobuf's limit is 2 GiB: larger exports need external data
    try:  # no eval(): the graph was captured in eval mode (dropout and batch norm are already inference ops)
        with inc.captured(), models.quiet():
            torch.onnx.export(
                quantized,
                data.example,
                str(raw),
                dynamo=True,
                external_data=large,
                verbose=False,
                dynamic_shapes=tuple({0: batch} for _ in data.example),
                **options,
            )
    except Exception as exc:
        raise PassError(
            pass_name,
            f"the PT2E-quantized model cannot be exported to ONNX: {inc.deepest_reason(exc)}",
            hint="report the op named above; quantize.static (ONNX Runtime) quantizes the float export instead",
        ) from exc
    model = onnx.load(str(raw))
    for leftover in output.parent.glob("pt2e-raw.onnx*"):
        leftover.unlink()
    for node in model.graph.node:
        del node.metadata_props[:]
    folded = fold_weight_quantization(model)
    write_model(model, output)
    check = check_onnx(pass_name, output, quantized, data)
    return {"folded_weights": folded, **check}


def check_onnx(pass_name: str, output: Path, quantized: Any, data: Prepared) -> dict[str, Any]:
    """ONNX Runtime beside the PT2E model on the calibration batches, and at batch 1."""
    import onnxruntime as ort

    from compressor.builtin.ort_runner import session_options
    from compressor.measure.runner import RunOptions

    session = ort.InferenceSession(str(output), session_options(RunOptions()), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    produced = []
    try:
        for batch in data.batches:
            feeds = {name: t.numpy() for name, t in zip(names, batch, strict=False)}
            produced.append(session.run(None, feeds)[0])
        single = session.run(None, {name: t[:1].numpy() for name, t in zip(names, data.batches[0], strict=False)})
    except Exception as exc:
        raise PassError(pass_name, f"the ONNX export fails in ONNX Runtime: {inc.first_line(exc)}") from exc
    if single[0].shape[0] != 1:
        raise PassError(pass_name, f"the ONNX export gives batch {single[0].shape[0]} for one sample")
    measured = fidelity_to(outputs_of(quantized, data.batches), produced, classifier=False)
    if measured.cosine_mean < EXPORT_COSINE:
        raise PassError(
            pass_name,
            f"the ONNX export does not reproduce the PT2E model: cosine {measured.cosine_mean:.5f} "
            f"(max |diff| {measured.max_abs_diff:.4g}) on {measured.samples} samples",
        )
    return {"export_cosine": measured.cosine_mean, "export_max_abs_diff": measured.max_abs_diff}


def onnx_artifact(artifact: Artifact, output: Path, record: Any) -> Artifact:
    """The pass's output: the ONNX file, described by the ONNX loader, with the input's lineage."""
    from compressor.builtin.onnx_loader import load_onnx

    described = load_onnx(output)
    return artifact.derive(
        output.resolve(),
        record,
        fmt="onnx",
        inputs=described.inputs,
        outputs=described.outputs,
        extra={**described.extra, "quantizer": f"neural-compressor {inc.version()} PT2E"},
    )


def op_summary(path: Path) -> str:
    from compressor.builtin.ort_tools import op_counts

    counts = op_counts(path)
    shown = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()) if op in ("QuantizeLinear", "DequantizeLinear"))
    return f"{sum(counts.values())} nodes; {shown or 'no Q/DQ nodes'}"
