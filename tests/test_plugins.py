"""The plugin system, with real plugin distributions built at test time.

Each test writes ``*.dist-info`` folders (METADATA and entry_points.txt) and plugin modules into a temporary
folder and runs ``python -m compressor`` in a subprocess with that folder on PYTHONPATH, so plugins are found
through ``importlib.metadata`` exactly as installed ones are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compressor import __version__
from compressor.errors import ExitCode
from tests.conftest import DIGITS, CliResult, file_digest, run_subprocess

#: A healthy plugin: a trivial ONNX pass and a click command.
GOOD_PLUGIN = '''
import shutil

import click

from compressor import hookimpl
from compressor.passes import Pass, PassConfig, PassResult


class IdentityConfig(PassConfig):
    note: str = "copied unchanged"


class Identity(Pass):
    name = "demo.identity"
    summary = "copies the model unchanged"
    input_formats = ("onnx",)
    output_format = "onnx"
    Config = IdentityConfig

    def run(self, artifact, config, ctx):
        target = ctx.workdir / "model.onnx"
        shutil.copyfile(artifact.path, target)
        return PassResult(artifact.derive(target, self.record(config, [config.note])), [config.note])


@hookimpl
def register_passes(register):
    register(Identity)


@click.command("demo-hello")
@click.argument("name", default="world")
def hello(name):
    """Say hello from the demo plugin."""
    click.echo(f"hello {name} from demo")


@hookimpl
def register_commands(cli):
    cli.add_command(hello)
'''

PASS_TEMPLATE = """
from compressor import hookimpl
from compressor.passes import Pass


class {cls}(Pass):
    name = {name!r}
    summary = {summary!r}
    input_formats = ("onnx",)
    output_format = "onnx"
"""

#: Broken plugins: (distribution name, module source, entry point target or None, fragment of the error shown).
BROKEN_PLUGINS = {
    "import-raises": (
        "raise RuntimeError('boom at import')\n",
        None,
        "RuntimeError: boom at import",
    ),
    "module-missing": ("", "no_such_module_anywhere", "ModuleNotFoundError"),
    "register-hook-raises": (
        "from compressor import hookimpl\n\n@hookimpl\ndef register_passes(register):\n"
        "    raise ValueError('boom in hook')\n",
        None,
        "register_passes failed: ValueError: boom in hook",
    ),
    "registers-then-raises": (
        PASS_TEMPLATE.format(cls="Half", name="half.registered", summary="half")
        + "\n@hookimpl\ndef register_passes(register):\n    register(Half)\n    raise ValueError('boom after one')\n",
        None,
        "register_passes failed: ValueError: boom after one",
    ),
    "duplicates-builtin-pass": (
        PASS_TEMPLATE.format(cls="Impostor", name="quantize.dynamic", summary="impostor")
        + "\n@hookimpl\ndef register_passes(register):\n    register(Impostor)\n",
        None,
        "'quantize.dynamic', already registered by 'builtin:onnx'",
    ),
    "duplicates-plugin-pass": (
        PASS_TEMPLATE.format(cls="Copycat", name="demo.identity", summary="copycat")
        + "\n@hookimpl\ndef register_passes(register):\n    register(Copycat)\n",
        None,
        "'demo.identity', already registered by 'demo'",
    ),
    "pass-without-name": (
        "from compressor import hookimpl\n\nclass Nameless:\n    pass\n\n"
        "@hookimpl\ndef register_passes(register):\n    register(Nameless)\n",
        None,
        "without a name",
    ),
    "commands-hook-raises": (
        "import click\nfrom compressor import hookimpl\n\n@click.command('half-command')\ndef half():\n    pass\n\n"
        "@hookimpl\ndef register_commands(cli):\n    cli.add_command(half)\n"
        "    raise RuntimeError('boom in commands')\n",
        None,
        "register_commands failed: RuntimeError: boom in commands",
    ),
}

#: Names a failed plugin tried to register; none of them may be usable.
HALF_REGISTERED = {"registers-then-raises": ("passes", "half.registered")}
HEAVY = ("torch", "transformers", "tensorflow", "neural_compressor", "optimum", "onnxruntime", "onnx", "onnxslim")


def add_dist(site: Path, dist: str, version: str, source: str, target: str | None = None) -> str:
    """Write a plugin distribution ``dist`` into ``site``; its entry point is named ``dist``. Returns the module."""
    module = "plugin_" + dist.replace("-", "_")
    if source:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[compressor.plugins]\n{dist} = {target or module}\n")
    return target or module


def plugin_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COMPRESSOR_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return env


def compressor(site: Path, *args: object, cwd: Path | None = None) -> CliResult:
    return run_subprocess(*(str(a) for a in args), cwd=cwd or site.parent, env=plugin_env(site))


def plugins_json(site: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """``compressor plugins --json``: plugins by name, and the passes table."""
    result = compressor(site, "plugins", "--json")
    assert result.code == ExitCode.OK, result.output
    assert "Traceback" not in result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True
    plugins = {p["name"]: p for p in envelope["result"]["plugins"]}
    return plugins, envelope["result"]["passes"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder for plugin distributions, with the good ``demo`` plugin already in it."""
    folder = tmp_path / "site"
    folder.mkdir()
    add_dist(folder, "demo", "1.2.3", GOOD_PLUGIN)
    return folder


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    for name in ("digits_cnn.onnx", "calib.npz"):
        (folder / name).write_bytes((DIGITS / name).read_bytes())
    return folder


def assert_builtins_healthy(plugins: dict[str, dict], passes: dict[str, dict]) -> None:
    onnx_plugin, data_plugin = plugins["builtin:onnx"], plugins["builtin:data"]
    assert onnx_plugin["error"] is None and data_plugin["error"] is None
    assert onnx_plugin["source"] == data_plugin["source"] == "built-in"
    assert onnx_plugin["version"] == data_plugin["version"] == __version__
    registered = onnx_plugin["registered"]
    assert registered["loaders"] == ["onnx"]
    assert registered["runners"] == ["onnxruntime"]
    assert {"quantize.dynamic", "quantize.static", "quantize.int4", "convert.fp16", "graph.slim"} <= set(
        registered["passes"]
    )
    assert {"npz", "python"} <= set(data_plugin["registered"]["datasets"])
    assert "accuracy" in data_plugin["registered"]["metrics"]
    for name in registered["passes"]:
        assert passes[name]["input_formats"] == ["onnx"], name
    assert passes["quantize.dynamic"]["summary"].startswith("dynamic INT8")
    assert "per_channel" in passes["quantize.dynamic"]["options"]


def assert_demo_healthy(plugins: dict[str, dict], passes: dict[str, dict]) -> None:
    demo = plugins["demo"]
    assert demo["error"] is None
    assert demo["version"] == "1.2.3"
    assert demo["source"] == "demo (plugin_demo)"
    assert demo["registered"] == {"passes": ["demo.identity"], "commands": ["demo-hello"]}
    assert passes["demo.identity"] == {
        "summary": "copies the model unchanged",
        "input_formats": ["onnx"],
        "output_format": "onnx",
        "options": ["note"],
    }


# --- (e) built-ins --------------------------------------------------------------------------------------------


def test_builtins_are_listed_with_what_they_register(tmp_path: Path) -> None:
    empty_site = tmp_path / "empty-site"
    empty_site.mkdir()
    plugins, passes = plugins_json(empty_site)
    assert list(plugins)[:2] == ["builtin:onnx", "builtin:data"]
    assert_builtins_healthy(plugins, passes)
    table = compressor(empty_site, "plugins", "--passes")
    assert table.code == ExitCode.OK, table.output
    for fragment in ("builtin:onnx", "builtin:data", "quantize.dynamic", "onnxruntime", "npz", "accuracy"):
        assert fragment in table.stdout


# --- (a) a good plugin ----------------------------------------------------------------------------------------


def test_good_plugin_is_listed_with_version_and_registrations(site: Path) -> None:
    plugins, passes = plugins_json(site)
    assert_demo_healthy(plugins, passes)
    assert_builtins_healthy(plugins, passes)


def test_good_plugin_command_runs(site: Path) -> None:
    result = compressor(site, "demo-hello", "plugins")
    assert result.code == ExitCode.OK, result.output
    assert result.stdout.strip() == "hello plugins from demo"
    help_text = compressor(site, "--help")
    assert "demo-hello" in help_text.stdout


def test_good_plugin_pass_runs_in_a_recipe(site: Path, workspace: Path) -> None:
    model = workspace / "digits_cnn.onnx"
    before = file_digest(model)
    recipe = workspace / "recipe.yaml"
    recipe.write_text(
        "version: 1\nmodel: digits_cnn.onnx\npasses:\n  - demo.identity: {note: via the demo plugin}\n"
        "output: out\nmeasure: {latency: false}\n"
    )
    result = compressor(site, "run", recipe, "--json", cwd=workspace)
    assert result.code == ExitCode.OK, result.output
    report = json.loads(result.stdout)["result"]
    [step] = report["steps"]
    assert step["name"] == "demo.identity"
    assert step["notes"][0] == "via the demo plugin"
    assert step["fidelity"]["cosine_min"] == pytest.approx(1.0)
    output = workspace / "out" / "model.onnx"
    assert output.is_file()
    assert file_digest(model) == before
    inspected = compressor(site, "inspect", output, "--json")
    assert inspected.code == ExitCode.OK, inspected.output
    lineage = json.loads(inspected.stdout)["result"]["lineage"]
    assert [r["name"] for r in lineage] == ["demo.identity"]
    assert lineage[0]["config"] == {"note": "via the demo plugin"}
    assert sorted(p.name for p in workspace.iterdir()) == ["calib.npz", "digits_cnn.onnx", "out", "recipe.yaml"]


def test_plugin_pass_options_are_validated(site: Path, workspace: Path) -> None:
    recipe = workspace / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: digits_cnn.onnx\npasses:\n  - demo.identity: {nope: 1}\noutput: out\n")
    result = compressor(site, "run", recipe, cwd=workspace)
    assert result.code == ExitCode.INPUT_ERROR, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: pass 'demo.identity': option 'nope': Extra inputs are not permitted"
    ]
    assert not (workspace / "out").exists()


# --- (b), (c) broken plugins ----------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", list(BROKEN_PLUGINS))
def test_broken_plugin_is_listed_with_its_error_and_others_unaffected(broken: str, site: Path) -> None:
    source, target, fragment = BROKEN_PLUGINS[broken]
    add_dist(site, broken, "0.0.1", source, target)
    plugins, passes = plugins_json(site)
    info = plugins[broken]
    assert info["version"] == "0.0.1"
    assert info["error"] is not None and fragment in info["error"], info
    assert info["registered"] == {}, "a failed plugin is skipped: nothing it registered stays registered"
    assert_demo_healthy(plugins, passes)
    assert_builtins_healthy(plugins, passes)
    assert "impostor" not in {p["summary"] for p in passes.values()}
    if broken in HALF_REGISTERED:
        assert HALF_REGISTERED[broken][1] not in passes
    table = compressor(site, "plugins")
    assert table.code == ExitCode.OK, table.output
    assert "FAILED" in table.stdout and broken in table.stdout


def test_commands_work_with_every_broken_plugin_installed(site: Path, workspace: Path) -> None:
    for broken, (source, target, _) in BROKEN_PLUGINS.items():
        add_dist(site, broken, "0.0.1", source, target)
    model = workspace / "digits_cnn.onnx"
    before = file_digest(model)

    inspected = compressor(site, "inspect", model, "--json")
    assert inspected.code == ExitCode.OK, inspected.output
    assert json.loads(inspected.stdout)["result"]["inputs"] == ["input: float32[batchx1x8x8]"]

    quantized = compressor(site, "quantize", model, "-o", workspace / "int8.onnx")
    assert quantized.code == ExitCode.OK, quantized.output
    assert (workspace / "int8.onnx").is_file()
    assert "Traceback" not in quantized.output

    hello = compressor(site, "demo-hello")
    assert (hello.code, hello.stdout.strip()) == (ExitCode.OK, "hello world from demo")

    half = compressor(site, "half-command")
    assert half.code == ExitCode.USAGE_ERROR, "a command from a failed plugin is not added"

    recipe = workspace / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: digits_cnn.onnx\npasses: [half.registered]\noutput: out\n")
    refused = compressor(site, "run", recipe, cwd=workspace)
    assert refused.code == ExitCode.INPUT_ERROR, refused.output
    assert "Unknown pass 'half.registered'" in refused.stderr
    assert file_digest(model) == before


# --- (d) registration is cheap --------------------------------------------------------------------------------


def test_registering_plugins_imports_no_heavy_library(site: Path) -> None:
    """Registration (built-ins, the demo plugin, and whatever plugins are installed) imports no ML framework.

    What is true today, and asserted: not even onnxruntime or onnx are imported; only numpy is.
    """
    code = textwrap.dedent(
        f"""
        import json, sys
        from compressor.plugins import get_registry
        registry = get_registry().collect_all()
        heavy = {HEAVY!r}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print(json.dumps({{"loaded": loaded, "passes": sorted(registry.passes)}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=plugin_env(site), timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "demo.identity" in report["passes"], "the demo plugin was registered"
    assert report["loaded"] == []
