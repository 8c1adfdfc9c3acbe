"""The ``compressor`` entry point: the click group, and the one place exceptions become exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from compressor import __version__, limits
from compressor.cli.lazy import LazyGroup
from compressor.errors import CompressorError, ExitCode, InputError
from compressor.report.envelope import dumps, envelope

#: Built-in commands, imported only when run (or listed by --help): `compressor check` loads no other command.
COMMANDS = {
    "inspect": "compressor.cli.inspect_cmd:inspect",
    "bench": "compressor.cli.bench:bench",
    "compare": "compressor.cli.compare:compare",
    "quantize": "compressor.cli.quantize:quantize",
    "run": "compressor.cli.run_cmd:run",
    "check": "compressor.cli.check:check",
    "history": "compressor.cli.history_cmd:history",
    "optimize": "compressor.cli.optimize_cmd:optimize",
    "cache": "compressor.cli.cache_cmd:cache",
    "plugins": "compressor.cli.plugins_cmd:plugins",
}

#: The error type an abrupt end (a timeout, Ctrl-C) reports in the JSON envelope.
_ABRUPT_KINDS = {ExitCode.TIMEOUT: "CommandTimeout", ExitCode.INTERRUPTED: "Interrupted"}


def _plugin_commands(group: click.Group) -> None:
    """Let plugins add their commands; runs only when a non-built-in command is used or commands are listed."""
    from compressor.plugins import add_plugin_commands

    add_plugin_commands(group)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    on_demand=_plugin_commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="compressor")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Make trained models smaller and faster, and prove what it cost."""


def _one_line(text: str) -> str:
    """An error is one line, whatever it quotes (a value given with a line break in it, a tool's message)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _report_error(argv: list[str], code: ExitCode, message: str, hint: str | None, kind: str) -> None:
    from compressor.cli import console

    limits.hold_if_ending()
    if "--json" in argv:
        command = next((a for a in argv if not a.startswith("-")), "compressor")
        error = {"type": kind, "message": message, "hint": hint}
        click.echo(dumps(envelope(command, None, code, error)), nl=False)
    console.err.print(f"error: {_one_line(message)}", style="bold red", highlight=False, markup=False, soft_wrap=True)
    if hint:
        console.err.print(f"hint: {_one_line(hint)}", style="yellow", highlight=False, markup=False, soft_wrap=True)


def _os_error(exc: OSError) -> CompressorError:
    """A file-system failure as a one-line input error (disk full, read-only, permission denied...)."""
    from compressor.outputs import write_error

    return write_error(exc, Path(exc.filename or ".").parent) or InputError(f"{exc.strerror or exc}: {exc.filename}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors print one line (and a hint), tracebacks on --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("COMPRESSOR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]  # accepted anywhere on the line, not only before the command
    limits.report = lambda code, message, hint: _report_error(args, code, message, hint, _ABRUPT_KINDS[code])
    try:
        with limits.handle_abrupt_ends():
            result = cli.main(args=args, prog_name="compressor", standalone_mode=False)
        code = ExitCode(result) if isinstance(result, int) else ExitCode.OK
    except click.exceptions.Exit as exc:
        code = ExitCode(exc.exit_code)
    except click.ClickException as exc:
        code = ExitCode.USAGE_ERROR
        _report_error(args, code, exc.format_message(), "see --help", "UsageError")
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = ExitCode.INTERRUPTED
        _report_error(args, code, "interrupted", None, "Interrupted")
    except CompressorError as exc:
        if debug:
            traceback.print_exc()
        code = exc.exit_code
        _report_error(args, code, exc.message, exc.hint, type(exc).__name__)
    except OSError as exc:
        if debug:
            traceback.print_exc()
        error = _os_error(exc)
        code = error.exit_code
        _report_error(args, code, error.message, error.hint, type(error).__name__)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        code = ExitCode.INTERNAL_ERROR
        message = (
            f"internal error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        _report_error(
            args,
            code,
            message,
            "this is a bug in compressor: rerun with --debug and report it",
            "InternalError",
        )
    finally:
        limits.cancel_timeout()
    limits.hold_if_ending()
    sys.stdout.flush()
    return int(code)


def run_main() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())
