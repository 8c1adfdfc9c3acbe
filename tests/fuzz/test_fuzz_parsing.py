"""Property tests for the small value languages (compressor/parsing.py): any input either parses to a sane
value or is refused with a UsageError naming it; nothing else is ever raised."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compressor.errors import UsageError
from compressor.parsing import (
    parse_assignments,
    parse_count,
    parse_duration,
    parse_int_list,
    parse_name_list,
    parse_percent,
    parse_shape,
    parse_shapes,
    parse_size,
)

#: Text that looks like the languages (digits, units, separators) as well as anything at all.
ALPHABET = st.sampled_from([*"0123456789.,x*=-_ %kKmMgGbBiIsShH\t\n", "KB", "MiB", "ms", "min", "1e9", "nan"])
TEXT = st.one_of(st.text(), st.lists(ALPHABET, max_size=30).map("".join), st.text(alphabet="0123456789", min_size=300))
NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
PARSERS: dict[str, Callable[[Any], Any]] = {
    "size": parse_size,
    "count": parse_count,
    "duration": parse_duration,
    "percent": parse_percent,
    "shape": parse_shape,
    "shapes": parse_shapes,
    "int_list": lambda text: parse_int_list(text, "--batch"),
    "assignments": lambda text: parse_assignments(text, "shape"),
    "name_list": parse_name_list,
}


def check(value: Any, name: str) -> None:
    """The parsed value is of the documented kind and range."""
    if name in ("size", "count"):
        assert isinstance(value, int) and value >= 0
    elif name == "duration":
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    elif name == "percent":
        assert 0.0 <= value <= 1.0
    elif name == "shape":
        assert value and all(isinstance(d, int) and d > 0 for d in value)
    elif name == "shapes":
        assert all(all(d > 0 for d in dims) for dims in value.values())
    elif name == "int_list":
        assert value and all(v > 0 for v in value)


#: Parsers that also take numbers (recipe and pyproject values may be YAML/TOML numbers).
NUMERIC = {"size", "count", "duration", "percent"}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(data=st.data())
def test_parsers_refuse_cleanly_or_return_sane_values(name: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(TEXT, NUMBERS) if name in NUMERIC else TEXT)
    try:
        parsed = PARSERS[name](value)
    except UsageError as exc:
        assert exc.message
        return
    check(parsed, name)


@given(st.integers(0, 10**6), st.sampled_from(["", "B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]), st.booleans())
def test_sizes_round_trip(number: int, unit: str, space: bool) -> None:
    factor = {"": 1, "B": 1, "KB": 1000, "MB": 10**6, "GB": 10**9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]
    assert parse_size(f"{number}{' ' if space else ''}{unit}") == number * factor


@given(st.lists(st.integers(1, 4096), min_size=1, max_size=6), st.sampled_from(["x", "*", "X"]))
def test_shapes_round_trip(dims: list[int], joiner: str) -> None:
    assert parse_shape(joiner.join(map(str, dims))) == tuple(dims)
    assert parse_shapes(f"input={'x'.join(map(str, dims))}") == {"input": tuple(dims)}


@given(st.integers(1, 10**6), st.sampled_from([("s", 1), ("ms", 0.001), ("m", 60), ("min", 60), ("h", 3600)]))
def test_durations_round_trip(number: int, unit: tuple[str, float]) -> None:
    assert parse_duration(f"{number}{unit[0]}") == pytest.approx(number * unit[1])


@given(st.integers(0, 100))
def test_percents_round_trip(percent: int) -> None:
    assert parse_percent(f"{percent}%") == pytest.approx(percent / 100)
    assert parse_percent(percent / 100) == pytest.approx(percent / 100)
