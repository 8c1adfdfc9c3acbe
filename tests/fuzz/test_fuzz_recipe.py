"""Property tests for the recipe parser: whatever the file holds, `load_recipe` returns a validated recipe or
raises RecipeError / UsageError (one line), never anything else, and always within a second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from compressor.errors import RecipeError, UsageError
from compressor.plugins import get_registry
from compressor.recipe import load_recipe

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["1%", "200KB", "1.5GiB", "90s", "-1", "1e999", "qint8", "minmax", "cpu", "~", "true"]),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=30,
)
TOP_KEYS = ["version", "model", "model_options", "data", "eval_data", "passes", "output", "budgets", "measure"]
BUDGET_KEYS = ["max_size", "max_params", "max_latency_ms", "latency_batch", "min_accuracy", "min_fidelity"]
MEASURE_KEYS = ["batches", "device", "threads", "latency", "min_runs", "min_time"]
OPTION_KEYS = ["shapes", "dtypes", "weights", "trust_pickle", "task"]


def pass_names() -> list[str]:
    return sorted(get_registry().passes)


@st.composite
def pass_entries(draw: st.DrawFn) -> Any:
    name = draw(st.one_of(st.sampled_from(pass_names()), st.text(max_size=20)))
    config = draw(st.one_of(st.none(), STRUCTURES, st.dictionaries(st.sampled_from(CONFIG_KEYS), SCALARS)))
    form = draw(st.sampled_from(["bare", "short", "long", "raw"]))
    if form == "bare":
        return name
    if form == "short":
        return {name: config}
    if form == "long":
        return {"name": name, "config": config}
    return draw(STRUCTURES)


#: Config keys of every registered pass, so generated configs often reach the passes' own validators.
CONFIG_KEYS = sorted({key for cls in get_registry().passes.values() for key in cls.Config.model_fields}) or ["x"]


@st.composite
def recipes(draw: st.DrawFn) -> dict[str, Any]:
    """Recipe-shaped mappings: mostly the real keys, with values that are right, nearly right, or anything."""
    recipe: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(TOP_KEYS), unique=True)):
        if key == "version":
            recipe[key] = draw(st.one_of(st.just(1), SCALARS))
        elif key == "passes":
            recipe[key] = draw(st.one_of(st.lists(pass_entries(), max_size=4), STRUCTURES))
        elif key == "budgets":
            recipe[key] = draw(st.one_of(st.dictionaries(st.sampled_from(BUDGET_KEYS), SCALARS), STRUCTURES))
        elif key == "measure":
            recipe[key] = draw(st.one_of(st.dictionaries(st.sampled_from(MEASURE_KEYS), STRUCTURES), STRUCTURES))
        elif key == "model_options":
            recipe[key] = draw(st.one_of(st.dictionaries(st.sampled_from(OPTION_KEYS), STRUCTURES), STRUCTURES))
        else:
            recipe[key] = draw(st.one_of(st.text(max_size=30), STRUCTURES))
    if draw(st.booleans()):
        recipe[draw(st.text(max_size=10))] = draw(STRUCTURES)
    return recipe


#: YAML that no generated structure produces: tags, anchors, merges, odd documents.
FRAGMENTS = st.sampled_from(
    [
        "!!python/object/apply:os.system ['touch /tmp/pwned']",
        "!!python/name:os.system",
        "!!binary aGVsbG8=",
        "!!timestamp 2001-12-14t21:59:43.10-05:00",
        "!!set {a, b}",
        "!!omap [a: 1, b: 2]",
        "&a [*a]",
        "&a {x: *a}",
        "{<<: {a: 1}, b: 2}",
        "*undefined",
        "? [a, b]\n: c",
        "--- 1\n--- 2",
        "%YAML 1.1\n---\na: 1",
        "[" * 30 + "]" * 30,
        "\t",
        "\x00",
        "\ufeffversion: 1",
        "version: 1\nversion: 1",
    ]
)


def parse(path: Path, text: str) -> None:
    """``load_recipe`` on ``text``: only the documented errors, and quickly."""
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    started = time.perf_counter()
    try:
        load_recipe(path)
    except (RecipeError, UsageError) as exc:
        assert exc.message
    finally:
        assert time.perf_counter() - started < 1.0, f"took {time.perf_counter() - started:.2f} s"


@given(text=st.text(max_size=400))
def test_random_text(tmp_path: Path, text: str) -> None:
    parse(tmp_path / "recipe.yaml", text)


@given(data=STRUCTURES)
def test_random_structures(tmp_path: Path, data: Any) -> None:
    parse(tmp_path / "recipe.yaml", yaml.safe_dump(data))


@given(recipe=recipes())
def test_recipe_shaped_mappings(tmp_path: Path, recipe: dict[str, Any]) -> None:
    parse(tmp_path / "recipe.yaml", yaml.safe_dump(recipe, allow_unicode=True))


@given(recipe=recipes(), fragment=FRAGMENTS, key=st.sampled_from([*TOP_KEYS, "extra"]))
def test_yaml_features_in_place_of_a_value(tmp_path: Path, recipe: dict[str, Any], fragment: str, key: str) -> None:
    recipe.pop(key, None)
    body = yaml.safe_dump(recipe, allow_unicode=True) if recipe else ""
    indented = fragment.replace("\n", "\n  ")
    parse(tmp_path / "recipe.yaml", f"{body}{key}: {indented}\n" if "\n" not in fragment else f"{body}{fragment}\n")
