"""``quantize.inc.autotune``: Neural Compressor's accuracy-driven tuning of PT2E static INT8, exported to ONNX.

``neural_compressor.torch.quantization.autotune(model, TuningConfig(config_set, tolerable_loss, max_trials), eval_fn,
run_fn=calibrate)`` evaluates the float model, then quantizes with each configuration in turn and stops at the first
whose score is within ``tolerable_loss`` (relative, INC's definition: ``score >= baseline * (1 - tolerable_loss)``).

The configurations, in order (only those that apply to the model, at most ``max_trials``): INC's defaults;
histogram (KL) activation ranges; symmetric int8 activations; per-tensor weights; then each module type present
(Conv2d, Linear, ...) left in float, most numerous first.

Traps guarded: when ``max_trials`` runs out, INC returns the best model *even if it misses the goal* (and None
when no trial ran); we check the goal ourselves and fail naming the tolerable loss, the baseline and every trial's
score. Each calibration is checked like ``quantize.inc.static``'s (no convert after an unobserved pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact
from compressor.data import Dataset
from compressor.errors import PassError
from compressor.passes import Pass, PassConfig, PassContext, PassResult, require_dataset
from compressor_inc import inc, pt2e
from compressor_inc.static import LIBRARIES

#: Module types tried in float, when the model has them.
FALLBACK_TYPES = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear")


class AutotuneConfig(PassConfig):
    #: accuracy: top-1 against the dataset's class labels; fidelity: mean cosine to the float model's outputs;
    #: auto: accuracy when the evaluation data has class labels, else fidelity.
    metric: Literal["auto", "accuracy", "fidelity"] = "auto"
    #: Relative loss accepted (INC's definition): 0.01 keeps at least 99% of the float model's score.
    tolerable_loss: float = Field(0.01, ge=0, lt=1)
    max_trials: int = Field(6, ge=1)
    #: Data to score each trial on (a dataset reference); default: the pass's dataset (calibration data too).
    eval_data: str | None = None
    #: Samples of the evaluation data scored per trial.
    eval_samples: int = Field(1000, ge=1)
    calibration_samples: int = Field(256, ge=1)
    calibration_batch: int = Field(32, ge=2)
    opset: int | None = Field(None, ge=13)


class IncAutotune(Pass):
    name = "quantize.inc.autotune"
    summary = "Neural Compressor autotune of PT2E static INT8 to a tolerable loss (accuracy or fidelity), to ONNX"
    input_formats = ("torch",)
    output_format = "onnx"
    Config = AutotuneConfig
    requires_dataset = True
    libraries = LIBRARIES
    #: Not searched by `compressor optimize`: it is a search of its own (minutes per model), and the optimizer
    #: already tries quantize.inc.static with INC's defaults.
    stage = None

    def run(self, artifact: Artifact, config: AutotuneConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch

        dataset = require_dataset(self.name, ctx, "it calibrates on it (and scores the trials, without eval_data)")
        data = pt2e.load(
            self.name, artifact, dataset, config.calibration_samples, config.calibration_batch, ctx.options.shapes
        )
        evaluation = _eval_dataset(self.name, config, dataset, artifact, data.specs)
        metric = _metric(self.name, config.metric, evaluation)
        eval_batches = pt2e.calibration_batches(evaluation, data.specs, 64)
        labels = evaluation.labels.astype(np.int64) if metric == "accuracy" and evaluation.labels is not None else None
        float_outputs = pt2e.outputs_of(data.module, eval_batches)
        scores: list[float] = []

        def score(model: Any) -> float:
            produced = np.concatenate(pt2e.outputs_of(model, eval_batches))
            if labels is not None:
                value = float(np.mean(produced.argmax(axis=1) == labels))
            else:
                value = pt2e.fidelity_to(float_outputs, [produced], classifier=False).cosine_mean
            scores.append(value)
            return value

        available = _candidates(data.module)
        candidates = available[: config.max_trials]
        calibrations: list[int] = []

        def calibrate(prepared: Any) -> None:
            calibrations.append(pt2e.calibrate(self.name, prepared, data.batches))

        with inc.captured():
            from neural_compressor.torch.quantization import TuningConfig, autotune

            tuning = TuningConfig(
                config_set=[pt2e.static_config(**c) for _, c in candidates],
                tolerable_loss=config.tolerable_loss,
                max_trials=config.max_trials,
            )
            try:
                with torch.no_grad():
                    best = autotune(pt2e.copy_exported(data.graph), tuning, score, run_fn=calibrate)
            except PassError:
                raise
            except Exception as exc:
                raise PassError(self.name, f"Neural Compressor's autotune failed: {inc.deepest_reason(exc)}") from exc
        baseline, trials = (scores[0], scores[1:]) if scores else (float("nan"), [])
        goal = baseline * (1 - config.tolerable_loss)
        digits = 4 if metric == "accuracy" else 6  # cosines differ in the 5th decimal
        tried = "; ".join(f"{label}: {value:.{digits}f}" for (label, _), value in zip(candidates, trials, strict=False))
        met = [i for i, value in enumerate(trials) if value >= goal]
        if best is None or not met:
            raise PassError(
                self.name,
                f"no configuration kept the {metric} within tolerable_loss {config.tolerable_loss:g} of the float "
                f"model's {baseline:.{digits}f} (needs >= {goal:.{digits}f}); tried {len(trials)} of "
                f"{len(available)} configurations (max_trials {config.max_trials}): {tried or 'none ran'}",
                hint="raise tolerable_loss or max_trials, calibrate on more samples, or keep the float model",
            )
        chosen = met[0]
        output = ctx.workdir / pt2e.OUTPUT_NAME
        exported = pt2e.to_onnx(self.name, best, data, output, config.opset)
        where = "the pass's dataset" if config.eval_data is None else config.eval_data
        notes = [
            f"INC autotune on {metric} ({len(evaluation)} samples of {where}): float {baseline:.{digits}f}, goal >= "
            f"{goal:.{digits}f} (tolerable_loss {config.tolerable_loss:g}); chose trial {chosen + 1} of "
            f"{len(trials)}: {candidates[chosen][0]} ({trials[chosen]:.{digits}f})",
            f"trials: {tried}",
            f"calibrated on {data.samples} samples per trial; exported to ONNX with a dynamic batch, "
            f"{exported['folded_weights']} weights stored as INT8 ({pt2e.op_summary(output)})",
        ]
        if config.eval_data is None:
            notes.append("scored on the calibration data: give eval_data to score on held-out samples")
        metrics = {
            "metric": metric,
            "baseline": baseline,
            "goal": goal,
            "trials": [
                {"config": label, "score": value} for (label, _), value in zip(candidates, trials, strict=False)
            ],
            "chosen": candidates[chosen][0],
            "calibrations": len(calibrations),
            **exported,
        }
        return PassResult(pt2e.onnx_artifact(artifact, output, self.record(config, notes)), notes, metrics)


def _candidates(module: Any) -> list[tuple[str, dict[str, Any]]]:
    """(label, static_config options) in the order INC tries them."""
    found = [
        ("defaults (uint8 minmax activations, per-channel weights)", {}),
        ("kl activations", {"act_algo": "kl"}),
        ("symmetric int8 activations", {"act_dtype": "int8", "act_sym": True}),
        ("per-tensor weights", {"w_granularity": "per_tensor"}),
    ]
    counts: dict[str, int] = {}
    for sub in module.modules():
        kind = type(sub).__name__
        if kind in FALLBACK_TYPES:
            counts[kind] = counts.get(kind, 0) + 1
    for kind in sorted(counts, key=lambda k: -counts[k]):
        found.append((f"{kind} in float", {"skip_op_types": (kind,)}))
    return found


def _eval_dataset(pass_name: str, config: AutotuneConfig, dataset: Dataset, artifact: Artifact, specs: Any) -> Dataset:
    if config.eval_data is None:
        chosen = dataset
    else:
        from compressor.data import load_dataset

        chosen = load_dataset(str(Path(config.eval_data).expanduser()), artifact)
    matched = chosen.matched_to(specs).take(config.eval_samples)
    if len(matched) < 2:
        raise PassError(pass_name, f"the evaluation data has {len(matched)} sample(s); autotune needs at least 2")
    return matched


def _metric(pass_name: str, wanted: str, evaluation: Dataset) -> str:
    labels = evaluation.labels
    has_classes = labels is not None and labels.ndim == 1 and labels.dtype.kind in "iu"
    if wanted == "auto":
        return "accuracy" if has_classes else "fidelity"
    if wanted == "accuracy" and not has_classes:
        raise PassError(
            pass_name,
            f"metric accuracy needs class labels (a 1-D integer 'labels' array) in {evaluation.source}",
            hint="use metric: fidelity, or give eval_data with labels",
        )
    return wanted
