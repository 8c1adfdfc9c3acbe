"""INT8 and INT4 quantization of ONNX models with ``onnxruntime.quantization``."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from compressor.artifacts import Artifact, TensorSpec
from compressor.builtin.ort_tools import (
    OUTPUT_NAME,
    is_large,
    onnx_op_types,
    op_counts,
    quiet_logging,
    scratch_folder,
    stage_input,
)
from compressor.data import Dataset
from compressor.errors import PassError
from compressor.passes import Pass, PassConfig, PassContext, PassResult, require_dataset

QUANTIZED_OPS = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulNBits", "QLinearConv", "QLinearMatMul")
#: Ops a quantizer adds, listed in the pass's summary note.
ADDED_OPS = (*QUANTIZED_OPS, "DequantizeLinear")
#: Fewer calibration samples than this get a warning note.
FEW_CALIBRATION_SAMPLES = 32


def _quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def _summarize(before: Counter[str], after: Counter[str]) -> str:
    changed = {op: n for op, n in after.items() if op in ADDED_OPS or op.endswith("Integer")}
    listed = ", ".join(f"{n} {op}" for op, n in sorted(changed.items()))
    return f"{sum(before.values())} -> {sum(after.values())} nodes; added {listed}"


def _ensure_quantized(pass_name: str, after: Counter[str], why: str) -> None:
    if not any(op in after for op in QUANTIZED_OPS):
        raise PassError(pass_name, f"nothing was quantized: {why}")


class DynamicConfig(PassConfig):
    weight_type: Literal["qint8", "quint8"] = "qint8"
    per_channel: bool = True
    reduce_range: bool = False
    #: Op types to quantize; None for ONNX Runtime's default set.
    op_types: list[str] | None = None
    nodes_to_exclude: list[str] = Field(default_factory=list)


class DynamicQuantize(Pass):
    name = "quantize.dynamic"
    summary = "dynamic INT8: weights quantized ahead, activations at run time (default QInt8, per-channel)"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = DynamicConfig
    stage = "quantize"
    libraries = ("onnxruntime",)

    def run(self, artifact: Artifact, config: DynamicConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        from onnx import TensorProto
        from onnxruntime.quantization import quantize_dynamic

        output = ctx.workdir / OUTPUT_NAME
        large = is_large(artifact)
        with scratch_folder(ctx.workdir) as scratch, quiet_logging(), _shape_inference_in_place():
            quantize_dynamic(
                stage_input(artifact, scratch),
                output,
                op_types_to_quantize=config.op_types,
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                weight_type=_quant_type(config.weight_type),
                nodes_to_exclude=config.nodes_to_exclude,
                use_external_data_format=large,
                # Ops from other domains (a transformer optimizer's Attention) defeat ONNX shape inference;
                # their float outputs then need a default type.
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
            )
        after = op_counts(output)
        _ensure_quantized(self.name, after, "no MatMul, Gemm, Conv or Attention node with constant weights")
        notes = [_summarize(op_counts(artifact.path), after)]
        if after.get("ConvInteger"):
            notes.append("ConvInteger is often slower than float Conv on CPU; compare with quantize.static")
        return PassResult(artifact.derive(output, self.record(config, notes)), notes)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{}, {"per_channel": False}]


@contextlib.contextmanager
def _shape_inference_in_place() -> Iterator[None]:
    """Keep ONNX Runtime's dynamic quantizer from holding three copies of a large model's weights.

    After rewriting Gemm as MatMul, ``ONNXQuantizer`` refreshes its shape information with
    ``save_and_reload_model_with_shape_infer``, which deep-copies the model, saves the copy and loads it back
    while the model it was given stays referenced: 3.1x a 2.4 GB model's size at peak. Shape inference needs
    the initializers' shapes, not their values: here it runs on a copy of the graph whose initializers carry
    only names, types and dims, and the inferred shapes are set on the model itself.
    """
    import onnx
    from onnxruntime.quantization import onnx_quantizer

    original = getattr(onnx_quantizer, "save_and_reload_model_with_shape_infer", None)
    if original is None:  # another ONNX Runtime release: leave it as it is
        yield
        return

    def infer_in_place(model: onnx.ModelProto) -> onnx.ModelProto:
        shell = onnx.ModelProto(ir_version=model.ir_version)
        shell.opset_import.extend(model.opset_import)
        shell.functions.extend(model.functions)
        graph = shell.graph
        graph.name = model.graph.name
        graph.node.extend(model.graph.node)
        graph.input.extend(model.graph.input)
        graph.output.extend(model.graph.output)
        graph.sparse_initializer.extend(model.graph.sparse_initializer)
        for tensor in model.graph.initializer:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=list(tensor.dims))
        inferred = onnx.shape_inference.infer_shapes(shell)
        del model.graph.value_info[:]
        model.graph.value_info.extend(inferred.graph.value_info)
        return model

    onnx_quantizer.save_and_reload_model_with_shape_infer = infer_in_place
    try:
        yield
    finally:
        onnx_quantizer.save_and_reload_model_with_shape_infer = original


class StaticConfig(PassConfig):
    per_channel: bool = True
    #: Symmetric activations (signed INT8, zero point 0) as well as symmetric weights.
    symmetric: bool = False
    #: Activation type; default quint8, or qint8 when symmetric.
    activation_type: Literal["qint8", "quint8"] | None = None
    weight_type: Literal["qint8", "quint8"] = "qint8"
    reduce_range: bool = False
    #: qdq / qoperator: ONNX Runtime's formats. tensorrt: QDQ as TensorRT wants it: signed, symmetric INT8,
    #: per-channel weights, Q/DQ only on the inputs of compute ops, optimization-profile bounds recorded.
    format: Literal["qdq", "qoperator", "tensorrt"] = "qdq"
    #: Op types to quantize; None for ONNX Runtime's default set (tensorrt: Conv, ConvTranspose, Gemm, MatMul).
    op_types: list[str] | None = None
    nodes_to_exclude: list[str] = Field(default_factory=list)
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_samples: int = Field(256, ge=1)
    calibration_batch: int = Field(16, ge=1)
    #: Run ORT's pre-processing (shape inference, Conv+BN fusion) first.
    preprocess: bool = True
    #: tensorrt format: the largest batch the recorded optimization profile allows.
    max_batch: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _tensorrt_is_symmetric_per_channel(self) -> StaticConfig:
        if self.format == "tensorrt":
            if not self.per_channel or self.reduce_range:
                raise ValueError("format tensorrt needs per_channel weights and no reduce_range")
            if "quint8" in (self.activation_type, self.weight_type):
                raise ValueError("format tensorrt needs signed INT8 (qint8) activations and weights")
        return self


class _Calibration:
    """ORT CalibrationDataReader over a dataset (ORT calls only ``get_next`` until it returns None)."""

    def __init__(self, dataset: Dataset, batch: int) -> None:
        self._batches = iter(list(dataset.batches(batch)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


class StaticQuantize(Pass):
    name = "quantize.static"
    summary = "static INT8 QDQ: activations calibrated on a dataset (per-channel, optional symmetric)"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = StaticConfig
    requires_dataset = True
    stage = "quantize"
    libraries = ("onnxruntime",)

    def run(self, artifact: Artifact, config: StaticConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        from onnxruntime.quantization import CalibrationMethod, quantize_static

        dataset = require_dataset(self.name, ctx, "static quantization calibrates activation ranges on it")
        samples = dataset.take(config.calibration_samples)
        output = ctx.workdir / OUTPUT_NAME
        notes = []
        with scratch_folder(ctx.workdir) as scratch, quiet_logging():
            source = stage_input(artifact, scratch)
            if config.preprocess:
                source, note = _preprocess(source, scratch, is_large(artifact))
                notes.append(note)
            quantize_static(
                source,
                output,
                _Calibration(samples, config.calibration_batch),
                nodes_to_exclude=config.nodes_to_exclude,
                use_external_data_format=is_large(artifact),
                calibrate_method=getattr(
                    CalibrationMethod,
                    {"minmax": "MinMax"}.get(config.calibration_method, config.calibration_method.capitalize()),
                ),
                **_format_settings(config),
            )
        if config.format == "tensorrt":
            from compressor.onnx_io import TRT_PROFILE_KEY, set_metadata

            profile = tensorrt_profile(artifact.inputs, samples, config.calibration_batch, config.max_batch)
            set_metadata(output, TRT_PROFILE_KEY, json.dumps(profile))
            notes.append(f"TensorRT optimization profile recorded for {sorted(profile) or 'no dynamic inputs'}")
        after = op_counts(output)
        _ensure_quantized(self.name, after, "no op of the quantizable types has constant weights")
        notes.append(_summarize(op_counts(artifact.path), after))
        notes.append(f"calibrated on {len(samples)} samples ({config.calibration_method})")
        if len(samples) < FEW_CALIBRATION_SAMPLES:
            notes.append(f"only {len(samples)} calibration samples: ranges may not represent real data")
        return PassResult(artifact.derive(output, self.record(config, notes)), notes)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        space: list[dict[str, Any]] = [{}, {"calibration_method": "percentile"}]
        if "MatMul" in onnx_op_types(artifact):
            space.append({"op_types": ["MatMul"]})  # transformers: attention and FFN matmuls only
        return space


#: Compute ops TensorRT runs in INT8 when both inputs carry Q/DQ.
TENSORRT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]


def _format_settings(config: StaticConfig) -> dict[str, Any]:
    """quantize_static arguments for the chosen format."""
    from onnxruntime.quantization import QuantFormat

    if config.format == "tensorrt":
        ops = config.op_types or TENSORRT_OPS
        return {
            "quant_format": QuantFormat.QDQ,
            "op_types_to_quantize": ops,
            "per_channel": True,
            "reduce_range": False,
            "activation_type": _quant_type("qint8"),
            "weight_type": _quant_type("qint8"),
            "extra_options": {
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "OpTypesToExcludeOutputQuantization": ops,
                "QuantizeBias": False,  # TensorRT takes float biases; it has no INT32 DequantizeLinear
            },
        }
    activation = config.activation_type or ("qint8" if config.symmetric else "quint8")
    return {
        "quant_format": QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator,
        "op_types_to_quantize": config.op_types,
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "activation_type": _quant_type(activation),
        "weight_type": _quant_type(config.weight_type),
        "extra_options": {"ActivationSymmetric": config.symmetric, "WeightSymmetric": True},
    }


def tensorrt_profile(
    specs: list[TensorSpec], dataset: Dataset, opt_batch: int, max_batch: int
) -> dict[str, dict[str, list[int]]]:
    """min/opt/max shapes for each input with a symbolic dim: the batch from 1 to ``max_batch``, other
    dims as in the calibration data."""
    profile = {}
    for spec in specs:
        if spec.is_static or spec.name not in dataset.inputs:
            continue
        sample_dims = list(dataset.inputs[spec.name].shape[1:])
        profile[spec.name] = {
            "min": [1, *sample_dims],
            "opt": [min(opt_batch, max_batch), *sample_dims],
            "max": [max_batch, *sample_dims],
        }
    return profile


def _preprocess(source: Path, scratch: Path, large: bool) -> tuple[Path, str]:
    """ORT's quant_pre_process, retried without symbolic shape inference; skipped if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = scratch / "preprocessed.onnx"
    reason = ""
    for skip_symbolic in (False, True):
        try:
            quant_pre_process(
                str(source),
                str(target),
                skip_symbolic_shape=skip_symbolic,
                save_as_external_data=large,
                all_tensors_to_one_file=True,
            )
            how = " (without symbolic shape inference)" if skip_symbolic else ""
            return target, f"pre-processed{how}: shapes inferred, Conv+BatchNorm fused"
        except Exception as exc:  # ORT raises bare Exception/AttributeError here; try the next way
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return source, f"pre-processing skipped ({reason})"


class Int4Config(PassConfig):
    block_size: int = 128
    symmetric: bool = True
    #: MatMulNBits compute precision: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8.
    accuracy_level: int | None = Field(None, ge=0, le=4)
    nodes_to_exclude: list[str] = Field(default_factory=list)
    #: Rewrite Gemm (e.g. exported Linear layers) as MatMul first so they are quantized too.
    convert_gemm: bool = True

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value < 16 or value & (value - 1):
            raise ValueError("block_size must be a power of two, at least 16")
        return value


class Int4Quantize(Pass):
    name = "quantize.int4"
    summary = "weight-only INT4 (MatMulNBits) with a block size; activations stay float"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = Int4Config
    stage = "quantize"
    libraries = ("onnxruntime",)

    def run(self, artifact: Artifact, config: Int4Config, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import onnx

        from compressor.onnx_io import read_model, write_model

        model = read_model(artifact.path, load_weights=True)
        before = Counter(node.op_type for node in model.graph.node)
        with scratch_folder(ctx.workdir), quiet_logging():
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
            from onnxruntime.quantization.onnx_model import ONNXModel

            if config.convert_gemm:
                wrapper = ONNXModel(model)
                wrapper.replace_gemm_with_matmul()
                model = wrapper.model
            quantizer = MatMulNBitsQuantizer(
                model,
                block_size=config.block_size,
                is_symmetric=config.symmetric,
                accuracy_level=config.accuracy_level,
                nodes_to_exclude=config.nodes_to_exclude,
            )
            quantizer.process()
            quantized: onnx.ModelProto = quantizer.model.model
        output = write_model(quantized, ctx.workdir / OUTPUT_NAME)
        after = op_counts(output)
        _ensure_quantized(self.name, after, f"no MatMul with a constant weight (block size {config.block_size})")
        notes = [
            _summarize(before, after),
            "activations stay float: expect the size gain, little speed-up on CPU",
        ]
        return PassResult(artifact.derive(output, self.record(config, notes)), notes)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        ops = onnx_op_types(artifact)
        if artifact.format == "onnx" and not ops & {"MatMul", "Gemm"}:
            return []
        return [{}, {"block_size": 32}]
