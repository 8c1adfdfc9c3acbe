"""Calling Intel Neural Compressor safely: imports, its logger, and the traps of 3.10 that we guard.

* **Import order.** Several INC modules (``weight_only/rtn.py``, ``gptq.py``, ``teq.py``, ``quantization/config.py``,
  ``utils/utility.py``) run ``if is_transformers_imported(): import transformers`` at import time, and later test
  ``is_transformers_imported()`` again before using the name. When transformers is imported *after* them (another
  plugin in the same process, a user's factory), the second test is true and the name is unbound:
  ``NameError: name 'transformers' is not defined``. :func:`bind_transformers` binds the name in those modules
  before every INC call, so the order no longer matters and transformers is never imported just for INC.
* **accelerate.** INC's weight-only algorithms import accelerate without declaring it; :func:`require` names it.
* **Logging.** INC logs every step at INFO level to stderr through its own handler (and ``--json`` must keep
  stdout clean). :func:`captured` replaces that handler for the duration of a call, keeps the records (an export
  failure is only *logged* by INC, then reported as "Check the logs above"), and restores it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from compressor.errors import MissingDependencyError

#: INC modules that bind ``transformers`` at import time only when it is already imported.
_BINDS_TRANSFORMERS = (
    "neural_compressor.torch.algorithms.weight_only.rtn",
    "neural_compressor.torch.algorithms.weight_only.gptq",
    "neural_compressor.torch.algorithms.weight_only.teq",
    "neural_compressor.torch.quantization.config",
    "neural_compressor.torch.utils.utility",
)
INSTALL_HINT = (
    "pip install neural-compressor-pt==3.10 torchao==0.18.0 accelerate==1.15.0 (or -e plugins/compressor-inc)"
)


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def require(*packages: str) -> None:
    """Fail with exit 6 when a library INC needs is not installed (checked without importing it)."""
    missing = [name for name in packages if not installed(name)]
    if missing:
        raise MissingDependencyError(
            f"Intel Neural Compressor needs {', '.join(missing)}, which is not installed", hint=INSTALL_HINT
        )


def bind_transformers() -> None:
    """Give INC's modules the ``transformers`` name they test for, when it was imported after them."""
    loaded = sys.modules.get("transformers")
    if loaded is None:
        return
    for name in _BINDS_TRANSFORMERS:
        module = sys.modules.get(name)
        if module is not None and not hasattr(module, "transformers"):
            module.transformers = loaded


class _Keep(logging.Filter):
    """A logger filter that keeps records and stops them (filters survive INC replacing its handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


class Logs:
    """What INC logged during a call."""

    def __init__(self, keep: _Keep) -> None:
        self._keep = keep

    def messages(self, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self._keep.records if r.levelno >= level]

    def errors(self) -> list[str]:
        return self.messages(logging.ERROR)


#: Loggers quieted while INC runs: torch's exporter, and torchao (it warns about CUDA kernels it cannot load).
_QUIET = ("torch", "torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torchao")


@contextlib.contextmanager
def captured() -> Iterator[Logs]:
    """Run INC with its log records kept (not printed), Python warnings off and stray prints (stdout and stderr,
    Python level) dropped.

    INC's logger is created on first use and then replaces its handlers with a stderr one, so the records are
    caught by a logger *filter*, which that does not remove, installed before INC is imported.
    """
    require("neural_compressor", "torchao")
    inc_logger = logging.getLogger("neural_compressor")
    keep = _Keep()
    inc_logger.addFilter(keep)
    others = [logging.getLogger(n) for n in _QUIET]
    levels = [lg.level for lg in others]
    try:
        with (  # torch.export prints the graph it failed on to stderr; INC prints progress to stdout
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            for lg in others:
                lg.setLevel(logging.ERROR)
            import neural_compressor.torch  # noqa: F401  (its import logs: caught above)

            bind_transformers()
            yield Logs(keep)
    finally:
        inc_logger.removeFilter(keep)
        for lg, level in zip(others, levels, strict=True):
            lg.setLevel(level)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    for dist in ("neural-compressor-pt", "neural-compressor"):
        with contextlib.suppress(PackageNotFoundError):
            return dist_version(dist)
    return "unknown"


def first_line(exc: BaseException) -> str:
    from compressor_torch.models import first_line as torch_first_line

    return torch_first_line(exc)


def deepest_reason(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (the specific one), at most 300 characters."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for candidate in reversed(seen):
        line = first_line(candidate)
        if line:
            return f"{type(candidate).__name__}: {line}"[:300]
    return type(exc).__name__


def module_types(module: Any) -> set[str]:
    """Class names of the leaf modules of ``module``."""
    return {type(m).__name__ for m in module.modules() if not list(m.children())}
