"""`compressor prune`: magnitude (per-layer report), 2:4 (pattern on every weight), structured (really smaller)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("compressor_torch")
onnxruntime = pytest.importorskip("onnxruntime")
from safetensors.numpy import load_file  # noqa: E402

from compressor.errors import ExitCode  # noqa: E402
from tests.conftest import assert_clean_error, file_digest  # noqa: E402
from tests.torch.conftest import RESNET, TRAIN_8X8, factory  # noqa: E402

DIGITS_PARAMS = 151_498


def prune(cli, folder: Path, out: Path, *args: object) -> dict:  # type: ignore[no-untyped-def]
    result = cli(
        "prune", factory(folder), "--weights", folder / "digits_cnn.safetensors", "--shape", "x=1x1x8x8",
        "-o", out, *args, "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    return json.loads(result.stdout)["result"]


def nm_ok(weight: np.ndarray, n: int = 2, m: int = 4) -> bool:
    """Independent check of the N:M layout: groups of m consecutive weights along the input dimension."""
    moved = np.moveaxis(weight, 1, -1) if weight.ndim > 2 else weight
    groups = moved.reshape(-1, m)
    return bool((np.count_nonzero(groups, axis=1) <= n).all())


def sparse_weights(folder: Path) -> dict[str, str]:
    return json.loads((folder / "torch.json").read_text())["sparse"]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reports_sparsity_per_layer_and_no_speedup(cli, torch_digits: Path, scope: str) -> None:  # type: ignore[no-untyped-def]
    out = torch_digits / f"magnitude-{scope}"
    result = prune(cli, torch_digits, out, "--method", "magnitude", "--sparsity", "0.6", "--scope", scope)
    step = result["steps"][0]
    layers = step["metrics"]["layers"]
    assert set(layers) == {"features.0.weight", "features.3.weight", "classifier.1.weight", "classifier.3.weight"}
    assert step["metrics"]["sparsity"] == pytest.approx(0.6, abs=1e-4)
    sparsities = [layer["sparsity"] for layer in layers.values()]
    if scope == "layer":
        assert all(s == pytest.approx(0.6, abs=0.01) for s in sparsities)
    else:  # one global threshold: layers end up with different sparsity
        assert max(sparsities) - min(sparsities) > 0.05
    assert any("dense kernels" in note and "as fast" in note for note in step["notes"])
    weights = load_file(str(out / "weights.safetensors"))
    for name, layer in layers.items():
        assert float(np.mean(weights[name] == 0)) == pytest.approx(layer["sparsity"])
    info = json.loads(cli("inspect", out, "--json").stdout)["result"]
    assert info["stats"]["params"] == DIGITS_PARAMS  # masks only: nothing got smaller


def test_2_4_pattern_holds_on_every_pruned_weight_even_after_finetuning(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    out = torch_digits / "two-four"
    result = prune(cli, torch_digits, out, "--method", "2:4", "--recover", "finetune", "--data", TRAIN_8X8,
                   "--epochs", "2")  # fmt: skip
    pruned, finetune = result["steps"]
    assert finetune["name"] == "finetune" and "kept at zero" in " ".join(finetune["notes"])
    assert pruned["metrics"]["skipped"] == ["features.0.weight"]  # one input channel: no group of 4
    sparse = sparse_weights(out)
    assert sorted(sparse) == ["classifier.1.weight", "classifier.3.weight", "features.3.weight"]
    assert set(sparse.values()) == {"2:4"}
    weights = load_file(str(out / "weights.safetensors"))
    for name in sparse:
        assert nm_ok(weights[name]), name
        assert float(np.mean(weights[name] == 0)) == pytest.approx(0.5)
    assert np.count_nonzero(weights["features.0.weight"] == 0) == 0
    assert finetune["metrics"]["best_score"] >= 0.97  # validation accuracy after recovery


def test_structured_pruning_shrinks_the_model_and_reloads_from_its_recipe(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    out = torch_digits / "pruned"
    before = file_digest(torch_digits / "digits_cnn.safetensors")
    result = prune(cli, torch_digits, out, "--sparsity", "0.5")
    metrics = result["steps"][0]["metrics"]
    assert metrics["params_after"] <= 0.3 * metrics["params_before"]
    assert metrics["macs_after"] <= 0.3 * metrics["macs_before"]
    assert metrics["layers"]["features.3"] == [64, 32] and metrics["layers"]["classifier.3"] == [10, 10]
    assert metrics["kept"] == ["classifier.3"]
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "torch.json", "weights.safetensors"]
    assert not any(p.suffix in (".pt", ".pkl") for p in out.iterdir())  # rebuilt from the recipe, never unpickled
    assert file_digest(torch_digits / "digits_cnn.safetensors") == before
    info = json.loads(cli("inspect", out, "--json").stdout)["result"]
    assert info["stats"]["params"] == metrics["params_after"] and info["stats"]["macs"] == metrics["macs_after"]
    assert info["outputs"] == ["output: float32[batchx10]"]
    assert [s["name"] for s in info["lineage"]] == ["prune.structured"]


def test_round_to_and_keep_shape_the_pruned_widths(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    result = prune(
        cli, torch_digits, torch_digits / "p", "--sparsity", "0.3", "--round-to", "8", "--keep", "features.0"
    )
    layers = result["steps"][0]["metrics"]["layers"]
    assert layers["features.0"] == [32, 32]
    assert all(after % 8 == 0 for name, (_, after) in layers.items() if name not in ("classifier.3",))
    assert layers["features.3"][1] < 64


@pytest.mark.parametrize(
    ("round_to", "widths"),
    [(None, {"features.0": 16, "features.3": 48, "classifier.1": 96}),  # default 16: the nearest multiple
     (1, {"features.0": 22, "features.3": 44, "classifier.1": 89})],  # exact: torch-pruning's int(width * 0.7)
)  # fmt: skip
def test_pruned_widths_are_rounded_to_the_nearest_multiple_by_default(  # type: ignore[no-untyped-def]
    cli, torch_digits: Path, round_to: int | None, widths: dict[str, int]
) -> None:
    extra = () if round_to is None else ("--round-to", round_to)
    layers = prune(cli, torch_digits, torch_digits / "p", "--sparsity", "0.3", *extra)["steps"][0]["metrics"]["layers"]
    assert {name: layers[name][1] for name in widths} == widths


def test_rounding_keeps_at_least_one_multiple_and_narrow_layers_exact() -> None:
    from compressor_torch.prune import rounded_width

    assert rounded_width(9, 32, 16) == 16  # ratio 0.7 of 32: one multiple, never none (torch-pruning: 0)
    assert rounded_width(44, 64, 16) == 48 and rounded_width(89, 128, 16) == 96
    assert rounded_width(7, 10, 16) == 7  # narrower than two multiples: exact
    assert rounded_width(120, 128, 16) == 128  # never wider than the layer


def test_resnet_prunes_more_than_2x_in_macs_exports_and_runs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "resnet.onnx"
    result = cli(
        "prune", f"{RESNET / 'model.py'}:build_model", "--shape", "x=1x1x16x16", "--sparsity", "0.5", "-o", out,
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    pruned, export = json.loads(result.stdout)["result"]["steps"]
    metrics = pruned["metrics"]
    assert metrics["macs_before"] / metrics["macs_after"] >= 2.0
    assert metrics["params_after"] <= 0.35 * metrics["params_before"]
    assert metrics["kept"] == ["fc"]
    widths = metrics["layers"]
    assert widths["stage1.0.conv2"][1] == widths["stem.0"][1]  # residual: coupled channels pruned together
    assert widths["stage2.0.dw2"][1] == widths["stage2.0.pw1"][1]  # depthwise follows its pointwise conv
    assert export["name"] == "convert.onnx" and export["fidelity"]["cosine_min"] > 0.9999
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(0).standard_normal((batch, 1, 16, 16)).astype(np.float32)
        assert session.run(None, {"x": x})[0].shape == (batch, 10)


def test_keep_pattern_that_matches_nothing_is_a_usage_error(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    out = torch_digits / "p"
    result = cli(
        "prune", factory(torch_digits), "--shape", "x=1x1x8x8", "--keep", "encoder.*", "-o", out,
    )  # fmt: skip
    assert_clean_error(result, ExitCode.USAGE_ERROR, "keep pattern 'encoder.*' matches no layer", "features.0")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--method", "2:4", "--sparsity", "0.3"], "2 of every 4"),
        (["--method", "magnitude", "--importance", "l1"], "--importance does not apply"),
        (["--recover", "distill"], "pass --data"),
        (["--epochs", "3"], "only apply with --recover"),
    ],
)
def test_prune_options_that_do_not_fit_are_usage_errors(
    cli, torch_digits: Path, args: list[str], fragment: str
) -> None:  # type: ignore[no-untyped-def]
    result = cli("prune", factory(torch_digits), "--shape", "x=1x1x8x8", "-o", torch_digits / "p", *args)
    assert_clean_error(result, ExitCode.USAGE_ERROR, fragment)


TINY_VIT = """
import torch
from torch import nn

class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1))

class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

class TinyViT(nn.Module):
    def __init__(self, dim=64, heads=8):
        super().__init__()
        self.embed = nn.Linear(16, dim)
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)).mean(1))

def build():
    torch.manual_seed(0)
    return TinyViT()
"""


def test_attention_heads_are_removed_whole_and_the_model_reloads(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "vit.py").write_text(TINY_VIT)
    out = tmp_path / "vit-pruned"
    result = cli("prune", f"{tmp_path / 'vit.py'}:build", "--shape", "x=1x6x16", "--sparsity", "0.5", "-o", out,
                 "--json")  # fmt: skip
    assert result.code == 0, result.output
    metrics = json.loads(result.stdout)["result"]["steps"][0]["metrics"]
    assert metrics["attention"] == {"blocks.0.attn.num_heads": [8, 4], "blocks.1.attn.num_heads": [8, 4]}
    assert metrics["layers"]["blocks.0.attn.qkv"] == [192, 96]  # 4 heads of 8 dims, times q, k and v
    assert metrics["params_after"] <= 0.3 * metrics["params_before"]
    compared = cli("compare", out, out, "--min-runs", 2, "--min-time", 0, "--json")  # rebuilt twice from the recipe
    assert compared.code == 0, compared.output
    rebuilt = json.loads(compared.stdout)["result"]["models"]
    assert rebuilt[0]["stats"]["params"] == metrics["params_after"]
    assert rebuilt[1]["fidelity"]["cosine_min"] > 0.99999
