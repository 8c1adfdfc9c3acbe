"""Parsers for the small value languages of the command line and recipes: sizes, shapes, lists, percents."""

from __future__ import annotations

import math
import re

from compressor.errors import UsageError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/\-\[\]]+$")


def parse_size(text: str | int | float) -> int:
    """'25MB' -> 25000000, '1.5GiB' -> 1610612736, 1024 -> 1024. Decimal and binary units."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise UsageError(f"size must be a finite number that is not negative: {text}")
        return int(text)
    match = _SIZE_RE.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise UsageError(
            f"cannot read size '{text}': use a number with a unit, e.g. 25MB, 512KiB, 1.5GB "
            f"(units: B, KB, MB, GB, KiB, MiB, GiB)"
        )
    return int(_finite(float(match.group(1)) * _SIZE_UNITS[unit], "size", text))


def _finite(value: float, what: str, text: object) -> float:
    """``value``, refused when a number too long to represent made it infinite."""
    if not math.isfinite(value):
        raise UsageError(f"{what} '{str(text)[:40]}' is too large")
    return value


_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)\s*$")
_COUNT_UNITS = {"": 1, "k": 1000, "m": 1000**2, "b": 1000**3, "g": 1000**3}


def parse_count(text: str | int | float, name: str = "count") -> int:
    """'5000000' -> 5000000, '5M' -> 5000000, '1.5B' -> 1500000000, '250k' -> 250000. Not negative."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0 or text != int(text):
            raise UsageError(f"{name} must be a whole number that is not negative, got {text}")
        return int(text)
    match = _COUNT_RE.match(str(text))
    if not match:
        raise UsageError(f"cannot read {name} '{text}': use a whole number, optionally with k, M or B (e.g. 5M)")
    return round(_finite(float(match.group(1)) * _COUNT_UNITS[match.group(2).lower()], name, text))


def parse_duration(text: str | int | float) -> float:
    """'20m' -> 1200.0, '90s' -> 90.0, '1.5h' -> 5400.0, 30 -> 30.0 (seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", str(text).lower())
        if not match or match.group(2) not in _DURATION_UNITS:
            raise UsageError(f"cannot read duration '{text}': use e.g. 90s, 20m, 1.5h")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"duration must be a finite positive number of seconds: {str(text)[:40]}")
    return seconds


def parse_percent(text: str | int | float, name: str = "value") -> float:
    """'1%' -> 0.01, '0.5%' -> 0.005, 0.02 -> 0.02. Must lie in [0, 1]."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"cannot read {name} '{text}': use a percentage like 1% or a fraction like 0.01") from None
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{name} must be between 0% and 100%, got {text}")
    return value


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224). Every dim a positive integer."""
    parts = str(text).strip().lower().replace("*", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"cannot read shape '{text}': use dims joined by x, e.g. 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(f"shape '{text}' must have positive dims, e.g. 1x128")
    return dims


def parse_assignments(items: str | list[str] | tuple[str, ...], what: str) -> dict[str, str]:
    """'a=1,b=2' or ['a=1', 'b=2'] -> {'a': '1', 'b': '2'}; names must be plain identifiers."""
    pieces = [items] if isinstance(items, str) else list(items)
    result: dict[str, str] = {}
    for piece in pieces:
        for item in str(piece).split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name or not value or not _NAME_RE.match(name):
                raise UsageError(f"cannot read {what} '{item.strip()}': use name=value, e.g. input=1x128")
            result[name] = value
    return result


def parse_shapes(items: str | list[str] | tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """'input=1x1x8x8,mask=1x128' -> {'input': (1, 1, 8, 8), 'mask': (1, 128)}."""
    return {name: parse_shape(value) for name, value in parse_assignments(items, "shape").items()}


def parse_int_list(text: str, name: str) -> list[int]:
    """'1,8' -> [1, 8]; every item a positive integer."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"cannot read {name} '{text}': use positive integers separated by commas, e.g. 1,8") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{name} must be positive integers, e.g. 1,8 (got '{text}')")
    return values


def parse_name_list(text: str | None) -> list[str]:
    """'Conv,MatMul' -> ['Conv', 'MatMul']; empty or None -> []."""
    if not text:
        return []
    return [v.strip() for v in str(text).split(",") if v.strip()]


def format_size(num_bytes: float) -> str:
    """Human size in decimal units: 615.2 KB, 22.8 MB."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(num_bytes) >= factor:
            return f"{num_bytes / factor:.1f} {unit}"
    return f"{int(num_bytes)} B"
