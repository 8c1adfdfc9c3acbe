"""Registering the framework plugins imports no framework: ONNX commands stay fast with them installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_startup import imported_modules

#: What compressor-sklearn and compressor-tensorflow import only inside their loaders, passes and runners.
FRAMEWORKS = {"tensorflow", "keras", "tf2onnx", "sklearn", "xgboost", "lightgbm", "skops", "skl2onnx", "onnxmltools"}


def test_inspect_onnx_and_plugins_import_no_framework(digits_dir: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "compressor", "plugins", "--json"], capture_output=True, text=True, timeout=120
    )
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["result"]["plugins"]}
    assert plugins["sklearn"]["error"] is None and "convert.sklearn.onnx" in plugins["sklearn"]["registered"]["passes"]
    assert plugins["tensorflow"]["error"] is None and plugins["tensorflow"]["registered"]["runners"] == ["tensorflow"]
    for args in (("inspect", str(digits_dir / "digits_cnn.onnx")), ("plugins",)):
        modules = imported_modules(*args)
        assert "compressor_sklearn" in modules and "compressor_tensorflow" in modules  # the plugins did register
        assert not modules & FRAMEWORKS, (args, modules & FRAMEWORKS)
