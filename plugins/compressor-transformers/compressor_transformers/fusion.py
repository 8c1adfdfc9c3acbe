"""``graph.transformer_fusion``: ONNX Runtime's transformer optimizer, kept only when it measurably helps.

The optimizer (``onnxruntime.transformers.optimizer``) fuses attention, embeddings + LayerNorm, Gelu and
skip-LayerNorm subgraphs into ONNX Runtime's contrib ops (``Attention``, ``EmbedLayerNormalization``, ...);
dynamic quantization then turns ``Attention`` into ``QAttention``. Whether that is faster depends on the
model, the export and the CPU (on MiniLM here the fused model is slower), so the pass times the model
before and after on the reference inputs and returns its input unchanged, with a note, unless the fused
one is faster by ``min_gain``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact
from compressor.builtin.ort_tools import OUTPUT_NAME, is_large, quiet_logging, scratch_folder, stage_input
from compressor.errors import UsageError
from compressor.measure.inputs import make_inputs
from compressor.measure.latency import LatencyPlan, measure_latency
from compressor.measure.runner import RunOptions, open_session
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_transformers.folder import model_facts

#: Reference samples timed before and after fusion.
TIMING_SAMPLES = 8
#: Sequence length of generated token inputs when the model's is symbolic and there is no dataset.
GENERATED_SEQUENCE = 128


class FusionConfig(PassConfig):
    #: ONNX Runtime optimizer model type (bert, gpt2, bart, t5, vit, ...); None: the folder's model_type when
    #: the optimizer knows it, else bert.
    model_type: str | None = None
    #: Attention heads and hidden size; 0: from the model's config (artifact.extra), else detected from the graph.
    num_heads: int = Field(0, ge=0)
    hidden_size: int = Field(0, ge=0)
    #: "measured": keep the fused model only if it is faster by min_gain; "always": keep it whenever it fused.
    keep: Literal["measured", "always"] = "measured"
    #: Relative latency gain the fused model must show to be kept (0.03: 3% faster).
    min_gain: float = Field(0.03, ge=-1.0, lt=1.0)
    #: Seconds of timed runs per model.
    timing_seconds: float = Field(1.0, gt=0)


class TransformerFusion(Pass):
    name = "graph.transformer_fusion"
    summary = "ONNX Runtime transformer fusion (Attention, LayerNorm, Gelu); kept only if measured faster"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = FusionConfig

    def run(self, artifact: Artifact, config: FusionConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        facts = model_facts(artifact)
        model_type = _model_type(config, facts)
        fused_path = ctx.workdir / OUTPUT_NAME
        with scratch_folder(ctx.workdir) as scratch, quiet_logging():
            from onnxruntime.transformers.optimizer import optimize_model

            optimized = optimize_model(
                str(stage_input(artifact, scratch)),
                model_type=model_type,
                num_heads=config.num_heads or int(facts.get("num_heads", 0)),
                hidden_size=config.hidden_size or int(facts.get("hidden_size", 0)),
                opt_level=0,
            )
            fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
            if fused:
                optimized.save_model_to_file(str(fused_path), use_external_data_format=is_large(artifact))
        listed = ", ".join(f"{n} {op}" for op, n in sorted(fused.items()))
        if not fused:
            notes = [f"nothing to fuse ({model_type} patterns): model left unchanged"]
            return PassResult(artifact.derive(artifact.path, self.record(config, notes)), notes, {"kept": False})
        candidate = artifact.derive(fused_path, self.record(config))
        before_ms, after_ms = _time_both(artifact, candidate, ctx, config)
        gain = 1.0 - after_ms / before_ms
        metrics = {"fused": fused, "latency_before_ms": before_ms, "latency_after_ms": after_ms, "kept": False}
        timing = f"p50 {before_ms:.3f} -> {after_ms:.3f} ms ({-gain:+.1%})"
        if config.keep == "always" or gain >= config.min_gain:
            metrics["kept"] = True
            why = (
                "kept (keep: always)" if config.keep == "always" else f"kept: faster by at least {config.min_gain:.0%}"
            )
            notes = [f"fused {listed}; {timing}; {why}"]
            return PassResult(artifact.derive(fused_path, self.record(config, notes)), notes, metrics)
        fused_path.unlink()
        for leftover in ctx.workdir.glob(f"{OUTPUT_NAME}*"):
            leftover.unlink()
        notes = [f"fused {listed}, but {timing}, not {config.min_gain:.0%} faster: model left unchanged"]
        return PassResult(artifact.derive(artifact.path, self.record(config, notes)), notes, metrics)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{}]


def _model_type(config: FusionConfig, facts: dict[str, Any]) -> str:
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if config.model_type is not None:
        if config.model_type not in MODEL_TYPES:
            raise UsageError(
                f"graph.transformer_fusion: unknown model_type '{config.model_type}'; "
                f"ONNX Runtime's optimizer knows: {', '.join(sorted(MODEL_TYPES))}"
            )
        return config.model_type
    folder_type = str(facts.get("model_type", "")).replace("-", "_")
    return folder_type if folder_type in MODEL_TYPES else "bert"


def _reference_feeds(artifact: Artifact, ctx: PassContext) -> tuple[dict[str, np.ndarray], int]:
    """The dataset's first samples, or generated inputs (token inputs get GENERATED_SEQUENCE tokens)."""
    if ctx.dataset is not None:
        sample = ctx.dataset.matched_to(artifact.inputs).take(TIMING_SAMPLES)
        return dict(sample.inputs), len(sample)
    shapes = dict(ctx.options.shapes)
    for spec in artifact.inputs:
        if spec.name not in shapes and len(spec.shape) == 2 and not isinstance(spec.shape[1], int):
            shapes[spec.name] = (1, GENERATED_SEQUENCE)
    return make_inputs(artifact.inputs, batch=1, shapes=shapes), 1


def _time_both(artifact: Artifact, candidate: Artifact, ctx: PassContext, config: FusionConfig) -> tuple[float, float]:
    """Median latency of the input and the fused model on the same feeds, timed interleaved."""
    feeds, batch = _reference_feeds(artifact, ctx)
    run = RunOptions(device=ctx.device)
    sessions = [open_session(artifact, run), open_session(candidate, run)]
    try:
        calls = [_call(s, feeds) for s in sessions]
        plan = LatencyPlan(warmup_runs=2, min_runs=5, min_seconds=config.timing_seconds)
        before, after = measure_latency(calls, batch, plan)
    finally:
        for session in sessions:
            session.close()
    return before.p50_ms, after.p50_ms


def _call(session: Any, feeds: dict[str, np.ndarray]) -> Any:
    return lambda: session.run(feeds)
