"""``prune.trees``: keep the first K boosting rounds of a gradient-boosted ensemble.

A boosted model is a sum of rounds, each fitted to what the rounds before it left unexplained, so its
prefixes are the models training would have produced with fewer rounds: keeping the first K is what early
stopping at K gives, and every K is a valid model. (Keeping "the K best" rounds out of order is not: a late
round corrects earlier ones and is wrong without them.) Fewer rounds means fewer trees: a smaller model
and proportionally less work per prediction, traded against accuracy. The optimizer searches K through
:meth:`PruneTrees.search_space`; the pipeline verifies the result against the full model.

Works on XGBoost and LightGBM native models and on scikit-learn GradientBoostingClassifier/Regressor
(alone or as a pipeline's last step). The output keeps the input's format (and file type).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pydantic import Field, model_validator

from compressor.artifacts import Artifact
from compressor.errors import PassError
from compressor.passes import Pass, PassConfig, PassContext, PassResult
from compressor_sklearn.native import (
    FORMAT_LIGHTGBM,
    FORMAT_SKLEARN,
    FORMAT_XGBOOST,
    gradient_boosting_step,
    open_native,
    require,
)

#: Shares of the rounds the optimizer tries.
SEARCH_FRACTIONS = (0.1, 0.25, 0.5, 0.75)


class PruneTreesConfig(PassConfig):
    #: Keep the first ``rounds`` boosting rounds ...
    rounds: int | None = Field(None, ge=1)
    #: ... or this share of them (rounded up). Give exactly one.
    fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_of(self) -> PruneTreesConfig:
        if (self.rounds is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'rounds' or 'fraction'")
        return self

    def keep(self, total: int) -> int:
        return self.rounds if self.rounds is not None else max(1, math.ceil(total * (self.fraction or 0)))


class PruneTrees(Pass):
    name = "prune.trees"
    summary = "keep the first K boosting rounds of an XGBoost, LightGBM or scikit-learn gradient-boosting model"
    input_formats = (FORMAT_XGBOOST, FORMAT_LIGHTGBM, FORMAT_SKLEARN)
    output_format = ""  # "": the output keeps its input's format (the planner carries it through)
    Config = PruneTreesConfig
    #: The optimizer's stage: searched before graph passes and quantization (see search_space).
    stage = "prune"

    def run(self, artifact: Artifact, config: PruneTreesConfig, ctx: PassContext) -> PassResult:  # type: ignore[override]
        model = open_native(artifact)
        before = model.stats()
        total = before.get("rounds")
        if total is None:
            raise PassError(
                self.name,
                f"{model.description} is not a gradient-boosted ensemble",
                hint="prune.trees applies to XGBoost, LightGBM and scikit-learn GradientBoosting models",
            )
        keep = config.keep(total)
        if keep >= total:
            raise PassError(
                self.name,
                f"nothing to prune: the model has {total} rounds and the config keeps {keep}",
                hint=f"choose rounds below {total}",
            )
        suffix = "".join(artifact.path.suffixes[-1:]) or ".model"
        out = ctx.workdir / f"model{suffix}"
        if artifact.format == FORMAT_XGBOOST:
            model.obj[:keep].save_model(str(out))
        elif artifact.format == FORMAT_LIGHTGBM:
            model.obj.save_model(str(out), num_iteration=keep)
        else:
            _save_sklearn(_truncate_sklearn(model.obj, keep), out, artifact)
        after = open_native(artifact.derive(out, self.record(config), extra={**artifact.extra, "rounds": keep})).stats()
        if "trees" in after:
            what = f"{after['trees']} of {before['trees']} trees, {after['params']:,} of {before['params']:,} nodes"
        else:
            what = f"{after['params']:,} of {before['params']:,} parameters"
        notes = [f"kept the first {keep} of {total} rounds: {what}"]
        pruned = artifact.derive(out, self.record(config, notes), extra={**artifact.extra, "rounds": keep})
        metrics = {
            "rounds_before": total,
            "rounds_after": keep,
            "params_before": before["params"],
            "params_after": after["params"],
        }
        return PassResult(pruned, notes, metrics)

    @classmethod
    def search_space(cls, artifact: Artifact) -> list[dict[str, Any]]:
        total = artifact.extra.get("rounds")
        if not isinstance(total, int) or total < 2:
            return []
        keeps = sorted({max(1, round(total * f)) for f in SEARCH_FRACTIONS} - {total})
        return [{"rounds": k} for k in keeps]


def _truncate_sklearn(est: Any, keep: int) -> Any:
    est = copy.deepcopy(est)
    step = gradient_boosting_step(est)
    step.estimators_ = step.estimators_[:keep]
    step.n_estimators = keep
    if hasattr(step, "n_estimators_"):
        step.n_estimators_ = keep
    for name in ("train_score_", "oob_improvement_", "oob_scores_"):
        value = getattr(step, name, None)
        if value is not None and len(value) > keep:
            setattr(step, name, value[:keep])
    return est


def _save_sklearn(est: Any, out: Any, artifact: Artifact) -> None:
    if artifact.extra.get("serialization") == "skops":
        require("skops.io", "writing .skops files").dump(est, out)
    else:
        require("joblib", "writing .joblib files").dump(est, out)
