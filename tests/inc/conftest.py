"""Fixtures for the Neural Compressor plugin's tests: the digits CNN (from the torch tests), the Linear stack
example, recipes run in-process, and small models INC cannot handle."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.torch.conftest import factory, torch_digits, write_module

#: Every INC test module sets ``pytestmark = NEEDS_INC`` (checked without importing INC: 2.3 s).
NEEDS_INC = pytest.mark.skipif(
    importlib.util.find_spec("compressor_inc") is None or importlib.util.find_spec("neural_compressor") is None,
    reason="needs the compressor-inc plugin and neural-compressor-pt",
)

LINEAR_STACK = ROOT / "examples" / "linear_stack" / "model.py"


def recipe(folder: Path, model: str, passes: list[dict[str, Any]], **fields: Any) -> Path:
    """Write a recipe into ``folder`` (no latency: these tests measure size and quality)."""
    body = {
        "version": 1,
        "model": model,
        "passes": passes,
        "output": "out",
        "measure": {"batches": [1], "latency": False},
        **fields,
    }
    path = folder / f"recipe-{len(list(folder.glob('recipe-*.yaml')))}.yaml"
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def run_json(cli, path: Path, *args: object) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = cli("run", path, *args, "--json")
    assert result.code == 0, result.output
    return json.loads(result.stdout)["result"]


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A folder with the digits data (for the Linear stack's 64 input features)."""
    import shutil

    from tests.conftest import DIGITS

    for name in ("calib.npz", "test.npz"):
        shutil.copy(DIGITS / name, tmp_path / name)
    return tmp_path


#: Linear layers in a flat nn.Sequential: RTN works, INC's GPTQ and AWQ look for blocks in an nn.ModuleList.
FLAT_MLP = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    """
)

#: Data-dependent control flow: torch.export (and so PT2E) cannot trace it.
BRANCHY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            if y.sum() > 0:
                return y * 2
            return y

    def build():
        return Branchy()
    """
)

#: No Linear layer at all.
CONV_ONLY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    """
)


@pytest.fixture
def bad_models(stack_dir: Path) -> Path:
    for name, source in (("flat", FLAT_MLP), ("branchy", BRANCHY), ("convonly", CONV_ONLY)):
        write_module(stack_dir, name, source)
    return stack_dir


__all__ = ["LINEAR_STACK", "NEEDS_INC", "factory", "recipe", "run_json", "torch_digits"]
