"""Loading and running ``inc-woq`` folders (weight-only quantized torch models, see :mod:`compressor_inc.woq`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from compressor.artifacts import Artifact, read_sidecar
from compressor.errors import ModelLoadError
from compressor.loaders import Loader, LoaderOptions, sidecar_format
from compressor.measure.runner import Runner, RunOptions
from compressor_inc.woq import FORMAT


class WoqLoader(Loader):
    name = "inc-woq"
    summary = "folders written by quantize.inc.weight_only (packed INT4/INT8 Linear weights, safetensors)"
    formats = (FORMAT,)
    safety = (
        "runs the factory file named in its artifact.json (like a factory-kind torch folder); weights are read as "
        "safetensors"
    )

    def claims(self, ref: str) -> bool:
        return sidecar_format(Path(ref).expanduser()) == FORMAT

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        from compressor_inc.woq import open_module

        path = Path(ref).expanduser()
        artifact = read_sidecar(path)
        if artifact is None or artifact.format != FORMAT:
            raise ModelLoadError(f"{path} is not an inc-woq folder (no artifact.json with format '{FORMAT}')")
        open_module(artifact)  # validates: it must rebuild
        return artifact


class WoqRunner(Runner):
    name = "inc-woq"
    summary = "PyTorch eager on CPU with Neural Compressor's weight-only Linear layers"
    formats = (FORMAT,)
    devices = ("cpu",)
    libraries = ("torch", "neural-compressor-pt")

    def open(self, artifact: Artifact, options: RunOptions) -> Any:
        import torch
        from compressor_torch import models
        from compressor_torch.runner import TorchSession

        from compressor_inc import inc
        from compressor_inc.woq import open_module

        device = models.device_of(options.device)
        torch.set_num_threads(options.resolved_threads)
        session = TorchSession(
            artifact.path.name, open_module(artifact), list(artifact.inputs), artifact.outputs, device
        )
        session.backend += f" + neural-compressor {inc.version()} weight-only Linear"
        return session

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        from compressor_inc.woq import open_module, packed_stats

        module = open_module(artifact)
        layers = Counter(type(m).__name__ for m in module.modules() if not list(m.children()))
        return {**packed_stats(module), "ops": dict(layers.most_common()), "kind": "inc-woq"}
