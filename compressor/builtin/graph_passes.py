"""Graph-level passes: FP16 conversion (ORT's converter) and graph slimming (onnxslim)."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Literal

from pydantic import Field

from compressor.artifacts import Artifact
from compressor.builtin.ort_tools import OUTPUT_NAME, quiet_logging, scratch_folder
from compressor.errors import PassError
from compressor.passes import Pass, PassConfig, PassContext, PassResult

#: Ops kept in fp32 besides ORT's defaults: their intermediate values overflow or lose range in fp16.
OVERFLOW_PRONE_OPS = (
    "Exp",
    "Pow",
    "Softmax",
    "LogSoftmax",
    "ReduceSum",
    "ReduceMean",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "Sqrt",
    "Reciprocal",
    "Erf",
)


class Fp16Config(PassConfig):
    #: Keep graph inputs and outputs float32 (casts inside), so callers need no change.
    keep_io_types: bool = True
    #: Ops to keep in fp32; None for ORT's default list plus the overflow-prone ops above.
    op_block_list: list[str] | None = None
    #: Node names to keep in fp32.
    node_block_list: list[str] = Field(default_factory=list)


class Fp16Convert(Pass):
    name = "convert.fp16"
    summary = "float16 weights and compute; inputs/outputs and overflow-prone ops stay fp32"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = Fp16Config
    stage = "quantize"
    libraries = ("onnxruntime",)

    def run(self, artifact: Artifact, config: Fp16Config, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import onnx

        from compressor.onnx_io import read_model, write_model

        model = read_model(artifact.path, load_weights=True)
        with scratch_folder(ctx.workdir), quiet_logging():
            from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

            blocked = config.op_block_list
            if blocked is None:
                blocked = sorted({*DEFAULT_OP_BLOCK_LIST, *OVERFLOW_PRONE_OPS})
            converted = convert_float_to_float16(
                model,
                keep_io_types=config.keep_io_types,
                op_block_list=blocked,
                node_block_list=config.node_block_list,
            )
            from onnxruntime.transformers.onnx_model import OnnxModel

            OnnxModel(converted).topological_sort()  # the converter appends input casts after their users
        halved = sum(1 for init in converted.graph.initializer if init.data_type == onnx.TensorProto.FLOAT16)
        if not halved:
            raise PassError(self.name, "nothing to convert: the model has no float32 weights outside blocked ops")
        output = write_model(converted, ctx.workdir / OUTPUT_NAME)
        kept = sum(1 for node in converted.graph.node if node.op_type in set(blocked))
        notes = [
            f"{kept} nodes kept in fp32 (overflow-prone or unsupported)",
            "ONNX Runtime's CPU provider runs most fp16 ops as fp32: expect the size gain, speed-up only on GPU",
        ]
        return PassResult(artifact.derive(output, self.record(config, notes)), notes)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, object]]:
        return [{}]


SLIM_OPTIMIZATIONS = (
    "constant_folding",
    "graph_fusion",
    "dead_node_elimination",
    "subexpression_elimination",
    "weight_tying",
)


class SlimConfig(PassConfig):
    shape_inference: bool = True
    #: onnxslim optimizations to skip; by default all of them run.
    skip: list[Literal[SLIM_OPTIMIZATIONS]] = Field(default_factory=list)  # type: ignore[valid-type]


class GraphSlim(Pass):
    name = "graph.slim"
    summary = "graph simplification with onnxslim: constant folding, fusion, dead-node removal"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = SlimConfig
    stage = "graph"
    libraries = ("onnxslim",)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, object]]:
        return [{}]

    def run(self, artifact: Artifact, config: SlimConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        from compressor.onnx_io import read_model, write_model

        model = read_model(artifact.path, load_weights=True)
        before = Counter(node.op_type for node in model.graph.node)
        with scratch_folder(ctx.workdir), quiet_logging():
            import onnxslim

            slimmed = onnxslim.slim(
                copy.deepcopy(model),
                model_check=False,
                no_shape_infer=not config.shape_inference,
                skip_optimizations=list(config.skip) or None,
            )
        if slimmed is None:
            raise PassError(self.name, "onnxslim returned no model")
        output = write_model(slimmed, ctx.workdir / OUTPUT_NAME)
        after = Counter(node.op_type for node in slimmed.graph.node)
        notes = [f"{sum(before.values())} -> {sum(after.values())} nodes"]
        return PassResult(
            artifact.derive(output, self.record(config, notes)),
            notes,
            {"nodes_before": sum(before.values()), "nodes_after": sum(after.values())},
        )
