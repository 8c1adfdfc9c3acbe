"""Reading SavedModels and Keras files, and the one serving function the runner and the converter share.

Both formats are served through a ``tf.function`` with a fixed input signature (no retracing per batch
size) that returns a dict of named outputs: a SavedModel's signature outputs, or ``output_0``, ``output_1``
... for a Keras model (the names ``model.export()`` gives them). TensorFlow is imported here, inside
functions, never when the plugin registers.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import MissingDependencyError, ModelLoadError

FORMAT_SAVED_MODEL = "tensorflow"
FORMAT_KERAS = "keras"
FORMATS = (FORMAT_SAVED_MODEL, FORMAT_KERAS)
SERVING = "serving_default"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_started_threads: int | None = None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: What TensorFlow's C++ side prints on import whatever TF_CPP_MIN_LOG_LEVEL says (absl logs before it is set up).
_IMPORT_NOISE = re.compile(r"absl::InitializeLog\(\) is called|oneDNN custom operations are on")


def _import_quietly() -> Any:
    """``import tensorflow`` with its C++ start-up notices dropped from stderr (anything else is kept)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line for line in capture.read().decode(errors="replace").splitlines() if not _IMPORT_NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
    return tf


def import_tensorflow() -> Any:
    """Import TensorFlow quietly, fixing its thread pools once (they cannot change after it starts)."""
    global _started_threads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        tf = _import_quietly()
    except ImportError as exc:
        raise MissingDependencyError(
            "TensorFlow models need the 'tensorflow' package, which is not installed",
            hint="pip install compressor-tensorflow (it brings tensorflow-cpu, keras and tf2onnx)",
        ) from exc
    if _started_threads is None:
        from compressor.measure.runner import default_threads

        _started_threads = default_threads()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(_started_threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow was started by someone else first
            _started_threads = tf.config.threading.get_intra_op_parallelism_threads() or _started_threads
    return tf


def set_threads(threads: int) -> int:
    """Ask for ``threads`` intra-op threads; returns the count TensorFlow actually uses."""
    global _started_threads
    tf = import_tensorflow()
    if threads and threads != _started_threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            _started_threads = threads
        except RuntimeError:
            pass  # fixed once TensorFlow has run anything: reported in the backend string
    return _started_threads or threads


def import_keras() -> Any:
    import_tensorflow()
    import keras

    return keras


def _spec(name: str, tf_spec: Any) -> TensorSpec:
    dims = tf_spec.shape.as_list() if tf_spec.shape.rank is not None else []
    return TensorSpec(name, tuple(dims), tf_spec.dtype.name)


# ------------------------------------------------------------------------------------------ SavedModel


def load_saved_model(path: Path) -> Any:
    tf = import_tensorflow()
    try:
        return tf.saved_model.load(str(path))
    except Exception as exc:  # OSError, NotFoundError, DecodeError, ValueError ...
        raise ModelLoadError(f"{path} is not a loadable SavedModel: {type(exc).__name__}: {first_line(exc)}") from exc


def pick_signature(loaded: Any, path: Path) -> str:
    """``serving_default``, else the only signature; a SavedModel without one cannot be served."""
    names = sorted(loaded.signatures.keys())
    if SERVING in names:
        return SERVING
    if len(names) == 1:
        return names[0]
    if not names:
        raise ModelLoadError(
            f"{path.name} is a SavedModel without a serving signature (it has no signatures)",
            hint="export it with a signature: model.export(path) for Keras, or "
            "tf.saved_model.save(obj, path, signatures=obj.my_function.get_concrete_function(...))",
        )
    raise ModelLoadError(
        f"{path.name} is a SavedModel with several signatures and no '{SERVING}': {', '.join(names)}",
        hint=f"re-export it with the one to serve named '{SERVING}'",
    )


def saved_model_specs(signature: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    args, kwargs = signature.structured_input_signature
    if args:
        raise ModelLoadError("the serving signature takes positional inputs; signatures take named ones")
    inputs = [_spec(name, spec) for name, spec in sorted(kwargs.items())]
    outputs_struct = signature.structured_outputs
    if not isinstance(outputs_struct, dict):
        raise ModelLoadError("the serving signature does not return a dict of named outputs")
    outputs = [_spec(name, spec) for name, spec in sorted(outputs_struct.items())]
    return inputs, outputs


# ------------------------------------------------------------------------------------------------ Keras


def load_keras(path: Path, trust: bool) -> Any:
    """Load a .keras file; ``safe_mode`` (no Lambda bytecode) unless the user trusts the file."""
    keras = import_keras()
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as exc:
        text = first_line(exc)
        if "safe_mode" in str(exc):
            raise ModelLoadError(
                f"{path.name} holds a Lambda layer whose Python code Keras will not load in safe mode",
                hint="loading it runs that code: pass --trust-pickle only if you trust the file",
            ) from exc
        raise ModelLoadError(f"{path.name} is not a loadable Keras model: {type(exc).__name__}: {text}") from exc


def keras_output_name(index: int) -> str:
    return f"output_{index}"


def keras_specs(model: Any, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ModelLoadError(f"{path.name}: the model has no defined inputs (was it built?)") from exc
    if not inputs or not outputs:
        raise ModelLoadError(f"{path.name}: the model has no defined inputs or outputs (was it built?)")
    names = [_input_name(t.name, i) for i, t in enumerate(inputs)]
    return (
        [TensorSpec(n, tuple(t.shape), str(t.dtype)) for n, t in zip(names, inputs, strict=True)],
        [TensorSpec(keras_output_name(i), tuple(t.shape), str(t.dtype)) for i, t in enumerate(outputs)],
    )


def _input_name(name: str, index: int) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name.split(":")[0])
    return name or f"input_{index}"


# --------------------------------------------------------------------------------------------- serving


@dataclass
class Served:
    """A model ready to run: ``function(*tensors) -> {name: tensor}`` with its TensorSpecs."""

    function: Any
    input_specs: list[Any]
    input_names: list[str]
    output_names: list[str]
    params: int | None
    keepalive: Any = None


def serve(artifact: Artifact) -> Served:
    """The serving ``tf.function`` of a SavedModel or Keras artifact (fixed signature, dict outputs)."""
    tf = import_tensorflow()
    names = [s.name for s in artifact.inputs]
    if artifact.format == FORMAT_SAVED_MODEL:
        loaded = load_saved_model(artifact.path)
        signature = loaded.signatures[artifact.extra.get("signature") or pick_signature(loaded, artifact.path)]
        given = signature.structured_input_signature[1]
        specs = [tf.TensorSpec(given[n].shape, given[n].dtype, name=n) for n in names]

        @tf.function(input_signature=specs)
        def call_signature(*args: Any) -> Any:
            return signature(**dict(zip(names, args, strict=True)))

        variables = getattr(loaded, "variables", None) or []
        params = sum(int(v.shape.num_elements() or 0) for v in variables) if variables else None
        return Served(call_signature, specs, names, [s.name for s in artifact.outputs], params, loaded)
    model = load_keras(artifact.path, bool(artifact.extra.get("trusted")))
    specs = [tf.TensorSpec(t.shape, t.dtype, name=n) for n, t in zip(names, model.inputs, strict=True)]
    outputs = [s.name for s in artifact.outputs]

    @tf.function(input_signature=specs)
    def call_keras(*args: Any) -> Any:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        results = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(outputs, results, strict=True))

    return Served(call_keras, specs, names, outputs, int(model.count_params()), model)
