"""The versioned JSON envelope every ``--json`` output and JSON report uses.

Shape (version 1)::

    {"schema": "compressor/result", "version": 1, "command": "bench", "ok": true, "exit_code": 0,
     "result": {...command specific...}, "error": null | {"message": ..., "hint": ..., "type": ...},
     "created": "2026-11-29T10:00:00+00:00"}
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from compressor.errors import ExitCode

SCHEMA = "compressor/result"
VERSION = 1


def envelope(
    command: str, result: Any, exit_code: ExitCode = ExitCode.OK, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "command": command,
        "ok": exit_code == ExitCode.OK,
        "exit_code": int(exit_code),
        "result": result,
        "error": error,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, tuples lists, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "to_dict"):
        return _clean(value.to_dict())
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(_clean(data), indent=2, allow_nan=False) + "\n"
