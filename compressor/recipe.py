"""Recipes: a versioned YAML file naming the input, the passes with their configs, data and budgets.

Recipes are parsed with a safe loader that refuses large files, deep nesting and alias bombs; every
pass name and config is validated before any work starts; a recipe cannot write outside its folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compressor.errors import RecipeError
from compressor.gate import Budgets
from compressor.pipeline import Step, make_steps
from compressor.pyref import is_reference

RECIPE_VERSION = 1
MAX_RECIPE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 64


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting depth and the number of aliases (no billion-laughs expansion)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise RecipeError(f"more than {MAX_ALIASES} YAML aliases; refusing (alias bomb?)")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RecipeError(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, source: str) -> Any:
    if len(text.encode()) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {source} is larger than {MAX_RECIPE_BYTES // 1000} KB")
    loader = None
    try:
        loader = _LimitedLoader(text)  # the reader refuses control characters here, before parsing
        return loader.get_single_data()
    except RecipeError as exc:
        raise RecipeError(f"recipe {source}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise RecipeError(f"recipe {source} is not valid YAML{where}: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


class PassEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class MeasureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batches: list[int] = Field(default_factory=lambda: [1])
    device: str = "cpu"
    threads: int = 0
    #: Time the models (off for very large ones when only size and quality matter).
    latency: bool = True
    min_runs: int = Field(30, ge=1)
    min_time: float = Field(1.0, ge=0)


class Recipe(BaseModel):
    """A recipe file. Paths are relative to the recipe's folder."""

    model_config = ConfigDict(extra="forbid")

    version: int
    model: str
    model_options: dict[str, Any] = Field(default_factory=dict)
    #: Calibration / training data for the passes.
    data: str | None = None
    #: Labelled evaluation data for the final report and accuracy budgets (defaults to ``data``).
    eval_data: str | None = None
    passes: list[PassEntry]
    output: str | None = None
    budgets: Budgets = Field(default_factory=Budgets)
    measure: MeasureSpec = Field(default_factory=MeasureSpec)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != RECIPE_VERSION:
            raise ValueError(f"unsupported recipe version {value}; this compressor reads version {RECIPE_VERSION}")
        return value

    @field_validator("passes", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """Accept ``- quantize.static: {per_channel: true}`` as well as ``- name: ...``."""
        if not isinstance(value, list):
            return value
        entries = []
        for item in value:
            if isinstance(item, str):
                entries.append({"name": item})
            elif isinstance(item, dict) and len(item) == 1 and "name" not in item:
                ((name, config),) = item.items()
                entries.append({"name": name, "config": config or {}})
            else:
                entries.append(item)
        return entries

    def steps(self) -> list[Step]:
        return make_steps([(p.name, p.config) for p in self.passes])


def load_recipe(path: Path) -> tuple[Recipe, list[Step]]:
    """Read and fully validate a recipe (passes and configs included); nothing runs yet."""
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}" if not path.exists() else f"recipe {path} is not a file")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {path} is larger than {MAX_RECIPE_BYTES // 1000} KB")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {path} is not a text file") from None
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping with version, model and passes")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecipeError(f"recipe {path}: '{where}': {first['msg']}") from None
    steps = recipe.steps()
    needs_data = [s.name for s in steps if s.pass_cls.requires_dataset]
    if needs_data and recipe.data is None:
        raise RecipeError(
            f"recipe {path}: pass '{needs_data[0]}' needs a dataset, and the recipe sets no `data`",
            hint="add e.g. `data: calib.npz` (a path relative to the recipe)",
        )
    return recipe, steps


def resolve_in(folder: Path, relative: str) -> Path:
    """A path from a recipe, relative to its folder; absolute paths are kept as given."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else (folder / path)


def recipe_output(folder: Path, relative: str) -> Path:
    """The recipe's output folder, which must stay inside the recipe's folder."""
    candidate = Path(relative)
    resolved = (folder / candidate).resolve()
    if candidate.is_absolute() or not resolved.is_relative_to(folder.resolve()):
        raise RecipeError(
            f"recipe output '{relative}' escapes the recipe's folder; recipes may only write below it",
            hint="give an output outside it explicitly with -o",
        )
    return folder / candidate


def dump_recipe(recipe: Recipe, steps: list[Step], original_folder: Path, new_folder: Path) -> str:
    """The recipe as run (inserted conversions included), its paths rewritten to resolve from ``new_folder``."""

    def moved(value: str | None) -> str | None:
        if value is None:
            return None
        file, sep, name = value.rpartition(":") if is_reference(value) else (value, "", "")
        relative = os.path.relpath(resolve_in(original_folder, file).resolve(), new_folder.resolve())
        return f"{relative}{sep}{name}"

    data = recipe.model_dump(mode="json", exclude_none=True)
    data.update(model=moved(recipe.model), data=moved(recipe.data), eval_data=moved(recipe.eval_data))
    data["passes"] = [{"name": s.name, "config": s.config.model_dump(mode="json")} for s in steps]
    data.pop("output", None)
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)
