"""The DPPNet variant of `dsp-deploy compare`: a DPPNet of the same ResNet with random weights and
random frozen patterns whose union taps bring its FLOPs (dppnet/costs.py, overheads included)
nearest to the DSP variant's. Patterns come in whole taps (1..9 per kernel), so the match is
coarse; `flops_match_pct` in the report says how close it is."""
from __future__ import annotations

from typing import Any

from dsp_deploy.compare.results import VariantInfo


def dppnet_variant(name: str, dense: Any, target: VariantInfo, seed: int) -> Any:
    """A compare.variants.BuiltVariant (skipped with a reason if the model has no DPPNet twin)."""
    import torch

    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.compare.variants import BuiltVariant
    from dsp_deploy.dppnet.costs import dppnet_costs
    from dsp_deploy.models import create, list_models, topology
    from dsp_deploy.models.dpp import set_random_patterns
    from dsp_deploy.structure import dense_structure

    model_name = f"dppnet-{dense.model}"
    label = "DPPNet"
    if model_name not in list_models():
        return BuiltVariant(VariantInfo(name, "dppnet", label, 1, 0, 0, target.dense_flops, target.dense_params, 0.0,
                                        None, 0.0, matched_to=target.name, status="skipped",
                                        reason=f"no DPPNet twin of {dense.model} in the model registry"))
    topo = topology(model_name, dense.structure.num_classes, dense.structure.input_size)
    best = None
    for taps in range(1, 10):
        torch.manual_seed(seed)
        model = create(model_name, num_classes=dense.structure.num_classes)
        set_random_patterns(model, taps=taps, seed=seed)
        costs = dppnet_costs(model.state_dict(), topo)
        if best is None or abs(costs["flops"] - target.flops) < abs(best[1]["flops"] - target.flops):
            best = (taps, costs, model.state_dict())
    assert best is not None
    taps, costs, state = best
    ckpt = Checkpoint(model_name, state, dense_structure(topo, {"method": "dppnet"}), {},
                      {"method": "dppnet", "matched_to": target.name})
    info = VariantInfo(
        name=name, method="dppnet", label=f"{label} ({taps}/9 taps)", groups=1, flops=costs["flops"],
        params=costs["params"], dense_flops=target.dense_flops, dense_params=target.dense_params,
        flops_reduction_pct=100 * (1 - costs["flops"] / target.dense_flops),
        dsp_flops_reduction_pct=costs["dpp_conv_reduction_pct"],
        params_reduction_pct=100 * (1 - costs["params"] / target.dense_params), matched_to=target.name,
        flops_match_pct=100 * (costs["flops"] - target.flops) / target.flops, exporter="dsp-deploy",
        notes=f"random weights, random frozen patterns with {taps} union taps per DPP conv; FLOPs include "
              f"attention {costs['attention_flops']} and aggregation {costs['aggregation_flops']} MACs")
    return BuiltVariant(info, checkpoint=ckpt)
