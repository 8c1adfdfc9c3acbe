"""``convert.sklearn.onnx``: scikit-learn (skl2onnx), XGBoost and LightGBM (onnxmltools) models to ONNX.

The ONNX model is checked against the native one before the pass returns: on the dataset's first samples
(or generated inputs) every label must be equal and every probability (or regression value) within
``atol + rtol * |native|``. Traps handled here: ``zipmap=False`` (plain tensors, not a list of dicts),
onnxmltools' opset cap of 15, and its Booster ``label`` output declared ``[1]`` (made symbolic, or
ONNX Runtime warns on every batch larger than one).
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import PassError
from compressor.measure.inputs import make_inputs
from compressor.measure.quality import within_tolerance
from compressor.measure.runner import RunOptions, open_session
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_sklearn.native import (
    BATCH,
    FORMAT_LIGHTGBM,
    FORMAT_XGBOOST,
    FORMATS,
    NativeModel,
    first_line,
    open_native,
    require,
)

#: onnxmltools refuses newer opsets for XGBoost and LightGBM boosters.
ONNXMLTOOLS_MAX_OPSET = 15
#: The ai.onnx.ml opset skl2onnx targets (5 is refused by the tree converters).
ML_OPSET = 3
OUTPUT_NAME = "model.onnx"


class SklearnOnnxConfig(PassConfig):
    #: Main-domain opset for skl2onnx (onnxmltools boosters are capped at 15).
    opset: int = Field(17, ge=9, le=21)
    #: Largest allowed |probability or value difference| to the native model, plus ``rtol * |native|``.
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-4, ge=0)
    #: Samples the ONNX model is checked on (from the dataset, else generated).
    check_samples: int = Field(256, ge=1)


class SklearnToOnnx(Pass):
    name = "convert.sklearn.onnx"
    summary = "scikit-learn / XGBoost / LightGBM to ONNX (skl2onnx, onnxmltools), checked against the native model"
    input_formats = FORMATS
    output_format = "onnx"
    Config = SklearnOnnxConfig
    conversion = True

    def run(self, artifact: Artifact, config: SklearnOnnxConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        spec = artifact.inputs[0]
        features = _features(self.name, spec, ctx)
        model = open_native(artifact)
        proto, tool, notes = _convert(self.name, model, artifact.format, spec, features, config)
        _symbolic_batch(proto)
        from compressor.builtin.onnx_loader import load_onnx
        from compressor.onnx_io import write_model

        out = write_model(proto, ctx.workdir / OUTPUT_NAME)
        converted = load_onnx(out)
        x = _check_inputs(spec, features, ctx, config.check_samples)
        metrics = check_outputs(self.name, model, converted, x, config.atol, config.rtol)
        notes.append(_check_note(model, metrics, config))
        extra = {k: artifact.extra[k] for k in ("model", "task", "classes") if k in artifact.extra}
        extra.update(converted.extra)
        record = self.record(config, notes)
        result = artifact.derive(
            out, record, fmt="onnx", inputs=converted.inputs, outputs=converted.outputs, extra=extra
        )
        return PassResult(result, notes, {**metrics, "converter": tool})


def _features(pass_name: str, spec: TensorSpec, ctx: PassContext) -> int:
    """Feature count: from the model, else ``--shape``, else the dataset's arrays."""
    if len(spec.shape) == 2 and isinstance(spec.shape[1], int):
        return spec.shape[1]
    if ctx.dataset is not None:
        array = ctx.dataset.inputs.get(spec.name, next(iter(ctx.dataset.inputs.values())))
        if array.ndim == 2:
            return int(array.shape[1])
    raise PassError(
        pass_name,
        "the model does not record how many features it takes",
        hint=f"give them: --shape {spec.name}=1xFEATURES, or --data FILE.npz",
    )


def _tensor_type(pass_name: str, dtype: str, features: int, boosters: bool) -> Any:
    """The converter's input type: onnxmltools (boosters) and skl2onnx each check for their own classes."""
    if boosters:
        from onnxmltools.convert.common.data_types import FloatTensorType

        if dtype != "float32":
            raise PassError(pass_name, f"cannot convert a booster with {dtype} input (supported: float32)")
        return FloatTensorType([None, features])
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType

    types = {"float32": FloatTensorType, "float64": DoubleTensorType, "int64": Int64TensorType}
    if dtype not in types:
        raise PassError(pass_name, f"cannot convert a model with {dtype} input (supported: {', '.join(types)})")
    return types[dtype]([None, features])


def _convert(
    pass_name: str, model: NativeModel, fmt: str, spec: TensorSpec, features: int, config: SklearnOnnxConfig
) -> tuple[Any, str, list[str]]:
    notes: list[str] = []
    if fmt in (FORMAT_XGBOOST, FORMAT_LIGHTGBM):
        onnxmltools = require("onnxmltools", "converting XGBoost and LightGBM models")
        initial = [(spec.name, _tensor_type(pass_name, spec.dtype, features, boosters=True))]
        opset = min(config.opset, ONNXMLTOOLS_MAX_OPSET)
        if opset != config.opset:
            notes.append(f"onnxmltools supports opset {ONNXMLTOOLS_MAX_OPSET} at most: converted with {opset}")
        tool = f"onnxmltools {_version('onnxmltools')}"
        try:
            if fmt == FORMAT_XGBOOST:
                proto = onnxmltools.convert_xgboost(model.obj, initial_types=initial, target_opset=opset)
            else:
                proto = onnxmltools.convert_lightgbm(model.obj, initial_types=initial, target_opset=opset, zipmap=False)
        except Exception as exc:
            raise PassError(pass_name, _conversion_error(exc, model, tool)) from exc
        notes.insert(0, f"converted {model.description} with {tool}")
        if model.facts.get("objective") == "multi:softmax" and _softmax_scores(proto):
            notes.append("multi:softmax: onnxmltools leaves raw margins in 'probabilities'; softmax applied")
        return proto, tool, notes
    require("skl2onnx", "converting scikit-learn models")
    from skl2onnx import convert_sklearn

    tool = f"skl2onnx {_version('skl2onnx')}"
    _register_booster_wrappers(model.obj)
    initial = [(spec.name, _tensor_type(pass_name, spec.dtype, features, boosters=False))]
    options = {id(c): {"zipmap": False} for c in _final_classifiers(model.obj)}
    try:
        proto = convert_sklearn(
            model.obj, initial_types=initial, target_opset={"": config.opset, "ai.onnx.ml": ML_OPSET}, options=options
        )
    except Exception as exc:
        raise PassError(pass_name, _conversion_error(exc, model, tool), hint=_UNSUPPORTED_HINT) from exc
    notes.insert(0, f"converted {model.description} with {tool} (opset {config.opset}, ai.onnx.ml {ML_OPSET})")
    return proto, tool, notes


def _softmax_scores(proto: Any) -> bool:
    """Turn the tree ensemble's raw scores into probabilities (onnxmltools sets no post-transform for
    XGBoost's multi:softmax, whose native model predicts labels only)."""
    changed = False
    for node in proto.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            for attr in node.attribute:
                if attr.name == "post_transform" and attr.s == b"NONE":
                    attr.s = b"SOFTMAX"
                    changed = True
    return changed


_UNSUPPORTED_HINT = (
    "see https://onnx.ai/sklearn-onnx/supported.html; replace that step, or register a converter with "
    "skl2onnx.update_registered_converter"
)
_CLASS_IN_MESSAGE = re.compile(r"<class '([\w.]+)'>")


def _conversion_error(exc: Exception, model: NativeModel, tool: str) -> str:
    """Name the estimator the converter lacks, or say what failed."""
    text = str(exc)
    missing = _CLASS_IN_MESSAGE.search(text)
    if missing and ("shape calculator" in text or "converter" in text.lower()):
        full = missing.group(1)
        return f"{tool} has no converter for {full.rsplit('.', 1)[-1]} ({full}) in {model.description}"
    return f"{tool} could not convert {model.description}: {type(exc).__name__}: {first_line(exc)}"


def _final_classifiers(est: Any) -> list[Any]:
    """Estimators whose classifier output the converter would wrap in a ZipMap."""
    from sklearn.base import is_classifier

    steps = getattr(est, "steps", None)
    if isinstance(steps, list):
        return _final_classifiers(steps[-1][1])
    return [est] if is_classifier(est) else []


def _walk(est: Any) -> list[Any]:
    found = [est]
    for _, step in getattr(est, "steps", None) or []:
        found.extend(_walk(step))
    return found


def _register_booster_wrappers(est: Any) -> None:
    """Let skl2onnx convert XGBoost and LightGBM scikit-learn wrappers inside pipelines (onnxmltools' converters)."""
    modules = {type(step).__module__.split(".")[0] for step in _walk(est)}
    if not modules & {"xgboost", "lightgbm"}:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if "xgboost" in modules:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost,
            options=classifier_options,
        )  # fmt: skip
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    if "lightgbm" in modules:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes, convert_lightgbm,
            options=classifier_options,
        )  # fmt: skip
        update_registered_converter(
            LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm
        )


def _symbolic_batch(proto: Any) -> None:
    """Make the first dim of every input and output the symbolic batch (onnxmltools declares ``label`` as [1])."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = BATCH


def _check_inputs(spec: TensorSpec, features: int, ctx: PassContext, samples: int) -> np.ndarray:
    if ctx.dataset is not None:
        array = ctx.dataset.inputs.get(spec.name, next(iter(ctx.dataset.inputs.values())))
        return np.asarray(array[:samples], dtype=spec.dtype)
    concrete = TensorSpec(spec.name, (BATCH, features), spec.dtype)
    return make_inputs([concrete], batch=samples)[spec.name]


def check_outputs(
    pass_name: str,
    model: NativeModel,
    converted: Artifact,
    x: np.ndarray,
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """Run both models on ``x``: labels must be equal, values within tolerance; else the pass fails."""
    expected = model.predict(x)
    session = open_session(converted, RunOptions(device="cpu"))
    try:
        produced = session.run({converted.inputs[0].name: x})
    finally:
        session.close()
    if len(produced) < len(expected):
        raise PassError(pass_name, f"the ONNX model has {len(produced)} outputs, the native model {len(expected)}")
    metrics: dict[str, Any] = {"check_samples": len(x)}
    start = 0
    if model.kind == "classifier":
        native_labels, onnx_labels = np.asarray(expected[0]), np.asarray(produced[0]).reshape(-1)
        differ = np.flatnonzero(native_labels != onnx_labels)
        metrics["label_agreement"] = 1.0 - len(differ) / len(x)
        if len(differ):
            first = int(differ[0])
            raise PassError(
                pass_name,
                f"ONNX labels differ from the native model's on {len(differ)} of {len(x)} samples "
                f"(first: sample {first}, native {native_labels[first]}, ONNX {onnx_labels[first]})",
                hint="a feature value on a split threshold rounds differently in float32; report it with the model",
            )
        start = 1
    worst = 0.0
    specs = model.output_specs()
    for index in range(start, len(expected)):
        ref = np.asarray(expected[index])
        close, diff = within_tolerance(ref, np.asarray(produced[index]).reshape(ref.shape), atol, rtol)
        worst = max(worst, diff)
        if not close:
            raise PassError(
                pass_name,
                f"ONNX output '{specs[index].name}' differs from the native model's by up to {diff:.3g} "
                f"(tolerance {atol:g} + {rtol:g} x |native|) on {len(x)} samples",
                hint="raise atol in the pass config if this difference is acceptable",
            )
    metrics["max_abs_diff"] = worst
    return metrics


def _check_note(model: NativeModel, metrics: dict[str, Any], config: SklearnOnnxConfig) -> str:
    what = "labels equal, probabilities" if model.kind == "classifier" else "values"
    return (
        f"checked against the native model on {metrics['check_samples']} samples: {what} within "
        f"{config.atol:g} (max |diff| {metrics['max_abs_diff']:.2g})"
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"
