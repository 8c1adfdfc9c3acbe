"""Native models: read them back from an artifact, predict the way their ONNX conversion does, describe them.

Every model here takes one float matrix ``input`` [batch, features] and returns what skl2onnx and
onnxmltools produce (``zipmap=False``): classifiers ``label`` [batch] int64 and ``probabilities``
[batch, classes] float32; regressors ``variable`` [batch, targets] float32. Heavy libraries are imported
inside the functions that need them, never at module import.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import MissingDependencyError, ModelLoadError, UsageError

FORMAT_SKLEARN = "sklearn"
FORMAT_XGBOOST = "xgboost"
FORMAT_LIGHTGBM = "lightgbm"
FORMATS = (FORMAT_SKLEARN, FORMAT_XGBOOST, FORMAT_LIGHTGBM)

#: The one input of every model this plugin loads.
INPUT_NAME = "input"
BATCH = "batch"
SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: Which extra of compressor-sklearn installs a library.
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


def passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), unless the user chose.

    The counterpart of the core's ORT rule (spin-waiting off): XGBoost, LightGBM and scikit-learn run on
    OpenMP, whose idle threads otherwise spin and steal the CPU from whatever runs next; on 2 busy cores that
    made XGBoost's batch-1 latency 50 ms instead of 0.4 ms. libgomp reads the variable when it loads, so this
    runs before the first framework import (and is recorded in the runner's backend string).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def require(module: str, purpose: str) -> Any:
    """Import ``module`` or fail with exit code 6 and the install command."""
    passive_openmp()
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module)
        hint = f"pip install 'compressor-sklearn[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}', which is not installed", hint
        ) from exc


def first_line(exc: BaseException) -> str:
    """A library error as one readable line (XGBoost prefixes ``[time] file.cc:line:`` and appends a stack)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)


# --------------------------------------------------------------------------------------------- reading


def untrusted_types(path: Path) -> list[str]:
    """Types in a .skops file that skops does not trust by default (constructing them may run code)."""
    sio = require("skops.io", "reading .skops files")
    try:
        return sorted(sio.get_untrusted_types(file=path))
    except Exception as exc:  # zipfile.BadZipFile, KeyError, json errors: a corrupt or foreign file
        raise ModelLoadError(
            f"{path.name} is not a readable .skops file ({type(exc).__name__}: {first_line(exc)})"
        ) from exc


def read_skops(path: Path, trusted: list[str]) -> Any:
    """Load a .skops file, constructing only skops's default types and ``trusted``."""
    sio = require("skops.io", "reading .skops files")
    try:
        return sio.load(path, trusted=trusted)
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise ModelLoadError(f"{path.name} holds types that were not allowed: {first_line(exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name} is not a readable .skops file ({type(exc).__name__}: {first_line(exc)})"
        ) from exc


def read_pickle(path: Path) -> Any:
    """Unpickle a joblib or pickle file. Runs code from the file: callers check --trust-pickle first."""
    joblib = require("joblib", "reading .joblib/.pkl files")
    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelLoadError(f"{path.name} could not be unpickled ({type(exc).__name__}: {first_line(exc)})") from exc


def read_xgboost(path: Path) -> Any:
    xgb = require("xgboost", "loading XGBoost models")
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        raise ModelLoadError(f"{path.name} is not a valid XGBoost model: {first_line(exc)}") from exc
    return booster


def check_lightgbm_text(path: Path) -> None:
    """Refuse a LightGBM text model that was cut short: LightGBM 4.7 reads past the end of one (a segfault,
    in ``Booster._get_loaded_param``) instead of raising. Every model it writes ends its trees with
    ``end of trees`` and its parameters, when present, with ``end of parameters``."""
    try:
        text = path.read_text(errors="strict")
    except (UnicodeDecodeError, OSError) as exc:
        raise ModelLoadError(f"{path.name} is not a valid LightGBM model: not a text model ({exc})") from exc
    lines = {line.strip() for line in text.splitlines()}
    if "end of trees" not in lines or ("parameters:" in lines and "end of parameters" not in lines):
        raise ModelLoadError(f"{path.name} is not a valid LightGBM model: it is truncated (no 'end of trees')")


def read_lightgbm(path: Path) -> Any:
    lgb = require("lightgbm", "loading LightGBM models")
    check_lightgbm_text(path)
    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise ModelLoadError(f"{path.name} is not a valid LightGBM model: {first_line(exc)}") from exc


def read_native(artifact: Artifact) -> Any:
    """The model object behind ``artifact``, read with the trust its loader recorded."""
    path = artifact.path
    if artifact.format == FORMAT_XGBOOST:
        return read_xgboost(path)
    if artifact.format == FORMAT_LIGHTGBM:
        return read_lightgbm(path)
    if artifact.format != FORMAT_SKLEARN:
        raise ModelLoadError(
            f"{path.name}: format '{artifact.format}' is not a scikit-learn, XGBoost or LightGBM model"
        )
    if path.suffix.lower() in SKOPS_SUFFIXES:
        return read_skops(path, list(artifact.extra.get("trusted_types", [])))
    if not artifact.extra.get("trust_pickle"):
        raise ModelLoadError(f"{path.name} is a pickle; it is only loaded with --trust-pickle")
    return read_pickle(path)


# ------------------------------------------------------------------------------------------ predicting


@dataclass
class NativeModel:
    """A loaded model with the facts the loader, runner and passes need."""

    obj: Any
    kind: str  # "classifier" or "regressor"
    n_features: int | None
    n_classes: int | None = None
    n_targets: int = 1
    description: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def output_specs(self) -> list[TensorSpec]:
        if self.kind == "classifier":
            return [
                TensorSpec("label", (BATCH,), "int64"),
                TensorSpec("probabilities", (BATCH, self.n_classes), "float32"),
            ]
        return [TensorSpec("variable", (BATCH, self.n_targets), "float32")]

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}


def _labels(values: Any) -> np.ndarray:
    """Class labels as int64 (as the ONNX converters emit them); other label types stay as they are."""
    values = np.asarray(values)
    return values.astype(np.int64) if values.dtype.kind in "iub" else values


def _classifier_outputs(proba: np.ndarray, classes: np.ndarray | None = None) -> list[np.ndarray]:
    proba = np.asarray(proba, dtype=np.float32)
    index = proba.argmax(axis=1)
    return [_labels(index if classes is None else np.asarray(classes)[index]), proba]


class XGBoostModel(NativeModel):
    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        objective = self.facts["objective"]
        if objective == "multi:softmax":
            margin = np.asarray(self.obj.inplace_predict(x, predict_type="margin"), dtype=np.float64)
            exp = np.exp(margin - margin.max(axis=1, keepdims=True))
            return _classifier_outputs(exp / exp.sum(axis=1, keepdims=True))
        out = np.asarray(self.obj.inplace_predict(x))
        if self.kind == "classifier":
            if out.ndim == 1:  # binary: probability of class 1
                out = np.stack([1.0 - out, out], axis=1)
            return _classifier_outputs(out)
        return [out.reshape(len(x), -1).astype(np.float32)]

    def stats(self) -> dict[str, Any]:
        model = json.loads(self.obj.save_raw("json"))["learner"]["gradient_booster"]
        booster = model.get("gbtree", model).get("model", {})
        trees = booster.get("trees", [])
        nodes = sum(int(t["tree_param"]["num_nodes"]) for t in trees)
        return {"params": nodes, "trees": len(trees), "rounds": self.obj.num_boosted_rounds()}


class LightGBMModel(NativeModel):
    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        out = np.asarray(self.obj.predict(x, num_threads=self.facts.get("threads", 0)))
        if self.kind == "classifier":
            if out.ndim == 1:
                out = np.stack([1.0 - out, out], axis=1)
            return _classifier_outputs(out)
        return [out.reshape(len(x), -1).astype(np.float32)]

    def stats(self) -> dict[str, Any]:
        dump = self.obj.dump_model()
        nodes = sum(2 * int(t["num_leaves"]) - 1 for t in dump["tree_info"])
        return {"params": nodes, "trees": len(dump["tree_info"]), "rounds": self.obj.current_iteration()}


class SklearnModel(NativeModel):
    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        est = self.obj
        if self.kind == "classifier":
            if not self.facts.get("has_proba"):
                return [_labels(est.predict(x))]
            proba = est.predict_proba(x)
            if self.facts.get("label_from_predict"):  # SVMs: predict() is not the arg-max of Platt probabilities
                return [_labels(est.predict(x)), np.asarray(proba, dtype=np.float32)]
            return _classifier_outputs(proba, est.classes_)
        return [np.asarray(est.predict(x), dtype=np.float32).reshape(len(x), -1)]

    def output_specs(self) -> list[TensorSpec]:
        specs = super().output_specs()
        return specs if self.kind != "classifier" or self.facts.get("has_proba") else specs[:1]

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"params": sklearn_params(self.obj)}
        rounds = boosting_rounds(self.obj)
        if rounds is not None:
            stats["rounds"] = rounds
        return stats


def describe_xgboost(booster: Any) -> XGBoostModel:
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    num_class = int(config["learner_model_param"].get("num_class", "0"))
    num_target = int(config["learner_model_param"].get("num_target", "1"))
    facts = {"objective": objective, "rounds": booster.num_boosted_rounds()}
    if objective.startswith("binary:logistic"):
        return XGBoostModel(booster, "classifier", booster.num_features(), 2, 1, f"XGBoost {objective}", facts)
    if objective in ("multi:softprob", "multi:softmax"):
        return XGBoostModel(booster, "classifier", booster.num_features(), num_class, 1, f"XGBoost {objective}", facts)
    return XGBoostModel(booster, "regressor", booster.num_features(), None, num_target, f"XGBoost {objective}", facts)


def describe_lightgbm(booster: Any) -> LightGBMModel:
    dump = booster.dump_model(num_iteration=1)
    objective = str(dump.get("objective", "")).split()[0] if dump.get("objective") else "unknown"
    num_class = int(dump.get("num_class", 1))
    facts = {"objective": objective, "rounds": booster.current_iteration()}
    n_features = booster.num_feature()
    if objective == "binary":
        return LightGBMModel(booster, "classifier", n_features, 2, 1, f"LightGBM {objective}", facts)
    if objective in ("multiclass", "multiclassova"):
        return LightGBMModel(booster, "classifier", n_features, num_class, 1, f"LightGBM {objective}", facts)
    return LightGBMModel(booster, "regressor", n_features, None, 1, f"LightGBM {objective}", facts)


def estimator_name(est: Any) -> str:
    """``Pipeline(StandardScaler, MLPClassifier)`` or ``GradientBoostingClassifier``."""
    steps = getattr(est, "steps", None)
    if isinstance(steps, list):
        return f"{type(est).__name__}({', '.join(estimator_name(s) for _, s in steps)})"
    return type(est).__name__


def describe_sklearn(est: Any, source: str) -> SklearnModel:
    from sklearn.base import is_classifier, is_regressor

    if not hasattr(est, "predict"):
        raise ModelLoadError(
            f"{source} holds a {type(est).__module__}.{type(est).__qualname__}, not a fitted estimator"
        )
    n_features = getattr(est, "n_features_in_", None)
    name = estimator_name(est)
    if is_classifier(est):
        classes = getattr(est, "classes_", None)
        if classes is None:
            raise ModelLoadError(f"{source}: the {name} has no classes_; is it fitted?")
        final = est.steps[-1][1] if isinstance(getattr(est, "steps", None), list) else est
        facts = {
            "has_proba": _has(est, "predict_proba"),
            "label_from_predict": hasattr(final, "probability"),  # SVC / NuSVC
            "classes": len(classes),
        }
        rounds = boosting_rounds(est)
        if rounds is not None:
            facts["rounds"] = rounds
        return SklearnModel(est, "classifier", n_features, len(classes), 1, name, facts)
    if is_regressor(est):
        targets = getattr(est, "n_outputs_", 1) or 1
        rounds = boosting_rounds(est)
        facts = {} if rounds is None else {"rounds": rounds}
        return SklearnModel(est, "regressor", n_features, None, int(targets), name, facts)
    raise ModelLoadError(f"{source} holds a {name}, which is neither a classifier nor a regressor")


def _has(est: Any, method: str) -> bool:
    try:
        return hasattr(est, method)
    except Exception:  # available_if raises other errors on some estimators
        return False


def describe(obj: Any, fmt: str, source: str) -> NativeModel:
    if fmt == FORMAT_XGBOOST:
        return describe_xgboost(obj)
    if fmt == FORMAT_LIGHTGBM:
        return describe_lightgbm(obj)
    return describe_sklearn(obj, source)


def open_native(artifact: Artifact) -> NativeModel:
    return describe(read_native(artifact), artifact.format, artifact.path.name)


# ------------------------------------------------------------------------------------------ describing


def input_spec(model: NativeModel, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str]) -> TensorSpec:
    """The input spec: features from the model, or from ``--shape input=BxF``; dtype from ``--dtype``."""
    features: int | None = model.n_features
    given = shapes.get(INPUT_NAME)
    if given is not None:
        if len(given) != 2:
            raise UsageError(f"--shape {INPUT_NAME} must be BATCHxFEATURES, got {len(given)} dims")
        if features is not None and given[1] != features:
            raise UsageError(f"--shape {INPUT_NAME} gives {given[1]} features; the model was fitted on {features}")
        features = given[1]
    dtype = dtypes.get(INPUT_NAME, "float32")
    return TensorSpec(INPUT_NAME, (BATCH, features), dtype)


def sklearn_params(est: Any, seen: set[int] | None = None) -> int:
    """Numbers a fitted scikit-learn model stores: float arrays in fitted attributes, and tree nodes."""
    seen = seen if seen is not None else set()
    if id(est) in seen:
        return 0
    seen.add(id(est))
    total = 0
    steps = getattr(est, "steps", None)
    if isinstance(steps, list):
        return sum(sklearn_params(step, seen) for _, step in steps if step not in (None, "passthrough"))
    for name, value in vars(est).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        total += _value_params(value, seen)
    return total


def _value_params(value: Any, seen: set[int]) -> int:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return int(value.size)
        if value.dtype == object:
            return sum(_value_params(v, seen) for v in value.ravel())
        return 0
    if isinstance(value, (list, tuple)):
        return sum(_value_params(v, seen) for v in value)
    if hasattr(value, "node_count") and hasattr(value, "threshold"):  # sklearn.tree._tree.Tree
        return int(value.node_count)
    if hasattr(value, "get_params") and hasattr(value, "fit"):  # a fitted sub-estimator
        return sklearn_params(value, seen)
    return 0


def gradient_boosting_step(est: Any) -> Any | None:
    """The scikit-learn GradientBoosting estimator inside ``est`` (itself or a pipeline's last step)."""
    final = est.steps[-1][1] if isinstance(getattr(est, "steps", None), list) else est
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    return final if isinstance(final, (GradientBoostingClassifier, GradientBoostingRegressor)) else None


def boosting_rounds(est: Any) -> int | None:
    step = gradient_boosting_step(est)
    return None if step is None else int(step.estimators_.shape[0])
