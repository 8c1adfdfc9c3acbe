"""ONNX Runtime runner: CPU always; CUDA and TensorRT execution providers when installed and usable."""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import MissingDependencyError, ModelLoadError, ModelRunError
from compressor.measure.runner import Runner, RunOptions

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
PROVIDER_HINT = {
    "cuda": "install onnxruntime-gpu and an NVIDIA driver with CUDA, or use --device cpu",
    "tensorrt": "install onnxruntime-gpu with TensorRT libraries and an NVIDIA GPU, or use --device cpu",
}


class OrtSession:
    """An ONNX Runtime inference session behind the runner Session protocol."""

    def __init__(self, name: str, session: Any, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.name = name
        self._session = session
        self.inputs = inputs
        self.outputs = outputs
        self.backend = f"onnxruntime {session.get_providers()[0]}"
        self._names = [o.name for o in outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(self._names, feeds)
        except Exception as exc:  # ORT raises InvalidArgument/Fail/RuntimeException from its C++ core
            raise ModelRunError(f"{self.name} failed on its inputs: {_first_line(exc)}") from exc

    def close(self) -> None:
        self._session = None


def session_options(options: RunOptions) -> Any:
    """ORT session options: threads fixed and recorded, spin-waiting off unless asked."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.resolved_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 4  # failures surface as exceptions with the same message
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if options.allow_spinning else "0")
    return so


def check_provider(device: str) -> list[str]:
    """The provider list for ``device``; a clear error when its provider is not installed."""
    import onnxruntime as ort

    wanted = PROVIDERS[device]
    if wanted[0] not in ort.get_available_providers():
        raise MissingDependencyError(
            f"device '{device}' needs ONNX Runtime's {wanted[0]}, which this installation lacks "
            f"(available: {', '.join(ort.get_available_providers())})",
            hint=PROVIDER_HINT.get(device),
        )
    return wanted


class OrtRunner(Runner):
    name = "onnxruntime"
    summary = "ONNX Runtime: CPU, CUDA and TensorRT execution providers"
    formats = ("onnx",)
    devices = ("cpu", "cuda", "tensorrt")
    libraries = ("onnxruntime",)

    def open(self, artifact: Artifact, options: RunOptions) -> OrtSession:
        import onnxruntime as ort

        providers = check_provider(options.device)
        try:
            session = ort.InferenceSession(str(artifact.path), session_options(options), providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
            raise ModelLoadError(f"onnxruntime cannot load {artifact.path.name}: {_first_line(exc)}") from exc
        if session.get_providers()[0] != providers[0]:
            raise MissingDependencyError(
                f"{providers[0]} is installed but could not be used for {artifact.path.name} "
                f"(ONNX Runtime fell back to {session.get_providers()[0]})",
                hint=PROVIDER_HINT.get(options.device),
            )
        inputs = [_spec(v) for v in session.get_inputs()]
        outputs = [_spec(v) for v in session.get_outputs()]
        return OrtSession(artifact.path.name, session, inputs, outputs)

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        from compressor.builtin.onnx_stats import onnx_stats

        return onnx_stats(artifact.path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _spec(value: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in (value.shape or []))
    return TensorSpec(value.name, shape, _ORT_TYPES.get(value.type, "unknown"))
