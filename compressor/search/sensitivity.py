"""Sensitive nodes: which parts of a model a quantization should leave in float.

A quantization that breaks the constraint gets a second chance, as Neural Compressor's fallback does:
the quantizable nodes of the float model are grouped into blocks (by their name hierarchy, e.g. one
transformer layer, or single nodes in a small model), each block is left in float in turn to measure how
much quality it costs, and then the costliest blocks are left in float together, one more at a time,
until the candidate meets the constraint (or half the blocks are excluded).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

#: Ops whose quantization a block exclusion undoes.
QUANTIZABLE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "Gather", "EmbedLayerNormalization"}
MAX_BLOCKS = 16


def quantizable_nodes(model_path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [node.name for node in model.graph.node if node.op_type in QUANTIZABLE_OPS and node.name]


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[/.]", name) if t]


def blocks(names: list[str]) -> list[list[str]]:
    """Group node names into at most MAX_BLOCKS blocks along their name hierarchy, one level at a time (so
    a transformer splits into its embeddings and its layers); single nodes when the model is small."""
    if len(names) <= MAX_BLOCKS:
        return [[name] for name in names]
    tokens = {name: _tokens(name) for name in names}
    groups = [list(names)]
    for depth in range(max(len(t) for t in tokens.values())):
        split: list[list[str]] = []
        for members in groups:
            children: dict[str, list[str]] = {}
            for name in members:
                children.setdefault(tokens[name][depth] if depth < len(tokens[name]) else "", []).append(name)
            split.extend(children.values())
        if len(split) > MAX_BLOCKS:
            break
        groups = split
    return groups


def block_label(block: list[str]) -> str:
    """A short name for a block: its node, or the name prefix its nodes share."""
    if len(block) == 1:
        return block[0]
    columns = zip(*(_tokens(name) for name in block), strict=False)
    common = [column[0] for column in itertools.takewhile(lambda col: len(set(col)) == 1, columns)]
    prefix = "/".join(common) if common else "nodes"
    return f"{prefix} ({len(block)} nodes)"
