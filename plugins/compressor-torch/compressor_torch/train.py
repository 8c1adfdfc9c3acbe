"""Recovery passes: ``finetune`` (supervised) and ``distill`` (knowledge distillation from a teacher).

Both train on ``ctx.dataset`` with a held-out validation share, stop early when the validation metric stops
improving, respect an epoch and a time budget, keep the best epoch (the model as it came in counts as epoch 0,
so training never hands back something worse on validation than its input), keep pruned weights at zero, and
report progress through ``ctx.progress``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from compressor.artifacts import Artifact
from compressor.data import Dataset
from compressor.errors import CompressorError, InputError, PassError
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.runner import RunOptions, open_session, run_batches
from compressor.passes import Pass, PassConfig, PassContext, PassResult, require_dataset
from compressor_torch import models

#: Below this many samples the whole dataset is used for validation too (no hold-out).
MIN_SAMPLES_FOR_HOLDOUT = 20
TEACHER_BATCH = 64


class StudentMismatch(InputError):
    """A student whose outputs cannot be compared with the teacher's."""


class TrainConfig(PassConfig):
    #: Most epochs to train (fewer when validation stops improving or the time budget runs out).
    epochs: int = Field(10, ge=1)
    #: Time budget in seconds for the training loop (checked after every batch).
    max_seconds: float | None = Field(None, gt=0)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    #: cosine: the learning rate decays to zero over the epoch budget; constant: it stays at lr.
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    #: Share of the dataset held out to validate each epoch (and to pick the best epoch).
    validation_split: float = Field(0.1, ge=0, lt=1)
    #: Stop after this many epochs without a better validation metric.
    patience: int = Field(3, ge=1)
    seed: int = 0
    #: Torch threads while training; 0: one for models under 5M parameters (on small batches thread
    #: synchronization costs more than it saves: 17 vs 97 ms per step for the digits CNN on a busy 2-core host), else
    #: all.
    threads: int = Field(0, ge=0)


class FinetuneConfig(TrainConfig):
    pass


class DistillConfig(TrainConfig):
    #: Soft targets keep teaching after the labels are fitted: on the digits CNN pruned at ratio 0.7, 10 epochs
    #: reached 98.06% test accuracy and 30 epochs 98.61% (the unpruned model: 99.17%), in 2.5 s.
    epochs: int = Field(30, ge=1)
    #: The teacher: any model reference (torch or ONNX). Default: the model before pruning (the artifact's origin),
    #: or the input model itself when a separate student is given.
    teacher: str | None = None
    teacher_weights: str | None = None
    #: A student to train instead of the input model, e.g. "small.py:build_student" (fresh unless weights given).
    student: str | None = None
    student_weights: str | None = None
    temperature: float = Field(4.0, gt=0)
    #: Weight of the soft (teacher) loss; 1 - alpha goes to the labels when there are labels.
    alpha: float = Field(0.7, ge=0, le=1)
    #: kl: temperature-scaled KL divergence on classifier logits; mse: mean squared error on any output.
    loss: Literal["auto", "kl", "mse"] = "auto"


@dataclass
class FitReport:
    epochs_run: int = 0
    best_epoch: int = 0
    initial_score: float = 0.0
    best_score: float = 0.0
    stopped: str = "epoch budget"
    seconds: float = 0.0
    train_samples: int = 0
    validation_samples: int = 0
    held_out: bool = True
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Batches:
    """Inputs (in the model's input order) and per-sample targets, as numpy arrays."""

    inputs: list[np.ndarray]
    targets: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.inputs[0])

    def select(self, index: np.ndarray) -> Batches:
        return Batches([a[index] for a in self.inputs], {k: v[index] for k, v in self.targets.items()})


def fit(
    pass_name: str,
    module: Any,
    data: Batches,
    loss_fn: Callable[[Any, dict[str, Any]], Any],
    score_fn: Callable[[Any, dict[str, Any]], float],
    config: TrainConfig,
    ctx: PassContext,
    masks: dict[str, Any],
) -> FitReport:
    """Train ``module`` in place; keep the weights of the best validation epoch (epoch 0: as it came in)."""
    import torch

    device = models.device_of(ctx.device)
    module.to(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data))
    held = int(len(data) * config.validation_split) if len(data) >= MIN_SAMPLES_FOR_HOLDOUT else 0
    validation = data.select(order[:held]) if held else data
    train = data.select(order[held:]) if held else data
    report = FitReport(train_samples=len(train), validation_samples=len(validation), held_out=bool(held))

    def tensors(part: Batches, index: np.ndarray | slice) -> tuple[list[Any], dict[str, Any]]:
        inputs = [torch.from_numpy(np.ascontiguousarray(a[index])).to(device) for a in part.inputs]
        targets = {k: torch.from_numpy(np.ascontiguousarray(v[index])).to(device) for k, v in part.targets.items()}
        return inputs, targets

    def evaluate() -> tuple[float, float]:
        """(validation metric, -validation loss): the loss breaks ties once the metric saturates."""
        module.eval()
        outputs, targets = [], {k: [] for k in validation.targets}
        with torch.no_grad():
            for start in range(0, len(validation), 256):
                inputs, target = tensors(validation, slice(start, start + 256))
                outputs.append(models.flatten_outputs(module(*inputs))[0])
                for k, v in target.items():
                    targets[k].append(v)
            out, gathered = torch.cat(outputs), {k: torch.cat(v) for k, v in targets.items()}
            return float(score_fn(out, gathered)), -float(loss_fn(out, gathered))

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = max(1, math.ceil(len(train) / config.batch_size))
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
        if config.schedule == "cosine"
        else None
    )
    mask_pairs = [(p, masks[n].to(device)) for n, p in module.named_parameters() if n in masks]
    best = evaluate()
    report.initial_score = report.best_score = best[0]
    best_state = copy.deepcopy(module.state_dict())
    started = time.perf_counter()
    stale = 0
    with (
        _threads(config.threads, module),
        ctx.progress(f"{pass_name}: training", float(config.epochs * steps)) as advance,
    ):
        for epoch in range(1, config.epochs + 1):
            module.train()
            permutation = rng.permutation(len(train))
            total, seen = 0.0, 0
            out_of_time = False
            for step in range(steps):
                index = permutation[step * config.batch_size : (step + 1) * config.batch_size]
                if len(index) < 2:  # batch norm cannot train on one sample
                    continue
                inputs, target = tensors(train, index)
                loss = loss_fn(models.flatten_outputs(module(*inputs))[0], target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                if mask_pairs:
                    with torch.no_grad():
                        for param, mask in mask_pairs:
                            param.mul_(mask)
                total += float(loss.detach()) * len(index)
                seen += len(index)
                advance(1.0)
                if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                    out_of_time = True
                    break
            score = evaluate()
            report.epochs_run = epoch
            report.history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / max(seen, 1),
                    "validation": score[0],
                    "validation_loss": -score[1],
                }
            )
            if score > best:
                best, stale = score, 0
                report.best_score, report.best_epoch = score[0], epoch
                best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
            if out_of_time:
                report.stopped = "time budget"
                break
            if stale >= config.patience:
                report.stopped = f"early stop: no better validation metric or loss for {config.patience} epochs"
                break
    report.seconds = time.perf_counter() - started
    module.load_state_dict(best_state)
    module.eval().cpu()
    return report


SMALL_MODEL_PARAMS = 5_000_000


@contextlib.contextmanager
def _threads(threads: int, module: Any) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if threads == 0:
        small = sum(p.numel() for p in module.parameters()) < SMALL_MODEL_PARAMS
        threads = 1 if small else previous
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _masks(loaded: models.Loaded, data: models.Manifest) -> dict[str, Any]:
    """Pruned weights stay pruned: a mask of the non-zeros of every weight a pruning pass sparsified."""
    return {n: (p.detach() != 0).to(p.dtype) for n, p in loaded.module.named_parameters() if n in data.sparse}


def _inputs(specs: list[Any], dataset: Dataset) -> list[np.ndarray]:
    matched = dataset.matched_to(specs)
    return [matched.inputs[s.name] for s in specs]


def _is_class_labels(labels: np.ndarray | None) -> bool:
    return labels is not None and labels.ndim == 1 and (labels.dtype.kind in "iu" or np.all(labels == np.round(labels)))


def _fit_summary(report: FitReport, metric: str, config: TrainConfig) -> str:
    where = f"{report.validation_samples} held-out samples" if report.held_out else "the training samples"
    best = (
        "the input model was best: weights unchanged" if report.best_epoch == 0 else f"best epoch {report.best_epoch}"
    )
    return (
        f"{report.epochs_run} of {config.epochs} epochs ({report.stopped}) on {report.train_samples} samples in "
        f"{report.seconds:.1f} s; validation {metric} {report.initial_score:.4f} -> {report.best_score:.4f} on "
        f"{where} ({best})"
    )


def _save(
    pass_: Pass,
    artifact: Artifact,
    student: Artifact,
    loaded: models.Loaded,
    ctx: PassContext,
    config: PassConfig,
    notes: list[str],
    specs: list[Any],
) -> Artifact:
    import torch

    folder = ctx.workdir / "model"
    data = models.manifest(student)
    if student is not artifact:
        origin = models.manifest(artifact)
        data = replace(data, origin=origin.origin, origin_weights=origin.origin_weights)
    data = models.save_model(loaded, data, folder)
    feeds = models.example_feeds(specs, ctx.dataset, ctx.options.shapes)
    with torch.inference_mode():
        outputs = models.output_specs(models.flatten_outputs(loaded.module(*models.to_tensors(specs, feeds))))
    return models.derive_torch(artifact, folder, pass_.record(config, notes), data, inputs=specs, outputs=outputs)


class Finetune(Pass):
    name = "finetune"
    summary = "supervised fine-tuning on a labelled dataset (early stopping, epoch/time budget, pruned zeros kept)"
    input_formats = ("torch",)
    output_format = "torch"
    Config = FinetuneConfig
    requires_dataset = True
    libraries = ("torch",)

    def run(self, artifact: Artifact, config: FinetuneConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch
        import torch.nn.functional as F

        dataset = require_dataset(self.name, ctx, "it trains on labelled samples")
        if dataset.labels is None:
            raise PassError(
                self.name,
                f"dataset {dataset.source} has no labels",
                hint="add a 'labels' array, or use distill, which learns from a teacher's outputs",
            )
        loaded = models.module_of(artifact, self.name, "fine-tuning")
        specs = models.concrete_specs(artifact, dataset)
        labels = dataset.labels
        classifier = _is_class_labels(labels)
        target = labels.astype(np.int64) if classifier else labels.astype(np.float32)
        data = Batches(_inputs(specs, dataset), {"labels": target})

        def loss_fn(out: Any, batch: dict[str, Any]) -> Any:
            if classifier:
                return F.cross_entropy(out, batch["labels"])
            return F.mse_loss(out.reshape(batch["labels"].shape), batch["labels"])

        def score_fn(out: Any, batch: dict[str, Any]) -> float:
            if classifier:
                return float((out.argmax(dim=-1) == batch["labels"]).float().mean())
            return -float(F.mse_loss(out.reshape(batch["labels"].shape), batch["labels"]))

        with torch.no_grad():
            probe = models.flatten_outputs(loaded.module(*[torch.from_numpy(a[:2]) for a in data.inputs]))[0]
        if classifier and probe.dim() != 2:
            raise PassError(
                self.name, f"class labels need a classifier output [N, classes]; the model gives {list(probe.shape)}"
            )
        masks = _masks(loaded, models.manifest(artifact))
        report = fit(self.name, loaded.module, data, loss_fn, score_fn, config, ctx, masks)
        metric = "accuracy" if classifier else "-MSE"
        notes = [f"fine-tuned: {_fit_summary(report, metric, config)}"]
        if masks:
            notes.append(f"pruned weights kept at zero in {len(masks)} layers")
        derived = _save(self, artifact, artifact, loaded, ctx, config, notes, specs)
        return PassResult(derived, notes, report.to_dict())


class Distill(Pass):
    name = "distill"
    summary = "knowledge distillation from a teacher (default: the model before pruning); labels optional"
    input_formats = ("torch",)
    output_format = "torch"
    Config = DistillConfig
    requires_dataset = True
    libraries = ("torch",)
    stage = "recover"

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{}]

    def run(self, artifact: Artifact, config: DistillConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch
        import torch.nn.functional as F

        dataset = require_dataset(self.name, ctx, "the student learns the teacher's outputs on it")
        teacher, teacher_name = self._teacher(artifact, config, ctx)
        student = self._student(artifact, config, ctx)
        loaded = models.module_of(student, self.name, "distillation")
        specs = models.concrete_specs(student, dataset)
        inputs = _inputs(specs, dataset)
        soft = _teacher_outputs(teacher, specs, inputs, ctx)
        with torch.no_grad():
            probe = models.flatten_outputs(loaded.module(*[torch.from_numpy(a[:2]) for a in inputs]))[0]
        if tuple(probe.shape[1:]) != tuple(soft.shape[1:]):
            raise StudentMismatch(
                f"the student's output {['N', *probe.shape[1:]]} does not match the teacher's {['N', *soft.shape[1:]]}"
                f" ({teacher_name}): a student must produce the teacher's output shape",
                hint="build the student with the teacher's number of outputs (classes, features)",
            )
        labels = dataset.labels
        classifier_out = soft.ndim == 2 and soft.shape[1] > 1 and soft.dtype.kind == "f"
        mode = config.loss if config.loss != "auto" else ("kl" if classifier_out else "mse")
        hard = mode == "kl" and _is_class_labels(labels) and config.alpha < 1
        with_labels = _is_class_labels(labels) and classifier_out
        targets = {"teacher": soft.astype(np.float32)}
        if with_labels and labels is not None:
            targets["labels"] = labels.astype(np.int64)
        data = Batches(inputs, targets)
        temperature, alpha = config.temperature, config.alpha

        def loss_fn(out: Any, batch: dict[str, Any]) -> Any:
            if mode == "mse":
                return F.mse_loss(out, batch["teacher"].reshape(out.shape))
            soft_loss = F.kl_div(
                F.log_softmax(out / temperature, dim=-1),
                F.softmax(batch["teacher"] / temperature, dim=-1),
                reduction="batchmean",
            ) * (temperature**2)
            if not hard:
                return soft_loss
            return alpha * soft_loss + (1 - alpha) * F.cross_entropy(out, batch["labels"])

        def score_fn(out: Any, batch: dict[str, Any]) -> float:
            if with_labels:
                return float((out.argmax(dim=-1) == batch["labels"]).float().mean())
            if classifier_out:
                return float((out.argmax(dim=-1) == batch["teacher"].argmax(dim=-1)).float().mean())
            return -float(F.mse_loss(out, batch["teacher"].reshape(out.shape)))

        masks = _masks(loaded, models.manifest(student)) if student is artifact else {}
        report = fit(self.name, loaded.module, data, loss_fn, score_fn, config, ctx, masks)
        metric = "accuracy" if with_labels else ("top-1 agreement with the teacher" if classifier_out else "-MSE")
        how = (
            f"KL at T={temperature:g}" + (f", {alpha:g} soft + {1 - alpha:g} hard (labels)" if hard else ", soft only")
            if mode == "kl"
            else "MSE to the teacher's outputs"
        )
        notes = [f"distilled from {teacher_name} ({how}): {_fit_summary(report, metric, config)}"]
        if with_labels and labels is not None:
            teacher_acc = float(np.mean(soft.argmax(axis=1) == labels.astype(np.int64)))
            notes.append(f"the teacher's accuracy on the whole dataset: {teacher_acc:.4f}")
        if masks:
            notes.append(f"pruned weights kept at zero in {len(masks)} layers")
        derived = _save(self, artifact, student, loaded, ctx, config, notes, specs)
        metrics = {**report.to_dict(), "teacher": teacher_name, "loss": mode}
        return PassResult(derived, notes, metrics)

    def _teacher(self, artifact: Artifact, config: DistillConfig, ctx: PassContext) -> tuple[Artifact, str]:
        trust = ctx.options.trust_pickle
        if config.teacher:
            weights = Path(config.teacher_weights) if config.teacher_weights else None
            return _load(self.name, config.teacher, weights, trust, "teacher"), config.teacher
        if config.student:
            return artifact, f"the input model ({artifact.source or artifact.path.name})"
        origin = models.manifest(artifact)
        if not artifact.lineage or not origin.origin:
            raise PassError(
                self.name,
                "no teacher: by default the teacher is the model before pruning, and this model has no earlier form",
                hint="give a teacher (distill: {teacher: MODEL}, or --teacher) or a student to train",
            )
        weights = Path(origin.origin_weights) if origin.origin_weights else None
        model = origin.origin
        name = f"the model before pruning ({Path(model.rpartition(':')[0] or model).name}"
        name += f" + {weights.name})" if weights else ")"
        return _load(self.name, model, weights, trust, "teacher (the model before pruning)"), name

    def _student(self, artifact: Artifact, config: DistillConfig, ctx: PassContext) -> Artifact:
        if not config.student:
            return artifact
        weights = Path(config.student_weights) if config.student_weights else None
        return _load(self.name, config.student, weights, ctx.options.trust_pickle, "student")


def _load(pass_name: str, ref: str, weights: Path | None, trust: bool, role: str) -> Artifact:
    try:
        return load_model(ref, LoaderOptions(weights=weights, trust_pickle=trust))
    except CompressorError as exc:
        exc.message = f"{pass_name}: {role} {ref}: {exc.message}"
        exc.args = (exc.message,)
        raise


def _teacher_outputs(teacher: Artifact, specs: list[Any], inputs: list[np.ndarray], ctx: PassContext) -> np.ndarray:
    """The teacher's first output on every sample, with whatever runner its format has."""
    session = open_session(teacher, RunOptions(device=ctx.device))
    try:
        names = [s.name for s in session.inputs]
        if len(names) != len(inputs):
            raise StudentMismatch(f"the teacher takes {len(names)} inputs ({names}), the student {len(inputs)}")
        batches = [
            {name: array[start : start + TEACHER_BATCH] for name, array in zip(names, inputs, strict=True)}
            for start in range(0, len(inputs[0]), TEACHER_BATCH)
        ]
        return np.asarray(run_batches(session, batches)[0])
    finally:
        session.close()
