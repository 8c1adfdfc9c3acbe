"""``convert.tensorflow.onnx``: SavedModels and Keras models to ONNX with tf2onnx, checked against TensorFlow.

The model's serving function (see :func:`compressor_tensorflow.models.serve`) is converted with
``tf2onnx.convert.from_function``. That is also the path for Keras 3: ``tf2onnx.convert.from_keras`` fails
on Keras 3 models (``KeyError: 'keras_tensor_N'``), and converting the function is what converting the
SavedModel ``model.export()`` writes amounts to, without writing one. tf2onnx 1.17 supports opsets up to 18.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact
from compressor.errors import CompressorError, PassError
from compressor.measure.inputs import make_inputs
from compressor.measure.quality import within_tolerance
from compressor.measure.runner import RunOptions, open_session
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_tensorflow.models import FORMATS, first_line, serve

TF2ONNX_MAX_OPSET = 18
OUTPUT_NAME = "model.onnx"
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")


class TensorFlowOnnxConfig(PassConfig):
    #: ONNX opset (tf2onnx 1.17 supports up to 18).
    opset: int = Field(17, ge=9, le=TF2ONNX_MAX_OPSET)
    #: Largest allowed |difference| to TensorFlow's outputs, plus ``rtol * |tensorflow|``.
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, ge=0)
    #: Samples the ONNX model is checked on (from the dataset, else generated).
    check_samples: int = Field(64, ge=1)


@contextlib.contextmanager
def _quiet_tf2onnx() -> Iterator[None]:
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class TensorFlowToOnnx(Pass):
    name = "convert.tensorflow.onnx"
    summary = "TensorFlow SavedModel / Keras to ONNX (tf2onnx), checked against TensorFlow"
    input_formats = FORMATS
    output_format = "onnx"
    Config = TensorFlowOnnxConfig
    conversion = True

    def run(self, artifact: Artifact, config: TensorFlowOnnxConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        served = serve(artifact)
        try:
            import tf2onnx
        except ImportError as exc:
            raise PassError(self.name, "tf2onnx is not installed", hint="pip install tf2onnx") from exc
        tool = f"tf2onnx {importlib.metadata.version('tf2onnx')}"
        try:
            with _quiet_tf2onnx():
                proto, _ = tf2onnx.convert.from_function(
                    served.function, input_signature=served.input_specs, opset=config.opset
                )
        except Exception as exc:
            raise PassError(self.name, f"{tool} could not convert it: {type(exc).__name__}: {first_line(exc)}") from exc
        _check_ops(self.name, proto, tool)
        _order_outputs(self.name, proto, served.output_names)
        from compressor.builtin.onnx_loader import load_onnx
        from compressor.onnx_io import write_model

        out = write_model(proto, ctx.workdir / OUTPUT_NAME)
        try:
            converted = load_onnx(out)
        except CompressorError as exc:
            raise PassError(self.name, f"the converted model is not valid ONNX: {exc.message}") from exc
        feeds = _check_feeds(artifact, ctx, config.check_samples)
        metrics = check_outputs(self.name, artifact, converted, feeds, config.atol, config.rtol)
        how = "the serving signature" if artifact.format == "tensorflow" else "the Keras model's call"
        notes = [
            f"converted {how} with {tool} (opset {config.opset})",
            f"checked against TensorFlow on {metrics['check_samples']} samples: every output within "
            f"{config.atol:g} + {config.rtol:g} x |tf| (max |diff| {metrics['max_abs_diff']:.2g})",
        ]
        extra = {**{k: v for k, v in artifact.extra.items() if k in ("model", "signature")}, **converted.extra}
        result = artifact.derive(
            out,
            self.record(config, notes),
            fmt="onnx",
            inputs=converted.inputs,
            outputs=converted.outputs,
            extra=extra,
        )
        return PassResult(result, notes, {**metrics, "converter": tool})


def _check_ops(pass_name: str, proto: Any, tool: str) -> None:
    """tf2onnx leaves ops it cannot convert in the graph as they are: name them instead of failing later."""
    import onnx

    opsets = {entry.domain: entry.version for entry in proto.opset_import}
    unknown = sorted(
        {
            node.op_type
            for node in proto.graph.node
            if node.domain not in KNOWN_DOMAINS
            or (
                node.domain in ("", "ai.onnx", "ai.onnx.ml")
                and not onnx.defs.has(
                    node.op_type, max_inclusive_version=opsets.get(node.domain, 1), domain=node.domain
                )
            )
        }
    )
    if unknown:
        raise PassError(pass_name, f"{tool} has no ONNX conversion for TensorFlow ops: {', '.join(unknown)}")


def _order_outputs(pass_name: str, proto: Any, names: list[str]) -> None:
    """Put the ONNX outputs in the TensorFlow model's order (by name)."""
    by_name = {value.name: value for value in proto.graph.output}
    if set(by_name) != set(names):
        raise PassError(pass_name, f"the ONNX outputs {sorted(by_name)} do not match TensorFlow's {names}")
    ordered = [by_name[name] for name in names]
    copies = [type(value)() for value in ordered]
    for copy, value in zip(copies, ordered, strict=True):
        copy.CopyFrom(value)
    del proto.graph.output[:]
    proto.graph.output.extend(copies)


def _check_feeds(artifact: Artifact, ctx: PassContext, samples: int) -> dict[str, np.ndarray]:
    if ctx.dataset is not None:
        return {name: array[:samples] for name, array in ctx.dataset.matched_to(artifact.inputs).inputs.items()}
    return make_inputs(artifact.inputs, batch=samples, shapes=ctx.options.shapes)


def check_outputs(
    pass_name: str,
    artifact: Artifact,
    converted: Artifact,
    feeds: dict[str, np.ndarray],
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """Run TensorFlow and ONNX Runtime on ``feeds``; every output must agree within tolerance."""
    results = []
    for model in (artifact, converted):
        session = open_session(model, RunOptions(device="cpu"))
        try:
            names = [s.name for s in session.inputs]
            renamed = dict(zip(names, feeds.values(), strict=True)) if len(names) == len(feeds) else feeds
            results.append(session.run(renamed))
        finally:
            session.close()
    expected, produced = results
    worst = 0.0
    for spec, ref, got in zip(artifact.outputs, expected, produced, strict=True):
        ref, got = np.asarray(ref), np.asarray(got)
        if ref.shape != got.shape:
            raise PassError(
                pass_name, f"output '{spec.name}' has shape {list(got.shape)} in ONNX, {list(ref.shape)} in TensorFlow"
            )
        close, diff = within_tolerance(ref, got, atol, rtol)
        worst = max(worst, diff)
        if not close:
            raise PassError(
                pass_name,
                f"ONNX output '{spec.name}' differs from TensorFlow's by up to {diff:.3g} "
                f"(tolerance {atol:g} + {rtol:g} x |tf|)",
                hint="raise atol in the pass config if this difference is acceptable",
            )
    return {"check_samples": len(next(iter(feeds.values()))), "max_abs_diff": worst}
