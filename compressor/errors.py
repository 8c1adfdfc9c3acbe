"""The public exit codes and the exception tree that maps onto them.

Every error a user can cause is a :class:`CompressorError` subclass carrying a one-line message and,
where it helps, a hint. The CLI entry point (``compressor.cli.main``) is the one place that turns these
into exit codes; nothing else calls ``sys.exit``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``compressor`` command. Stable: scripts and CI gates rely on them."""

    OK = 0
    #: A budget, baseline or accuracy constraint was checked and is not met.
    CONSTRAINT_NOT_MET = 1
    #: The command line is wrong: unknown option, missing argument, bad option value.
    USAGE_ERROR = 2
    #: An input cannot be used: model, dataset, recipe, baseline or output path.
    INPUT_ERROR = 3
    #: A pass ran and failed, or its output did not verify.
    PASS_FAILED = 4
    #: A plugin failed to load or misbehaved.
    PLUGIN_ERROR = 5
    #: Something the command needs is not available here: a library, a device, an execution provider.
    ENVIRONMENT_ERROR = 6
    #: A ``--timeout`` ran out.
    TIMEOUT = 7
    #: A bug in compressor: please report it (rerun with ``--debug`` for the traceback).
    INTERNAL_ERROR = 70
    #: Interrupted by the user (Ctrl-C / SIGINT).
    INTERRUPTED = 130


class CompressorError(Exception):
    """Base of all errors shown to users as one line plus an optional hint."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CompressorError):
    """The command line or an option value is wrong."""

    exit_code = ExitCode.USAGE_ERROR


class InputError(CompressorError):
    """A model, dataset, recipe or path given by the user cannot be used."""

    exit_code = ExitCode.INPUT_ERROR


class ModelLoadError(InputError):
    """A model file or folder is missing, corrupt or of an unknown format."""


class ModelRunError(InputError):
    """A model loaded but failed on the inputs it was given."""


class DatasetError(InputError):
    """A dataset is missing, malformed or does not match the model's inputs."""


class RecipeError(InputError):
    """A recipe file is malformed or names unknown passes or options."""


class OutputPathError(InputError):
    """An output path is unusable: it is the input, not writable, or escapes its folder."""


class ConfigError(InputError):
    """A ``[tool.compressor.*]`` section of pyproject.toml is malformed; the message names the key."""


class BaselineError(InputError):
    """A baseline file is missing, not valid JSON, not a compressor baseline, or has no entry for the model."""


class HistoryError(InputError):
    """A history store is not an SQLite database, not a compressor store, or has no history for the model."""


class PassError(CompressorError):
    """A pass failed; the message names the pass and the step."""

    exit_code = ExitCode.PASS_FAILED

    def __init__(self, pass_name: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"pass '{pass_name}' failed: {message}", hint)
        self.pass_name = pass_name


class PluginError(CompressorError):
    """A plugin could not be loaded or registered something invalid."""

    exit_code = ExitCode.PLUGIN_ERROR


class MissingDependencyError(CompressorError):
    """A library, device or execution provider the command needs is not available."""

    exit_code = ExitCode.ENVIRONMENT_ERROR


class ConstraintNotMet(CompressorError):
    """A budget or accuracy constraint was checked and failed. The result is still reported."""

    exit_code = ExitCode.CONSTRAINT_NOT_MET


class CommandTimeout(CompressorError):
    """A ``--timeout`` ran out."""

    exit_code = ExitCode.TIMEOUT


def unknown_name_error(kind: str, name: str, valid: Iterable[str], error: type[CompressorError]) -> CompressorError:
    """Build the standard "Unknown <kind> 'x'. Valid <kind>s: a, b, c" error."""
    choices = ", ".join(sorted(valid)) or "(none registered)"
    plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
    return error(f"Unknown {kind} '{name}'. Valid {plural}: {choices}")
