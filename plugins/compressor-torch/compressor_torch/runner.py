"""The torch runner: eager PyTorch on CPU (and CUDA when present), so a torch model is measured like its export."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import CompressorError, ModelRunError
from compressor.measure.runner import Runner, RunOptions
from compressor_torch import models


class TorchSession:
    """An eager torch module behind the runner Session protocol (inference mode, eval mode)."""

    def __init__(self, name: str, module: Any, inputs: list[TensorSpec], outputs: list[TensorSpec], device: Any):
        import torch

        self.name = name
        self._module = module
        self._device = device
        self.inputs = inputs
        self.outputs = outputs or [TensorSpec("output", (), "unknown")]
        self.backend = f"torch {torch.__version__.split('+')[0]} eager {device.type}"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = models.to_tensors(self.inputs, feeds, self._device)
        try:
            with torch.inference_mode():
                produced = models.flatten_outputs(self._module(*tensors))
        except Exception as exc:
            shapes = ", ".join(f"{list(t.shape)}" for t in tensors)
            raise ModelRunError(
                f"{self.name} failed on inputs {shapes}: {type(exc).__name__}: {models.first_line(exc)}"
            ) from exc
        return [
            t.detach().float().cpu().numpy() if t.dtype == torch.bfloat16 else t.detach().cpu().numpy()
            for t in produced
        ]

    def close(self) -> None:
        self._module = None


class TorchRunner(Runner):
    name = "torch"
    summary = "PyTorch eager on CPU or CUDA"
    formats = ("torch",)
    devices = ("cpu", "cuda")
    libraries = ("torch",)

    def open(self, artifact: Artifact, options: RunOptions) -> TorchSession:
        import torch

        device = models.device_of(options.device)
        torch.set_num_threads(options.resolved_threads)
        loaded = models.open_model(artifact)
        module = loaded.module.to(device)
        if loaded.kind != models.EXPORTED:
            module.eval()
        return TorchSession(artifact.path.name, module, list(artifact.inputs), list(artifact.outputs), device)

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        return model_stats(artifact)


def model_stats(artifact: Artifact) -> dict[str, Any]:
    """Parameters, layer histogram, weight sparsity and (for nn.Modules with known input shapes) MACs."""
    loaded = models.open_model(artifact)
    module = loaded.module
    params = sum(int(p.numel()) for p in module.parameters())
    weights = [p for name, p in module.named_parameters() if p.dim() >= 2 and p.is_floating_point()]
    elems = sum(int(p.numel()) for p in weights)
    zeros = sum(int((p == 0).sum()) for p in weights)
    layers = Counter(
        m.original_name if hasattr(m, "original_name") else type(m).__name__
        for m in module.modules()
        if not list(m.children())
    )
    stats: dict[str, Any] = {
        "params": params,
        "ops": dict(layers.most_common()),
        "weight_sparsity": zeros / elems if elems else 0.0,
        "kind": loaded.kind,
    }
    macs = count_macs(loaded, artifact.inputs)
    if macs is not None:
        stats["macs"] = macs
    return stats


def count_macs(loaded: models.Loaded, specs: list[TensorSpec]) -> int | None:
    """Multiply-accumulates per sample (torch-pruning's counter, batch 1), or None when it cannot count."""
    import torch

    if loaded.kind in (models.TORCHSCRIPT, models.EXPORTED) or not specs or any(models.is_wildcard(s) for s in specs):
        return None
    try:
        import torch_pruning as tp

        example = tuple(models.to_tensors(specs, models.example_feeds(specs, None, batch=1)))
        with torch.no_grad():
            macs, _ = tp.utils.count_ops_and_params(loaded.module, example)
        return int(macs)
    except CompressorError:
        raise
    except Exception:
        return None
