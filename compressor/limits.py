"""Resource limits and interruption: ``--timeout`` for long commands, and Ctrl-C.

Both end the process the same way: report what the command was doing, stop the processes it started, remove
its temporary files (outputs are published by rename, so nothing half-written is left at any target) and exit
with ``ExitCode.TIMEOUT`` or ``ExitCode.INTERRUPTED``. Ctrl-C does not raise ``KeyboardInterrupt``: raised
inside a native library's callback into Python (ONNX Runtime's calibration, pybind11) it aborts the interpreter.

A timeout is handed to the main thread (a signal), so that nothing else runs while it cleans up; only when the
main thread is stuck in a long native call that Python cannot interrupt does the timer thread end the process
itself, the main thread held back from reporting its own failure (:func:`hold_if_ending`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

from compressor.errors import ExitCode

_activity = "starting"
_timer: threading.Timer | None = None
#: The signal that hands an abrupt end to the main thread, and how long the timer waits for it to take over.
HANDOVER_SIGNAL = signal.SIGUSR1
HANDOVER_WAIT_S = 2.0
_handover: tuple[ExitCode, str, str | None] | None = None
_main_thread_listens = False


def _print_error(code: ExitCode, message: str, hint: str | None) -> None:
    print(f"error: {message}" + (f"\nhint: {hint}" if hint else ""), file=sys.stderr)


#: How a timeout or an interruption is reported (one error line, the JSON envelope with --json); the CLI sets it.
report: Callable[[ExitCode, str, str | None], None] = _print_error


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


#: The thread ending the process (a timeout's timer, or the main thread on Ctrl-C), once one is.
_ender: int | None = None
_ending = threading.Lock()


def end_process(code: ExitCode, message: str, hint: str | None) -> NoReturn:
    """Report, stop the processes this one started (build workers, a local Ray instance), remove this
    process's temporary files and exit with ``code`` at once."""
    global _ender
    from compressor.outputs import remove_active

    if not _ending.acquire(blocking=False):  # another thread is ending it already
        _wait_for_the_end()
    _ender = threading.get_ident()
    try:
        report(code, message, hint)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        _kill_children()
        remove_active()
        os._exit(int(code))


def hold_if_ending() -> None:
    """Wait here for the end if another thread is ending the process: the work it removes files from fails
    meanwhile, and that failure must not be reported nor the process exit with its code."""
    if _ending.locked() and _ender != threading.get_ident():
        _wait_for_the_end()


def _wait_for_the_end() -> NoReturn:
    while True:
        time.sleep(60)


def _kill_children() -> None:
    """SIGKILL every descendant: they would outlive this process (Ray's agents do) or finish work for nobody."""
    import psutil

    with contextlib.suppress(psutil.Error):
        descendants = psutil.Process().children(recursive=True)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(descendants, timeout=5)


def _expire(seconds: float) -> None:
    end = (ExitCode.TIMEOUT, f"timed out after {seconds:g} s while {_activity}",
           "give a larger --timeout; nothing was written")  # fmt: skip
    _hand_to_main_thread(*end)
    end_process(*end)


def _hand_to_main_thread(code: ExitCode, message: str, hint: str | None) -> None:
    """Ask the main thread to end the process and wait for it; return if it does not take over in time."""
    global _handover
    main = threading.main_thread()
    if not _main_thread_listens or main.ident is None:
        return
    _handover = (code, message, hint)
    signal.pthread_kill(main.ident, HANDOVER_SIGNAL)  # wakes it from a blocking system call too
    deadline = time.monotonic() + HANDOVER_WAIT_S
    while time.monotonic() < deadline:
        if _ending.locked():
            _wait_for_the_end()
        time.sleep(0.01)


def _handed_over(signum: int, frame: FrameType | None) -> None:
    if _handover is not None:
        end_process(*_handover)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    end_process(ExitCode.INTERRUPTED, "interrupted", None)


@contextlib.contextmanager
def handle_abrupt_ends() -> Iterator[None]:
    """While inside, Ctrl-C (SIGINT) ends the process like a timeout does, instead of raising; and the main
    thread takes over a timeout's end."""
    global _main_thread_listens
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler)
                for sig, handler in ((signal.SIGINT, _interrupted), (HANDOVER_SIGNAL, _handed_over))}  # fmt: skip
    _main_thread_listens = True
    try:
        yield
    finally:
        _main_thread_listens = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)
