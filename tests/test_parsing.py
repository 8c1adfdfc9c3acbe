"""The small value languages: sizes, durations, percents, shapes, lists."""

from __future__ import annotations

import pytest

from compressor.errors import UsageError
from compressor.parsing import (
    format_size,
    parse_duration,
    parse_int_list,
    parse_percent,
    parse_shape,
    parse_shapes,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25MB", 25_000_000),
        ("25 mb", 25_000_000),
        ("1.5GB", 1_500_000_000),
        ("512KiB", 524_288),
        ("2MiB", 2_097_152),
        ("1GiB", 1_073_741_824),
        ("100", 100),
        ("100B", 100),
        (4096, 4096),
    ],
)
def test_sizes_in_decimal_and_binary_units(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-5MB", "25XB", "1e3", "twelve", "5 M B"])
def test_bad_sizes_name_the_value(text: str) -> None:
    with pytest.raises(UsageError, match="size"):
        parse_size(text)


def test_durations() -> None:
    assert parse_duration("20m") == 1200.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("1.5h") == 5400.0
    with pytest.raises(UsageError):
        parse_duration("0s")
    with pytest.raises(UsageError):
        parse_duration("soon")


def test_percents_and_fractions() -> None:
    assert parse_percent("1%") == pytest.approx(0.01)
    assert parse_percent("0.5%") == pytest.approx(0.005)
    assert parse_percent(0.02) == pytest.approx(0.02)
    for bad in ("101%", "-1%", "abc"):
        with pytest.raises(UsageError):
            parse_percent(bad, "--max-drop")


def test_shapes() -> None:
    assert parse_shape("1x3x224x224") == (1, 3, 224, 224)
    assert parse_shapes(["input=1x1x8x8", "mask=1x128"]) == {"input": (1, 1, 8, 8), "mask": (1, 128)}
    assert parse_shapes("a=2x3,b=4") == {"a": (2, 3), "b": (4,)}
    for bad in ("1x0", "1xq", "x"):
        with pytest.raises(UsageError, match="shape"):
            parse_shape(bad)
    with pytest.raises(UsageError, match="name=value"):
        parse_shapes("1x128")


def test_int_lists() -> None:
    assert parse_int_list("1,8", "--batch") == [1, 8]
    for bad in ("0", "1,-2", "a", ""):
        with pytest.raises(UsageError, match="--batch"):
            parse_int_list(bad, "--batch")


def test_format_size() -> None:
    assert format_size(615_200) == "615.2 KB"
    assert format_size(22_800_000) == "22.8 MB"
    assert format_size(12) == "12 B"
