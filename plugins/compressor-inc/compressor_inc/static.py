"""``quantize.inc.static``: Neural Compressor's PT2E static INT8, calibrated on the dataset, written as ONNX."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from compressor.artifacts import Artifact
from compressor.passes import Pass, PassConfig, PassContext, PassResult, require_dataset
from compressor_inc import pt2e

#: Fewer calibration samples than this get a warning note.
FEW_CALIBRATION_SAMPLES = 32
LIBRARIES = ("neural-compressor-pt", "torchao", "torch", "onnxscript", "onnx")
#: Module types ``skip_op_types`` may name (INC maps them to torch.nn classes).
OP_TYPES = Literal["Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear"]


class IncStaticConfig(PassConfig):
    #: Activation observers: minmax (moving-average min/max) or kl (histogram).
    act_algo: Literal["minmax", "kl"] = "minmax"
    #: Activation type: uint8 (INC's and the x86 quantizer's default) or int8.
    act_dtype: Literal["uint8", "int8"] = "uint8"
    #: Symmetric activations (zero point at the middle of the range).
    act_sym: bool = False
    #: Weights (always symmetric INT8): one scale per output channel, or one per tensor.
    w_granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    #: Module types left in float, e.g. [Linear].
    skip_op_types: list[OP_TYPES] = Field(default_factory=list)
    calibration_samples: int = Field(256, ge=1)
    calibration_batch: int = Field(32, ge=2)
    #: The quantized model must reach this mean cosine to the float model on the calibration samples.
    min_cosine: float = Field(0.9, ge=0, le=1)
    #: ONNX opset of the export; None for the exporter's default.
    opset: int | None = Field(None, ge=13)


class IncStaticQuantize(Pass):
    name = "quantize.inc.static"
    summary = "Neural Compressor PT2E static INT8 (calibrated, dynamic batch) exported to ONNX QDQ with INT8 weights"
    input_formats = ("torch",)
    output_format = "onnx"
    Config = IncStaticConfig
    requires_dataset = True
    libraries = LIBRARIES
    stage = "quantize"

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{}]  # a few seconds per model: INC's defaults only; quantize.inc.autotune searches further

    def run(self, artifact: Artifact, config: IncStaticConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        dataset = require_dataset(self.name, ctx, "static quantization calibrates activation ranges on it")
        data = pt2e.load(
            self.name, artifact, dataset, config.calibration_samples, config.calibration_batch, ctx.options.shapes
        )
        inc_config = pt2e.static_config(
            config.act_algo, config.act_sym, config.act_dtype, config.w_granularity, tuple(config.skip_op_types)
        )
        quantized = pt2e.quantize(self.name, data, inc_config)
        measured = pt2e.fidelity_to(data.reference, pt2e.outputs_of(quantized, data.batches), classifier=True)
        pt2e.check_fidelity(self.name, measured, config.min_cosine, "the PT2E-quantized model")
        output = ctx.workdir / pt2e.OUTPUT_NAME
        exported = pt2e.to_onnx(self.name, quantized, data, output, config.opset)
        notes = [
            f"PT2E static INT8 ({config.act_dtype} {config.act_algo} activations, {config.w_granularity} int8 "
            f"weights) calibrated on {data.samples} samples in {len(data.batches)} batches"
            + (f"; left in float: {', '.join(config.skip_op_types)}" if config.skip_op_types else ""),
            f"PT2E model vs float on the calibration samples: cosine {measured.cosine_mean:.4f}"
            + (f", top-1 agreement {measured.top1_agreement:.4f}" if measured.top1_agreement is not None else ""),
            f"exported to ONNX with a dynamic batch; {exported['folded_weights']} weights stored as INT8 "
            f"({pt2e.op_summary(output)}); ONNX Runtime matches the PT2E model (cosine "
            f"{exported['export_cosine']:.5f})",
        ]
        if data.samples < FEW_CALIBRATION_SAMPLES:
            notes.append(f"only {data.samples} calibration samples: ranges may not represent real data")
        metrics = {
            "calibration_samples": data.samples,
            "calibration_batches": len(data.batches),
            "pt2e_cosine": measured.cosine_mean,
            "pt2e_top1_agreement": measured.top1_agreement,
            **exported,
        }
        return PassResult(pt2e.onnx_artifact(artifact, output, self.record(config, notes)), notes, metrics)
