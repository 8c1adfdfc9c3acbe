"""Quality: accuracy against labels, and fidelity of a candidate's outputs to a reference's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from compressor.errors import DatasetError


@dataclass(frozen=True)
class Fidelity:
    """How closely a candidate reproduces a reference on the same inputs (primary output)."""

    samples: int
    cosine_mean: float
    cosine_min: float
    max_abs_diff: float
    mean_abs_diff: float
    #: Share of samples whose arg-max agrees, for classifier-shaped outputs; else None.
    top1_agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_sample(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(-1, 1)


def _cosines(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    dot = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    same = np.all(np.isclose(ref, cand), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / norms, 0.0)
    return np.where(same, 1.0, cos)


CLASSIFIER_OUTPUT_WORDS = ("logit", "prob", "class", "score", "label", "pred")


def looks_like_classifier(output_name: str, has_labels: bool) -> bool:
    """Whether arg-max agreement means something for this output (labelled data, or a telling name)."""
    return has_labels or any(word in output_name.lower() for word in CLASSIFIER_OUTPUT_WORDS)


def primary_output(outputs: list[np.ndarray]) -> int:
    """The output fidelity compares: the first floating-point one (a classifier's probabilities rather than
    the integer labels converters put first), else the first."""
    for index, output in enumerate(outputs):
        if np.asarray(output).dtype.kind == "f":
            return index
    return 0


def fidelity(reference: list[np.ndarray], candidate: list[np.ndarray], classifier: bool = True) -> Fidelity:
    """Compare the primary outputs (see :func:`primary_output`) sample by sample: cosine, absolute
    differences and, for classifier outputs, arg-max agreement."""
    if not reference or not candidate:
        raise ValueError("no outputs to compare")
    index = primary_output(reference)
    if index >= len(candidate):
        raise ValueError(f"the reference's output {index} has no counterpart: the candidate has {len(candidate)}")
    ref, cand = np.asarray(reference[index]), np.asarray(candidate[index])
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {list(ref.shape)}, candidate {list(cand.shape)}")
    if ref.ndim == 0:
        ref, cand = ref.reshape(1), cand.reshape(1)
    ref2, cand2 = _per_sample(ref), _per_sample(cand)
    top1 = None
    if classifier and ref.ndim == 2 and ref.shape[1] > 1 and ref.dtype.kind == "f":
        top1 = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    if not np.isfinite(cand2).all():
        return Fidelity(len(ref2), 0.0, 0.0, float("inf"), float("inf"), top1)
    cos = _cosines(ref2, cand2)
    diff = np.abs(ref2 - cand2)
    return Fidelity(
        samples=len(ref2),
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        top1_agreement=top1,
    )


class Metric:
    """A named quality score over model outputs and labels. Registered through ``register_metrics``."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    def __call__(self, outputs: list[np.ndarray], labels: np.ndarray) -> float:
        raise NotImplementedError


def within_tolerance(reference: Any, candidate: Any, atol: float, rtol: float) -> tuple[bool, float]:
    """Whether ``|candidate - reference| <= atol + rtol * |reference|`` everywhere (NaN matching NaN), and the
    largest ``|candidate - reference|`` (0 for empty arrays): how conversions check their outputs."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    diff = np.abs(got - ref)
    worst = float(diff.max()) if diff.size else 0.0
    return bool(np.isclose(got, ref, atol=atol, rtol=rtol, equal_nan=True).all()), worst


def predicted_classes(output: np.ndarray) -> np.ndarray:
    """Class predictions from a classifier output: labels as they are, scores/logits by arg-max."""
    output = np.asarray(output)
    if output.ndim == 1:
        return output if output.dtype.kind in "iub" else (output > (0.5 if output.min() >= 0 else 0.0)).astype(int)
    if output.ndim == 2 and output.shape[1] == 1:
        return predicted_classes(output[:, 0])
    if output.ndim == 2:
        return output.argmax(axis=1)
    raise DatasetError(f"accuracy needs a classifier output of shape [N] or [N, classes], got {list(output.shape)}")


class Accuracy(Metric):
    name = "accuracy"
    summary = "share of samples whose predicted class (arg-max of the first output) equals the label"

    def __call__(self, outputs: list[np.ndarray], labels: np.ndarray) -> float:
        labels = np.asarray(labels)
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise DatasetError("accuracy needs integer class labels; these labels are continuous values")
        predicted = predicted_classes(outputs[0])
        if len(predicted) != len(labels):
            raise DatasetError(f"{len(labels)} labels for {len(predicted)} predictions")
        return float(np.mean(predicted == labels.reshape(-1).astype(predicted.dtype)))
