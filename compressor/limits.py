"""Resource limits: ``--timeout`` for long commands, and what the command is doing when it runs out.

A timer thread ends the process when the time is up, even inside a long native call (a quantizer, a
session build) that Python cannot interrupt: it reports the step in progress, removes this process's
temporary files (outputs are published by rename, so nothing half-written is left at any target) and
exits with ``ExitCode.TIMEOUT``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from compressor.errors import ExitCode

_activity = "starting"
_timer: threading.Timer | None = None


def _print_error(message: str, hint: str) -> None:
    print(f"error: {message}\nhint: {hint}", file=sys.stderr)


#: How the timeout is reported (one error line, the JSON envelope with --json); the CLI sets it.
report: Callable[[str, str], None] = _print_error


def set_activity(text: str) -> None:
    """Record what the command is doing now (shown if it times out)."""
    global _activity
    _activity = text


def activity() -> str:
    return _activity


def start_timeout(seconds: float) -> None:
    """End the process with ExitCode.TIMEOUT after ``seconds``, unless it finishes first."""
    global _timer
    cancel_timeout()
    _timer = threading.Timer(seconds, _expire, args=(seconds,))
    _timer.daemon = True
    _timer.start()


def cancel_timeout() -> None:
    global _timer
    if _timer is not None:
        _timer.cancel()
        _timer = None


def _expire(seconds: float) -> None:
    from compressor.outputs import remove_active

    try:
        report(f"timed out after {seconds:g} s while {_activity}", "give a larger --timeout; nothing was written")
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        remove_active()
        os._exit(int(ExitCode.TIMEOUT))
