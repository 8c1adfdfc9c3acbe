"""Pruning passes: unstructured magnitude, structured (torch-pruning's dependency graph), and N:M (2:4)."""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import replace
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from compressor.artifacts import Artifact
from compressor.errors import PassError, UsageError
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_torch import models

NO_SPEEDUP = (
    "unstructured sparsity only zeroes weights: dense kernels (ONNX Runtime, torch on CPU and GPU) store and multiply "
    "the zeros, so the model is exactly as large and as fast until a sparse kernel runs it or the file is compressed"
)
NM_SPEEDUP = (
    "2:4 sparsity runs faster only on GPUs with sparse tensor cores (NVIDIA Ampere or newer, e.g. through TensorRT "
    "or torch's semi-structured sparse tensors); on CPU and in ONNX Runtime the model is as large and as fast"
)


def _matches(name: str, patterns: list[str]) -> bool:
    layer = name.removesuffix(".weight")
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(layer, p) for p in patterns)


def _check_patterns(patterns: list[str], names: list[str], what: str) -> None:
    for pattern in patterns:
        if not any(_matches(name, [pattern]) for name in names):
            shown = ", ".join(n.removesuffix(".weight") for n in names[:12]) + (" ..." if len(names) > 12 else "")
            raise UsageError(f"{what} pattern '{pattern}' matches no layer of the model; its layers: {shown}")


def weight_tensors(loaded: models.Loaded) -> dict[str, Any]:
    """Float weight tensors of two or more dims (Linear, Conv, Embedding...), by parameter name."""
    if loaded.program is not None:
        params = set(loaded.program.graph_signature.parameters)
        source = {k: v for k, v in loaded.program.state_dict.items() if k in params}
    else:
        source = dict(loaded.module.named_parameters())
    return {k: v for k, v in source.items() if k.endswith("weight") and v.dim() >= 2 and v.is_floating_point()}


def _weights_to_prune(loaded: models.Loaded, exclude: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """All prunable weights, and those the ``exclude`` patterns (each checked to match something) leave."""
    tensors = weight_tensors(loaded)
    _check_patterns(exclude, list(tensors), "exclude")
    return tensors, {k: v for k, v in tensors.items() if not _matches(k, exclude)}


def _sparsity_table(tensors: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        name: {"numel": int(t.numel()), "sparsity": float((t == 0).sum()) / max(1, t.numel())}
        for name, t in tensors.items()
    }


def _save_sparse(
    pass_: Pass,
    artifact: Artifact,
    loaded: models.Loaded,
    ctx: PassContext,
    config: PassConfig,
    pattern: dict[str, str],
    notes: list[str],
) -> Artifact:
    folder = ctx.workdir / "model"
    data = models.manifest(artifact)
    data = models.save_model(loaded, replace(data, sparse={**data.sparse, **pattern}), folder)
    specs = models.concrete_specs(artifact, ctx.dataset) if ctx.dataset is not None else None
    return models.derive_torch(artifact, folder, pass_.record(config, notes), data, inputs=specs)


# --- magnitude ---------------------------------------------------------------------------------------------


class MagnitudeConfig(PassConfig):
    #: Share of the selected weights set to zero.
    sparsity: float = Field(0.5, gt=0, lt=1)
    #: global: one threshold over all selected weights; layer: the same sparsity in every layer.
    scope: Literal["global", "layer"] = "global"
    #: Layers (or weight names) to leave dense; shell patterns, e.g. "classifier.*".
    exclude: list[str] = Field(default_factory=list)


class MagnitudePrune(Pass):
    name = "prune.magnitude"
    summary = "unstructured magnitude pruning (global or per layer): zeroes weights, no speedup on dense kernels"
    input_formats = ("torch",)
    output_format = "torch"
    Config = MagnitudeConfig
    libraries = ("torch",)

    def run(self, artifact: Artifact, config: MagnitudeConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch

        loaded = models.open_model(artifact)
        _, selected = _weights_to_prune(loaded, config.exclude)
        if not selected:
            raise PassError(self.name, "no weight to prune (no Linear/Conv-like weights, or all excluded)")
        with torch.no_grad():
            if config.scope == "global":
                scores = torch.cat([t.detach().abs().flatten() for t in selected.values()])
                masks = _smallest_mask(scores, config.sparsity).split([t.numel() for t in selected.values()])
                for (_, tensor), mask in zip(selected.items(), masks, strict=True):
                    tensor.masked_fill_(mask.view_as(tensor), 0.0)
            else:
                for tensor in selected.values():
                    mask = _smallest_mask(tensor.detach().abs().flatten(), config.sparsity)
                    tensor.masked_fill_(mask.view_as(tensor), 0.0)
        layers = _sparsity_table(selected)
        total = sum(v["numel"] for v in layers.values())
        overall = sum(v["numel"] * v["sparsity"] for v in layers.values()) / total
        notes = [
            f"{config.scope} magnitude pruning: {overall:.1%} of {total:,} weights in {len(layers)} layers are zero",
            NO_SPEEDUP,
        ]
        derived = _save_sparse(self, artifact, loaded, ctx, config, dict.fromkeys(selected, "unstructured"), notes)
        return PassResult(derived, notes, {"sparsity": overall, "layers": layers})


def _smallest_mask(scores: Any, share: float) -> Any:
    """A boolean mask of exactly ``round(share * n)`` smallest scores."""
    import torch

    mask = torch.zeros_like(scores, dtype=torch.bool)
    count = round(share * scores.numel())
    if count:
        mask[torch.topk(scores, count, largest=False).indices] = True
    return mask


# --- N:M ------------------------------------------------------------------------------------------------------


class NMConfig(PassConfig):
    #: Keep n of every m consecutive weights along the input dimension.
    n: int = Field(2, ge=1)
    m: int = Field(4, ge=2)
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _n_below_m(self) -> NMConfig:
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be smaller than m ({self.m})")
        return self


def _groups(tensor: Any, m: int) -> Any:
    """Rows of ``m`` consecutive weights along the input dimension (dim 1), as NVIDIA's sparsity layout groups them."""
    moved = tensor.movedim(1, -1) if tensor.dim() > 2 else tensor
    return moved.reshape(-1, m)


def nm_pattern_ok(tensor: Any, n: int = 2, m: int = 4) -> bool:
    """Whether every group of ``m`` weights along the input dimension has at most ``n`` non-zeros."""
    if tensor.shape[1] % m:
        return False
    return bool(((_groups(tensor, m) != 0).sum(dim=1) <= n).all())


def nm_prunable(tensor: Any, m: int) -> bool:
    return tensor.dim() >= 2 and tensor.shape[1] % m == 0


class NMPrune(Pass):
    name = "prune.nm"
    summary = "N:M semi-structured sparsity (default 2:4), verified on every pruned weight"
    input_formats = ("torch",)
    output_format = "torch"
    Config = NMConfig
    libraries = ("torch",)

    def run(self, artifact: Artifact, config: NMConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch

        loaded = models.open_model(artifact)
        tensors, candidates = _weights_to_prune(loaded, config.exclude)
        selected = {k: v for k, v in candidates.items() if nm_prunable(v, config.m)}
        skipped = sorted(set(candidates) - set(selected))
        if not selected:
            raise PassError(
                self.name, f"no weight has an input dimension divisible by {config.m} (layers: {', '.join(tensors)})"
            )
        with torch.no_grad():
            for tensor in selected.values():
                groups = _groups(tensor.detach(), config.m)
                drop = groups.abs().topk(config.m - config.n, dim=1, largest=False).indices
                mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, drop, True)
                shaped = mask.reshape(tensor.movedim(1, -1).shape if tensor.dim() > 2 else tensor.shape)
                tensor.masked_fill_(shaped.movedim(-1, 1) if tensor.dim() > 2 else shaped, 0.0)
        broken = [k for k, v in selected.items() if not nm_pattern_ok(v, config.n, config.m)]
        if broken:
            raise PassError(self.name, f"the {config.n}:{config.m} pattern does not hold on {', '.join(broken)}")
        pattern = f"{config.n}:{config.m}"
        layers = _sparsity_table(selected)
        notes = [f"{pattern} sparsity on {len(selected)} weights, verified on every group of {config.m}"]
        if skipped:
            notes.append(f"left dense (input dimension not divisible by {config.m}): {', '.join(skipped)}")
        notes.append(NM_SPEEDUP.replace("2:4", pattern))
        derived = _save_sparse(self, artifact, loaded, ctx, config, dict.fromkeys(selected, pattern), notes)
        return PassResult(derived, notes, {"pattern": pattern, "layers": layers, "skipped": skipped})


# --- structured ------------------------------------------------------------------------------------------------

#: Samples whose loss gradients rank channels for taylor importance.
TAYLOR_SAMPLES = 256
Importance = Literal["auto", "taylor", "l2", "l1", "lamp", "fpgm", "bn_scale", "random"]
IMPORTANCES = get_args(Importance)


class StructuredConfig(PassConfig):
    #: Share of channels / neurons removed from each prunable layer (or overall, with global_pruning).
    ratio: float = Field(0.5, gt=0, lt=1)
    #: How channels are ranked. auto: taylor (first-order, gradients on the dataset) when the pass has data, else l2
    #: (weight magnitude). On the digits CNN at ratio 0.5 taylor + distill reaches 99.7%, l2 + distill 98.1-98.6%.
    importance: Importance = "auto"
    #: Rank channels across all layers at once instead of removing the same share from each.
    global_pruning: bool = False
    #: Layers to leave unpruned (shell patterns on module names). Layers feeding a model output are always kept.
    keep: list[str] = Field(default_factory=list)
    #: Round each pruned layer's kept width to the nearest multiple of this (at least one multiple); layers
    #: narrower than two multiples keep the exact ratio; 1 keeps exact ratios everywhere. Other widths run slower:
    #: ONNX Runtime's convolutions block channels by 16 with AVX-512 (8 with AVX2), tensor cores want 8 or 16. On the
    #: digits CNN at ratio 0.3 exact widths (22, 44) ran 1.35x *slower* than the unpruned model, (16, 48) 2.2x faster.
    round_to: int = Field(16, ge=1)
    #: Share of attention heads removed from attention modules written the timm / Hugging Face way (a ``num_heads``
    #: attribute and a fused ``qkv`` Linear or ``q_proj``/``k_proj``/``v_proj``); None: the same as ``ratio``;
    #: 0 keeps every head. Heads go whole: the head size stays, ``num_heads`` is updated.
    head_ratio: float | None = Field(None, ge=0, lt=1)


def _importance(name: str) -> Any:
    import torch_pruning as tp

    imp = tp.importance
    return {
        "l2": lambda: imp.GroupMagnitudeImportance(p=2),
        "l1": lambda: imp.GroupMagnitudeImportance(p=1),
        "taylor": lambda: imp.GroupTaylorImportance(),
        "lamp": lambda: imp.LAMPImportance(p=2),
        "fpgm": lambda: imp.FPGMImportance(),
        "bn_scale": lambda: imp.BNScaleImportance(),
        "random": lambda: imp.RandomImportance(),
    }[name]()


def _is_layer(module: Any) -> bool:
    import torch_pruning as tp

    return isinstance(module, (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR))


def output_layers(graph: Any, root: Any) -> list[str]:
    """Layers whose output channels reach a model output (pruning them would change the output's shape).

    Walks the dependency graph forward from each Conv/Linear through ops that keep channels (norms, activations,
    reshapes, pooling, additions, depthwise convs) until a layer consumes them or the walk reaches an output.
    """
    import torch_pruning as tp

    found = []
    for name, module in root.named_modules():
        node = graph.module2node.get(module)
        if node is None or not _is_layer(module):
            continue
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            consumer = current is not node and _is_layer(current.module) and not _depthwise(current.module)
            if consumer:
                continue
            if isinstance(current.module, tp.ops._OutputOp) or not current.outputs:
                found.append(name)
                break
            stack.extend(current.outputs)
    return found


def _depthwise(module: Any) -> bool:
    import torch_pruning as tp

    return isinstance(module, tp.ops.TORCH_CONV) and module.groups > 1 and module.groups == module.out_channels


def _layer_widths(root: Any) -> dict[str, int]:
    widths = {}
    for name, module in root.named_modules():
        if _is_layer(module):
            widths[name] = int(getattr(module, "out_channels", getattr(module, "out_features", 0)))
    return widths


def _fmt(value: float) -> str:
    for unit, factor in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= factor:
            return f"{value / factor:.2f}{unit}"
    return f"{value:.0f}"


@functools.cache
def _nearest_multiple_pruner() -> type:
    import torch_pruning as tp

    class NearestMultiplePruner(tp.pruner.MetaPruner):  # type: ignore[misc]
        """torch-pruning rounds a kept width *down* to a multiple of ``round_to``: to nothing for a layer narrower
        than that. Keep the nearest multiple instead, at least one, and the exact width for narrow layers."""

        def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
            return current_channels - rounded_width(current_channels - n_pruned, current_channels, round_to)

    return NearestMultiplePruner


def rounded_width(kept: int, width: int, multiple: int) -> int:
    """``kept`` of ``width`` channels rounded to the nearest multiple (at least one); narrow layers stay exact."""
    if width < 2 * multiple:
        return kept
    return min(width, max(multiple, round(kept / multiple) * multiple))


class StructuredPrune(Pass):
    name = "prune.structured"
    summary = "structured pruning with torch-pruning's dependency graph: channels, neurons, heads removed for real"
    input_formats = ("torch",)
    output_format = "torch"
    Config = StructuredConfig
    libraries = ("torch", "torch-pruning")
    stage = "prune"

    def run(self, artifact: Artifact, config: StructuredConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        import torch
        import torch_pruning as tp

        loaded = models.module_of(artifact, self.name, "structured pruning")
        module = loaded.module.eval()
        specs = models.concrete_specs(artifact, ctx.dataset)
        feeds = models.example_feeds(specs, ctx.dataset, ctx.options.shapes)
        example = tuple(models.to_tensors(specs, feeds))
        single = tuple(t[:1] for t in example)
        with torch.no_grad():
            produced_before = models.flatten_outputs(module(*example))
            shapes_before = [tuple(t.shape) for t in produced_before]
            macs_before, params_before = tp.utils.count_ops_and_params(module, single)
        graph = tp.DependencyGraph().build_dependency(module, example_inputs=example)
        names = [n for n, m in module.named_modules() if _is_layer(m)]
        _check_patterns(config.keep, names, "keep")
        protected = output_layers(graph, module)
        kept = sorted({*protected, *(n for n in names if _matches(n, config.keep))})
        by_name = dict(module.named_modules())
        if not set(names) - set(kept):
            raise PassError(self.name, f"nothing to prune: every layer is kept ({', '.join(kept)})")
        widths_before = _layer_widths(module)
        importance = config.importance
        if importance == "auto":
            importance = "taylor" if ctx.dataset is not None and _classifier(produced_before) else "l2"
        attention = attention_modules(module)
        heads = {qkv: getattr(owner, attr) for owner, attr, layers in attention.values() for qkv in layers}
        head_ratio = config.ratio if config.head_ratio is None else config.head_ratio
        pruner = _nearest_multiple_pruner()(
            module,
            example,
            importance=_importance(importance),
            pruning_ratio=config.ratio,
            global_pruning=config.global_pruning,
            ignored_layers=[by_name[n] for n in kept],
            round_to=config.round_to if config.round_to > 1 else None,
            num_heads=heads,
            prune_num_heads=bool(heads) and head_ratio > 0,
            prune_head_dims=False,
            head_pruning_ratio=head_ratio,
        )
        if importance == "taylor":
            _taylor_gradients(module, specs, example, ctx)
        try:
            pruner.step()
        except Exception as exc:
            raise PassError(self.name, f"torch-pruning failed: {type(exc).__name__}: {models.first_line(exc)}") from exc
        module.zero_grad(set_to_none=True)
        module.eval()
        attributes = update_heads(attention, pruner.num_heads)
        with torch.no_grad():
            produced = models.flatten_outputs(module(*example))
            macs_after, params_after = tp.utils.count_ops_and_params(module, single)
        if [tuple(t.shape) for t in produced] != shapes_before:
            raise PassError(
                self.name,
                f"pruning changed the output shapes {shapes_before} -> {[tuple(t.shape) for t in produced]}",
                hint="keep the layers that produce the outputs with keep: [...]",
            )
        history = [[name, bool(out), [int(i) for i in idxs]] for name, out, idxs in pruner.DG.pruning_history()]
        if not history:
            raise PassError(self.name, "nothing was pruned (every group too small or kept)")
        data = models.manifest(artifact)
        factory = loaded.kind == models.FACTORY
        structure = [*data.structure, *history] if factory else []
        changed = {**data.attributes, **{k: after for k, (_, after) in attributes.items()}} if factory else {}
        folder = ctx.workdir / "model"
        new_data = models.save_model(loaded, replace(data, structure=structure, attributes=changed, sparse={}), folder)
        widths_after = _layer_widths(module)
        layers = {n: [widths_before[n], widths_after.get(n, 0)] for n in widths_before}
        notes = [
            f"params {int(params_before):,} -> {int(params_after):,} ({params_after / params_before:.2f}x); "
            f"MACs per sample {_fmt(macs_before)} -> {_fmt(macs_after)} ({macs_after / max(macs_before, 1):.2f}x)",
            f"channels ranked by {importance} importance"
            + (" (gradients on the dataset)" if importance == "taylor" else ""),
            f"kept unpruned: {', '.join(kept)}"
            + (" (layers feeding a model output keep their width)" if protected else ""),
            "accuracy drops until the model is recovered: follow with finetune or distill",
        ]
        if attributes:
            notes.append("attention: " + ", ".join(f"{n} {b} -> {a}" for n, (b, a) in attributes.items()))
        metrics = {
            "params_before": int(params_before),
            "params_after": int(params_after),
            "macs_before": int(macs_before),
            "macs_after": int(macs_after),
            "layers": layers,
            "kept": kept,
            "importance": importance,
            "attention": attributes,
        }
        record = self.record(config, notes)
        out_specs = models.output_specs(produced)
        derived = models.derive_torch(artifact, folder, record, new_data, inputs=specs, outputs=out_specs)
        return PassResult(derived, notes, metrics)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        return [{"ratio": r} for r in (0.3, 0.5, 0.7)]


HEAD_ATTRIBUTES = ("num_heads", "num_attention_heads", "n_heads", "n_head")
PROJECTIONS = (("qkv",), ("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("q", "k", "v"))


def attention_modules(root: Any) -> dict[str, tuple[Any, str, list[Any]]]:
    """Attention modules written the timm / Hugging Face way: name -> (module, heads attribute, q/k/v Linears)."""
    import torch

    found = {}
    for name, module in root.named_modules():
        attr = next((a for a in HEAD_ATTRIBUTES if type(getattr(module, a, None)) is int), None)
        if attr is None or isinstance(module, torch.nn.MultiheadAttention):
            continue
        for names in PROJECTIONS:
            layers = [getattr(module, n, None) for n in names]
            if all(isinstance(layer, torch.nn.Linear) for layer in layers):
                found[name] = (module, attr, layers)
                break
    return found


def update_heads(attention: dict[str, tuple[Any, str, list[Any]]], counts: dict[Any, int]) -> dict[str, list[int]]:
    """Set each attention module's head count (and ``all_head_size``) to what torch-pruning left."""
    changed: dict[str, list[int]] = {}
    for name, (module, attr, layers) in attention.items():
        prefix = f"{name}." if name else ""
        before, after = getattr(module, attr), int(counts.get(layers[0], getattr(module, attr)))
        if after != before:
            setattr(module, attr, after)
            changed[prefix + attr] = [before, after]
            size = getattr(module, "attention_head_size", None)
            if type(getattr(module, "all_head_size", None)) is int and type(size) is int:
                changed[prefix + "all_head_size"] = [module.all_head_size, after * size]
                module.all_head_size = after * size
    return changed


def _classifier(outputs: list[Any]) -> bool:
    return bool(outputs) and outputs[0].dim() == 2 and outputs[0].shape[1] > 1 and outputs[0].is_floating_point()


def _taylor_gradients(module: Any, specs: list[Any], example: tuple[Any, ...], ctx: PassContext) -> None:
    """First-order Taylor importance needs gradients: a loss on labelled data, else on the model's own top-1."""
    import torch
    import torch.nn.functional as F

    dataset = ctx.dataset
    module.zero_grad(set_to_none=True)
    if dataset is not None:
        batch = dataset.matched_to(specs).take(TAYLOR_SAMPLES)
        inputs = models.to_tensors(specs, batch.inputs)
        logits = models.flatten_outputs(module(*inputs))[0]
        if batch.labels is not None:
            target = torch.from_numpy(batch.labels.astype("int64"))
        else:
            target = logits.detach().argmax(dim=-1)
    else:
        logits = models.flatten_outputs(module(*example))[0]
        target = logits.detach().argmax(dim=-1)
    if logits.dim() != 2:
        raise PassError("prune.structured", "importance 'taylor' needs a classifier output [N, classes]")
    F.cross_entropy(logits, target).backward()
