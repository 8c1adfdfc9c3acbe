"""Loaders turn what the user points at (a file, a folder, ``module.py:factory``) into an Artifact."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from compressor.artifacts import Artifact, read_sidecar
from compressor.errors import ModelLoadError, UsageError
from compressor.limits import set_activity
from compressor.plugins import get_registry


class LoaderOptions(BaseModel):
    """Options every command accepts for loading a model; each loader uses the ones it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Concrete shapes for inputs, e.g. {"input_ids": (1, 128)}: fills symbolic dims or gives specs.
    shapes: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    #: Input dtypes for loaders that cannot read them from the model, e.g. {"x": "float32"}.
    dtypes: dict[str, str] = Field(default_factory=dict)
    #: A weights file (state dict) for factory-built models.
    weights: Path | None = None
    #: Allow formats that run pickle (and so may run code) when loaded.
    trust_pickle: bool = False
    #: The task of a model whose folder does not say it (e.g. "text-classification").
    task: str | None = None


class Loader:
    """Base class for loaders. Subclasses set the class attributes and implement ``claims`` and ``load``.

    ``claims`` must be cheap (look at a suffix or a sidecar); ``load`` may import heavy libraries.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: Formats of the artifacts this loader produces.
    formats: ClassVar[tuple[str, ...]] = ()
    #: What loading can execute, for docs/security.md: "data only" or a description of the risk.
    safety: ClassVar[str] = "data only"
    #: Higher runs first when several loaders claim a reference.
    priority: ClassVar[int] = 0

    def claims(self, ref: str) -> bool:
        raise NotImplementedError

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        raise NotImplementedError


def sidecar_format(path: Path) -> str | None:
    """The format recorded in a folder artifact's sidecar, if ``path`` is such a folder."""
    if not path.is_dir():
        return None
    artifact = read_sidecar(path)
    return artifact.format if artifact else None


def load_model(ref: str | Path, options: LoaderOptions | None = None) -> Artifact:
    """Find the loader that claims ``ref`` and load it, with a clear error when none does."""
    options = options or LoaderOptions()
    text = str(ref)
    loaders = sorted(get_registry().loaders.values(), key=lambda cls: -cls.priority)
    set_activity(f"loading {text}")
    for loader_cls in loaders:
        loader = loader_cls()
        if loader.claims(text):
            return _check_shape_names(loader.load(text, options), options)
    path = Path(text)
    if not path.exists() and ":" not in path.name:
        raise ModelLoadError(f"model not found: {text}")
    known = "; ".join(f"{cls.name} ({cls.summary})" for cls in loaders)
    hint = "install the plugin for this framework (see `compressor plugins`)"
    if path.is_dir():
        raise ModelLoadError(f"{text} is a directory that no loader recognizes. Loaders: {known}", hint=hint)
    raise ModelLoadError(f"no loader recognizes {text}. Loaders: {known}", hint=hint)


def _check_shape_names(artifact: Artifact, options: LoaderOptions) -> Artifact:
    """``--shape`` may only name inputs the model has (when the model declares its inputs)."""
    names = {spec.name for spec in artifact.inputs}
    unknown = sorted(set(options.shapes) - names) if names else []
    if unknown:
        raise UsageError(
            f"--shape names {unknown}, which {artifact.path.name} does not have; its inputs: {sorted(names)}"
        )
    return artifact
