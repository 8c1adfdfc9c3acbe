"""``quantize.inc.weight_only``: Neural Compressor's RTN, GPTQ or AWQ on the ``nn.Linear`` weights, stored packed.

- RTN rounds each group of ``group_size`` weights to ``bits`` with its own scale; no data needed.
- GPTQ quantizes column by column and corrects the remaining columns with the inverse Hessian of the layer's inputs
  on the dataset. INC's GPTQ is written for LLMs: it quantizes the Linear layers *inside* the blocks of the model's
  ``nn.ModuleList`` (or ``nn.Sequential``) stack, block by block, and leaves the layers before and after it in float.
- AWQ scales salient input channels (found from activations on the dataset) before rounding; INC's AWQ needs the
  blocks in an ``nn.ModuleList`` (it captures the first block's inputs) and one tensor input.

The output is an ``inc-woq`` folder (:mod:`compressor_inc.woq`): packed words, not float weights, so its size on disk
is the real one. It is reloaded from disk and compared with the model INC returned before the pass succeeds.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Literal

import numpy as np
from compressor_torch import models
from pydantic import Field, field_validator

from compressor.artifacts import Artifact
from compressor.errors import PassError
from compressor.measure.quality import fidelity
from compressor.passes import Pass, PassConfig, PassContext, PassResult, require_dataset
from compressor_inc import inc, woq

#: The reloaded model must reproduce the one INC returned this closely (the only change is reading it back).
RELOAD_COSINE = 0.99999


class WeightOnlyConfig(PassConfig):
    algorithm: Literal["rtn", "gptq", "awq"] = "rtn"
    bits: Literal[2, 3, 4, 8] = 4
    #: Weights per scale along the input dimension; -1: one scale per output channel.
    group_size: int = 32
    #: Symmetric (zero point in the middle) or asymmetric (a zero point per group) integers.
    symmetric: bool = True
    #: Linear layers left in float, as shell patterns of their names (e.g. "head", "blocks.*.fc2").
    exclude: list[str] = Field(default_factory=list)
    #: GPTQ and AWQ: samples and batch size of the calibration data.
    calibration_samples: int = Field(128, ge=1)
    calibration_batch: int = Field(32, ge=2)
    #: The quantized model must reach this mean cosine to the float model on the check samples.
    min_cosine: float = Field(0.9, ge=0, le=1)

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("group_size must be -1 (per output channel) or a positive number of weights")
        return value


class IncWeightOnly(Pass):
    name = "quantize.inc.weight_only"
    summary = "Neural Compressor weight-only RTN/GPTQ/AWQ of Linear layers (bits, group size), stored packed (inc-woq)"
    input_formats = ("torch",)
    output_format = woq.FORMAT
    Config = WeightOnlyConfig
    libraries = ("neural-compressor-pt", "torch", "accelerate")
    stage = "quantize"

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{}]  # RTN int4, group 32: seconds; GPTQ and AWQ are minutes on real models

    def run(self, artifact: Artifact, config: WeightOnlyConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch

        inc.require("neural_compressor", "accelerate")
        data = models.manifest(artifact)
        if data.kind != models.FACTORY:
            raise PassError(
                self.name,
                f"the weight-only model is stored as its factory plus packed weights; {artifact.path.name} is a "
                f"{data.kind} model",
                hint="load the model as module.py:factory --weights WEIGHTS",
            )
        module = models.module_of(artifact, self.name, "weight-only quantization").module.eval()
        linear = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
        excluded = sorted({n for n in linear for pattern in config.exclude if fnmatch.fnmatchcase(n, pattern)})
        targets = [n for n in linear if n not in excluded]
        if not targets:
            why = "it has no nn.Linear layer" if not linear else f"every Linear layer is excluded ({config.exclude})"
            raise PassError(
                self.name,
                f"nothing to quantize: {why}",
                hint="weight-only quantization rounds Linear weights; convolutional models: quantize.inc.static",
            )
        dataset = ctx.dataset
        if config.algorithm != "rtn":
            dataset = require_dataset(self.name, ctx, f"{config.algorithm.upper()} calibrates on activations")
            _check_structure(self.name, config.algorithm, module)
        specs = models.concrete_specs(artifact, dataset)
        feeds = (
            list(dataset.matched_to(specs).take(config.calibration_samples).batches(config.calibration_batch))
            if dataset is not None
            else [models.example_feeds(specs, None, ctx.options.shapes, batch=8)]
        )
        batches = [tuple(models.to_tensors(specs, f)) for f in feeds]
        with torch.inference_mode():
            reference = [models.flatten_outputs(module(*b))[0].float().numpy() for b in batches]
            outputs = models.output_specs(models.flatten_outputs(module(*batches[0])))
        float_bytes = _tensor_bytes(module)
        quantized = self._quantize(module, config, excluded, batches, ctx)
        layers, wrappers = woq.layer_map(quantized)
        # INC's GPTQ on a flat nn.Sequential of Linear layers attaches a quantized child named "" to each Linear
        # and leaves the float layer in use: the model is unchanged, and INC says nothing.
        parents = {n: n.rpartition(".")[0] for n in layers}
        nested = [n for n, parent in parents.items() if parent in linear and parent not in wrappers]
        if not layers or nested:
            raise PassError(
                self.name,
                f"{config.algorithm.upper()} quantized no layer of this model"
                + (" (it attached its layers inside the Linear modules instead of replacing them)" if nested else ""),
                hint=_STRUCTURE_HINT,
            )
        notes = [
            f"{config.algorithm.upper()} int{config.bits}, group size {config.group_size}, "
            f"{'symmetric' if config.symmetric else 'asymmetric'}: {len(layers)} of {len(linear)} Linear layers "
            "quantized"
            + (f"; left in float: {', '.join(sorted(set(linear) - set(layers)))}" if len(layers) < len(linear) else "")
        ]
        settings = {
            "algorithm": config.algorithm,
            "bits": config.bits,
            "group_size": config.group_size,
            "symmetric": config.symmetric,
        }
        folder = ctx.workdir / "model"
        derived = woq.save(artifact, quantized, folder, self.record(config, notes), settings, outputs, specs)
        reloaded = woq.open_module(derived)
        in_memory = _outputs(quantized, batches)
        produced = _outputs(reloaded, batches)
        same = fidelity([np.concatenate(in_memory)], [np.concatenate(produced)], False)
        if same.cosine_mean < RELOAD_COSINE:
            raise PassError(
                self.name,
                f"the stored model does not reproduce the quantized one (cosine {same.cosine_mean:.6f})",
            )
        measured = fidelity([np.concatenate(reference)], [np.concatenate(produced)], True)
        if measured.cosine_mean < config.min_cosine:
            raise PassError(
                self.name,
                f"the weight-only model is too far from the float model: cosine {measured.cosine_mean:.4f} < "
                f"min_cosine {config.min_cosine:g} on {measured.samples} samples",
                hint="use more bits, a smaller group_size, exclude sensitive layers, or gptq/awq",
            )
        stored = (folder / woq.WEIGHTS_FILE).stat().st_size
        notes.append(
            f"stored packed: {stored / 1e6:.3f} MB of weights vs {float_bytes / 1e6:.3f} MB in float "
            f"({float_bytes / max(stored, 1):.1f}x); runs with INC's INCWeightOnlyLinear, which unpacks each weight to "
            "float on its first call (memory and latency then as in float)"
        )
        notes.append(f"vs the float model on {measured.samples} samples: cosine {measured.cosine_mean:.4f}")
        metrics = {
            "layers_quantized": len(layers),
            "linear_layers": len(linear),
            "float_weight_bytes": float_bytes,
            "stored_weight_bytes": stored,
            "cosine": measured.cosine_mean,
        }
        return PassResult(derived, notes, metrics)

    def _quantize(
        self,
        module: Any,
        config: WeightOnlyConfig,
        excluded: list[str],
        batches: list[tuple[Any, ...]],
        ctx: PassContext,
    ) -> Any:
        import torch

        with inc.captured():
            from neural_compressor.torch.quantization import AWQConfig, GPTQConfig, RTNConfig, convert, prepare

            common = {"bits": config.bits, "group_size": config.group_size, "use_sym": config.symmetric}
            example = None
            if config.algorithm == "rtn":
                inc_config = RTNConfig(use_layer_wise=False, **common)
            elif config.algorithm == "gptq":
                # INC's GPTQ resolves model_path even when not layer-wise; an empty one goes to the Hugging Face hub
                inc_config = GPTQConfig(model_path=str(ctx.workdir), **common)
            else:
                inc_config = AWQConfig(**common)
                if len(batches[0]) != 1:
                    raise PassError(self.name, "INC's AWQ takes models with one tensor input", hint=_STRUCTURE_HINT)
                example = batches[0][0]  # AWQ moves it to the device: a tensor, not a tuple
            fallback = type(inc_config)(dtype="fp32")  # each algorithm skips layers whose dtype is fp32
            for name in excluded:
                inc_config.set_local(re.escape(name) + "$", fallback)
            try:
                prepared = prepare(module, inc_config, example_inputs=example)
                if config.algorithm != "rtn":
                    with torch.no_grad():
                        for batch in batches:
                            prepared(*batch)
                return convert(prepared)
            except PassError:
                raise
            except Exception as exc:
                raise PassError(
                    self.name, f"Neural Compressor's {config.algorithm.upper()} failed: {inc.deepest_reason(exc)}"
                ) from exc


_STRUCTURE_HINT = (
    "INC's GPTQ and AWQ are written for transformer stacks: Linear layers inside blocks held in an nn.ModuleList; "
    "use algorithm rtn for other models"
)


def _check_structure(pass_name: str, algorithm: str, module: Any) -> None:
    """GPTQ and AWQ walk the model's stack of blocks; refuse models without one before INC fails obscurely."""
    import torch

    lists = [m for m in module.modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    stacks = lists if algorithm == "awq" else [*lists, *(m for m in module.modules() if type(m) is torch.nn.Sequential)]
    blocks_with_linear = [
        stack
        for stack in stacks
        if all(list(b.children()) for b in stack) and any(isinstance(x, torch.nn.Linear) for x in stack.modules())
    ]
    if not blocks_with_linear:
        kind = "an nn.ModuleList" if algorithm == "awq" else "an nn.ModuleList or nn.Sequential"
        raise PassError(
            pass_name,
            f"{algorithm.upper()} needs the model's blocks (modules holding Linear layers) in {kind}; this model has "
            "none",
            hint=_STRUCTURE_HINT,
        )


def _outputs(module: Any, batches: list[tuple[Any, ...]]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        return [models.flatten_outputs(module(*b))[0].float().numpy() for b in batches]


def _tensor_bytes(module: Any) -> int:
    return sum(int(t.numel() * t.element_size()) for t in module.state_dict().values())
