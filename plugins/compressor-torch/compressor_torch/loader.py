"""The torch loader: ``module.py:factory``, TorchScript, ``.pt2`` programs, pickled modules (trusted only), and
folders written by torch passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.artifacts import Artifact, read_sidecar
from compressor.errors import ModelLoadError
from compressor.loaders import Loader, LoaderOptions, sidecar_format
from compressor.pyref import is_reference
from compressor_torch import models

SUFFIXES = (".pt", ".pth", ".ts", ".pt2")


def _absolute_reference(ref: str) -> str:
    file, _, name = ref.rpartition(":")
    return f"{Path(file).expanduser().resolve()}:{name}"


class TorchLoader(Loader):
    name = "torch"
    summary = "module.py:factory [--weights], TorchScript .pt/.ts, torch.export .pt2, pickled modules, torch folders"
    formats = ("torch",)
    safety = (
        "module.py:factory runs your Python file (so does a factory-kind torch folder: it names the factory file); "
        "weights are read as safetensors or with weights_only=True; TorchScript runs its TorchScript program (no "
        "Python), and one whose code names a file-system op (torch.save, torch.from_file) needs --trust-pickle; "
        ".pt2 programs load only when they hold raw tensors and call no file-system op; a pickled module (or a "
        ".pt2 with pickled entries) needs --trust-pickle"
    )

    def claims(self, ref: str) -> bool:
        if is_reference(ref):
            return True
        path = Path(ref)
        return path.suffix.lower() in SUFFIXES or sidecar_format(path) == "torch"

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        """Load ``ref``; ``--weights`` applies to factories only (commands comparing several models share it)."""
        path = Path(ref).expanduser()
        if is_reference(ref):
            return self._factory(ref, options)
        if path.is_dir():
            return self._folder(path, options)
        if not path.exists():
            raise ModelLoadError(f"model not found: {ref}")
        if not path.is_file():
            raise ModelLoadError(f"{ref} is not a file")
        if path.suffix.lower() == ".pt2":
            return self._exported(path, options)
        if models.is_torchscript(path):
            return self._torchscript(path, options)
        return self._pickled(path, options)

    # -- one method per kind ---------------------------------------------------------------------------------

    def _factory(self, ref: str, options: LoaderOptions) -> Artifact:
        absolute = _absolute_reference(ref)
        module = models.build_factory(ref)
        weights = options.weights.expanduser().resolve() if options.weights else None
        if weights is not None:
            models.load_weights(module, weights, ref)
        module.eval()
        inputs = models.input_specs(models.input_names(module), options.shapes, options.dtypes)
        outputs = _probe_outputs(module, inputs, options, ref)
        weights_text = str(weights) if weights else None
        data = models.Manifest(
            models.FACTORY, factory=absolute, weights=weights_text, origin=absolute, origin_weights=weights_text
        )
        path = weights or Path(ref.rpartition(":")[0]).expanduser().resolve()
        extra = data.to_extra(None)
        unknown = [s.name for s in inputs if models.is_wildcard(s)]
        if unknown:
            extra[f"{models.MANIFEST}.input_shapes"] = f"unknown for {', '.join(unknown)}: give --shape or --data"
        return Artifact(path, "torch", inputs, outputs, source=ref, extra=extra)

    def _torchscript(self, path: Path, options: LoaderOptions) -> Artifact:
        if options.trust_pickle:
            models.trust(path)
        module = models.load_torchscript(path)
        inputs = models.input_specs(models.input_names(module), options.shapes, options.dtypes)
        outputs = _probe_outputs(module, inputs, options, path.name)
        return _file_artifact(path, models.TORCHSCRIPT, inputs, outputs)

    def _exported(self, path: Path, options: LoaderOptions) -> Artifact:
        if options.trust_pickle:
            models.trust(path)
        program = models.load_exported(path, trusted=options.trust_pickle)
        inputs, outputs = models.exported_specs(program)
        return _file_artifact(path, models.EXPORTED, inputs, outputs)

    def _pickled(self, path: Path, options: LoaderOptions) -> Artifact:
        import torch

        _check_readable(path)
        try:
            with models.quiet():
                content = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            content, reason = None, models.first_line(exc)
        else:
            reason = ""
        if isinstance(content, dict):
            raise ModelLoadError(
                f"{path.name} holds weights only (a state dict of {len(content)} entries), not a model",
                hint=f"give the architecture and these weights: module.py:factory --weights {path.name}",
            )
        if content is not None:
            raise ModelLoadError(f"{path.name} holds a {type(content).__name__}, not a torch model")
        if not options.trust_pickle:
            raise ModelLoadError(
                f"{path.name} is a pickled Python object, not weights: loading it runs pickle, which can execute "
                f"arbitrary code, so it is refused without --trust-pickle ({reason[:120]})",
                hint=models.PICKLE_HINT,
            )
        models.trust(path)
        module = models.load_pickled_module(path)
        inputs = models.input_specs(models.input_names(module), options.shapes, options.dtypes)
        outputs = _probe_outputs(module, inputs, options, path.name)
        return _file_artifact(path, models.PICKLE, inputs, outputs)

    def _folder(self, path: Path, options: LoaderOptions) -> Artifact:
        artifact = read_sidecar(path)
        if artifact is None or artifact.format != "torch":
            raise ModelLoadError(f"{path} is not a torch artifact folder (no artifact.json with format 'torch')")
        data = models.manifest(artifact)
        if data.kind in (models.PICKLE, models.EXPORTED, models.TORCHSCRIPT) and options.trust_pickle and data.file:
            models.trust(models.resolve(artifact, data.file))
        loaded = models.open_model(artifact)  # validates: it must rebuild
        if options.shapes and any(models.is_wildcard(s) for s in artifact.inputs):
            artifact.inputs = models.input_specs([s.name for s in artifact.inputs], options.shapes, options.dtypes)
        if not artifact.outputs:
            artifact.outputs = _probe_outputs(loaded.module, artifact.inputs, options, path.name)
        if not data.origin:
            artifact.extra[f"{models.MANIFEST}.origin"] = str(path.resolve())
        return artifact


def _check_readable(path: Path) -> None:
    """Empty, truncated and foreign files, told apart from pickles before anything reads them as one."""
    import zipfile

    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise ModelLoadError(f"{path.name} is empty (0 bytes), not a PyTorch model")
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is a truncated or corrupt archive (a zip file that cannot be read)")
    if not head.startswith(b"PK") and head[:1] != b"\x80":  # torch.save writes a zip; old format a pickle
        raise ModelLoadError(f"{path.name} is not a PyTorch file (neither a zip archive nor a pickle)")


def _file_artifact(path: Path, kind: str, inputs: list[Any], outputs: list[Any]) -> Artifact:
    resolved = path.resolve()
    data = models.Manifest(kind, file=str(resolved), origin=str(resolved))
    return Artifact(resolved, "torch", inputs, outputs, source=str(path), extra=data.to_extra(None))


def _probe_outputs(module: Any, inputs: list[Any], options: LoaderOptions, name: str) -> list[Any]:
    """Run the model once on a batch-2 example to learn its outputs (when the input shapes are known)."""
    import torch

    if not inputs or any(models.is_wildcard(s) for s in inputs):
        return []
    feeds = models.example_feeds(inputs, None, options.shapes)
    try:
        with torch.inference_mode():
            produced = models.flatten_outputs(module(*models.to_tensors(inputs, feeds)))
    except Exception as exc:
        shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in feeds.items())
        raise ModelLoadError(
            f"{name} fails on example inputs ({shapes}): {type(exc).__name__}: {models.first_line(exc)}",
            hint="check --shape and --dtype",
        ) from exc
    if not produced:
        raise ModelLoadError(f"{name} returned no tensors")
    return models.output_specs(produced)
