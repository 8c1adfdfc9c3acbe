"""The INC plugin registers without importing torch or Neural Compressor, and joins `compressor optimize`."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import DIGITS
from tests.inc.conftest import NEEDS_INC

pytestmark = NEEDS_INC

HEAVY = ("torch", "neural_compressor", "transformers", "torchao")


def test_registering_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from compressor_inc import plugin\n"
        "found = []\n"
        "for hook in (plugin.register_passes, plugin.register_loaders, plugin.register_runners):\n"
        "    hook(found.append)\n"
        "print(len(found), sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(maxsplit=1) == ["5", "[]\n"]


def test_optimize_tries_static_and_weight_only_on_torch_models_but_not_autotune() -> None:
    from compressor.loaders import LoaderOptions, load_model
    from compressor.search.space import candidates

    artifact = load_model(
        f"{DIGITS / 'model.py'}:build_model", LoaderOptions(weights=DIGITS / "digits_cnn.safetensors")
    )
    labels = {c.label for c in candidates(artifact, {"quantize.inc.static", "quantize.inc.weight_only"})}
    assert labels == {"quantize.inc.static", "quantize.inc.weight_only"}
    every = {c.label for c in candidates(artifact)}
    assert not any("quantize.inc.autotune" in label for label in every)
    onnx_model = load_model(DIGITS / "digits_cnn.onnx")  # no ONNX -> torch conversion: INC passes are not offered
    assert not any("quantize.inc" in c.label for c in candidates(onnx_model))
