"""Passes: ``(artifact, config) -> PassResult``. Each declares its contract and its config model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from compressor.artifacts import Artifact, PassRecord
from compressor.data import Dataset
from compressor.errors import PassError, RecipeError, unknown_name_error
from compressor.loaders import LoaderOptions
from compressor.plugins import get_registry

#: ``progress(description, total)`` yields an ``advance(n)`` callback; the CLI draws it, tests ignore it.
ProgressFactory = Callable[[str, float | None], contextlib.AbstractContextManager[Callable[[float], None]]]


@contextlib.contextmanager
def no_progress(description: str, total: float | None) -> Iterator[Callable[[float], None]]:
    yield lambda amount=1.0: None


class PassConfig(BaseModel):
    """Base of pass configs: unknown keys are errors. Bump ``config_version`` on incompatible changes."""

    model_config = ConfigDict(extra="forbid")
    config_version: ClassVar[int] = 1


@dataclass
class PassContext:
    """What a pass may use besides its input and config."""

    #: An empty folder the pass writes its output into (the pipeline publishes it afterwards).
    workdir: Path
    #: Calibration or training data, matched to the input artifact's inputs, when the user gave one.
    dataset: Dataset | None = None
    options: LoaderOptions = field(default_factory=LoaderOptions)
    device: str = "cpu"
    log: Callable[[str], None] = lambda message: None
    progress: ProgressFactory = no_progress


@dataclass
class PassResult:
    """A pass's output artifact, what it wants the user to know, and numbers it measured itself."""

    artifact: Artifact
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


class Pass:
    """Base class of passes. Subclasses set the class attributes and implement :meth:`run`.

    ``run`` must write only inside ``ctx.workdir`` and never change its input artifact.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: Formats this pass accepts.
    input_formats: ClassVar[tuple[str, ...]] = ()
    #: Format it produces; "" for a pass that keeps its input's format (e.g. pruning native models of several formats).
    output_format: ClassVar[str] = ""
    Config: ClassVar[type[PassConfig]] = PassConfig
    #: A conversion (e.g. torch -> onnx) the pipeline may insert by itself when formats differ.
    conversion: ClassVar[bool] = False
    #: Needs ``ctx.dataset`` (calibration or training data).
    requires_dataset: ClassVar[bool] = False
    #: Distributions whose versions change this pass's output (they join its cache key).
    libraries: ClassVar[tuple[str, ...]] = ()
    #: Where the pass sits in an automatic search (see compressor.search.space.STAGES); None: not searched.
    stage: ClassVar[str | None] = None

    def run(self, artifact: Artifact, config: PassConfig, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        """Configs worth trying on ``artifact`` in an automatic search (none by default)."""
        return []

    @classmethod
    def parse_config(cls, raw: dict[str, Any] | None) -> PassConfig:
        """Validate a config dict, turning pydantic's report into one clear line."""
        try:
            return cls.Config.model_validate(raw or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            fields = ", ".join(sorted(cls.Config.model_fields)) or "(none)"
            raise RecipeError(
                f"pass '{cls.name}': option '{where}': {first['msg']}",
                hint=f"options of {cls.name}: {fields}",
            ) from None

    def record(self, config: PassConfig, notes: list[str] | None = None) -> PassRecord:
        return PassRecord(self.name, config.model_dump(mode="json"), tuple(notes or ()))


def get_pass(name: str) -> type[Pass]:
    """The registered pass called ``name``, or an error listing the valid ones."""
    passes = get_registry().passes
    if name not in passes:
        raise unknown_name_error("pass", name, passes, RecipeError)
    return passes[name]


def require_dataset(pass_name: str, ctx: PassContext, why: str) -> Dataset:
    if ctx.dataset is None:
        raise PassError(pass_name, f"needs a dataset ({why})", hint="pass --data FILE.npz")
    return ctx.dataset
