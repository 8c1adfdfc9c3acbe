"""Strongly typed TensorRT engine builds with the ``tensorrt`` package (NVIDIA GPUs only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import MissingDependencyError, PassError
from compressor.outputs import check_output_path, publish, staging_dir

INSTALL_HINT = "engine builds need an NVIDIA GPU and TensorRT: pip install 'compressor-tensorrt[engine]'"


def _tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError("the tensorrt package is not installed", hint=INSTALL_HINT) from exc
    return tensorrt


def build_engine(model: Path, output: Path, profile: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
    """Parse ``model`` into a strongly typed network (its Q/DQ types decide the precisions), add the
    optimization profile, build, and write the serialized engine atomically to ``output``."""
    trt = _tensorrt()
    check_output_path(output, [model])
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # TensorRT raises a plain RuntimeError/TypeError without a usable GPU
        raise MissingDependencyError(f"TensorRT cannot start: {exc}", hint=INSTALL_HINT) from exc
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise PassError("trt-build", f"TensorRT's ONNX parser rejected {model.name}: {errors}")
    config = builder.create_builder_config()
    if profile:
        optimization = builder.create_optimization_profile()
        for name, shapes in profile.items():
            optimization.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
        config.add_optimization_profile(optimization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PassError("trt-build", f"TensorRT could not build an engine for {model.name} (see its log above)")
    with staging_dir(output) as stage:
        staged = stage / output.name
        staged.write_bytes(bytes(serialized))
        publish(staged, output)
    return {
        "model": str(model),
        "engine": str(output),
        "engine_bytes": output.stat().st_size,
        "tensorrt": trt.__version__,
        "profile": profile,
    }
