"""The acceptance pipeline through the CLI: train -> prune 60% -> finetune -> info."""
from __future__ import annotations

import json

import torch

from dsp_deploy.checkpoint import build_model, load_checkpoint
from dsp_deploy.models import topology
from dsp_deploy.structure.masks import conv_mask, kept_filter_mask
from dsp_deploy.training.regularizer import prunable_convs


def test_train_writes_resumable_group_learning_run(pipeline) -> None:
    run = pipeline["run"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt.extra["complete"] is True and ckpt.extra["resume"] is None
    assert all(layer.is_dense for layer in ckpt.structure.layers)  # group learning keeps the model dense
    names = {s.name for s in prunable_convs(topology("resnet20"))}
    assert set(ckpt.extra["group_logits"]) == names
    assert all(v.shape[0] == 4 and v.abs().sum() > 0 for v in ckpt.extra["group_logits"].values())
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "epoch" in events and events[-1] == "final"


def test_prune_hits_target_and_groups_differ(pipeline, info) -> None:
    summary = info(pipeline["pruned"], pipeline["work"])
    assert abs(summary["dsp_convention"]["flops_reduction_pct"] - 60.0) <= 0.5
    assert summary["method"] == "dsp" and summary["groups"] == 4
    ckpt = load_checkpoint(pipeline["pruned"])
    prunable = [l for l in ckpt.structure.layers if l.groups > 1]
    differing = [l for l in prunable if len({chans for chans in l.group_inputs if chans}) > 1]
    assert len(differing) > len(prunable) / 2, "in most pruned layers the groups read different channels"
    # the saved weights already carry the structure: pruned entries are exact zeros
    for layer in prunable:
        weight = ckpt.state_dict[f"{layer.name}.weight"]
        assert torch.count_nonzero(weight[~conv_mask(layer)]) == 0


def test_finetune_keeps_structure_and_zeros(pipeline, info) -> None:
    work = pipeline["work"]
    pruned, tuned = info(pipeline["pruned"], work), info(pipeline["finetuned"], work)
    assert abs(tuned["dsp_convention"]["flops_reduction_pct"] - 60.0) <= 1.0
    assert tuned["layers"] == pruned["layers"]
    finetuned, pruned = load_checkpoint(pipeline["finetuned"]), load_checkpoint(pipeline["pruned"])
    assert finetuned.structure.layers == pruned.structure.layers
    ckpt = load_checkpoint(pipeline["finetuned"])
    model = build_model(ckpt)
    modules = dict(model.named_modules())
    before = load_checkpoint(pipeline["pruned"]).state_dict
    changed = False
    for layer in ckpt.structure.layers:
        if layer.is_dense:
            continue
        weight = ckpt.state_dict[f"{layer.name}.weight"]
        assert torch.count_nonzero(weight[~conv_mask(layer)]) == 0
        bn = modules[topology("resnet20").conv(layer.name).bn]
        dropped = ~kept_filter_mask(layer)
        assert torch.count_nonzero(bn.weight[dropped]) == 0 and torch.count_nonzero(bn.bias[dropped]) == 0
        changed |= not torch.equal(weight, before[f"{layer.name}.weight"])
    assert changed, "fine-tuning did not update the kept weights"
    assert ckpt.extra["complete"] is True
    assert not (work / "F.resume.pt").exists() and (work / "F.metrics.jsonl").is_file()
    assert len(set(ckpt.metadata["structure_sha256_per_rank"])) == 1


def test_prune_accepts_run_folder_and_one_shot_groups(pipeline, cli_ok, info) -> None:
    work = pipeline["work"]
    cli_ok("prune", "RUN", "--flops-reduction", "0.5", "--groups", "2", "--out", "P2.pt", "--json", "--no-progress",
           cwd=work)
    summary = info(work / "P2.pt", work)
    assert summary["groups"] == 2 and summary["metadata"]["grouping"] == "one-shot-clustering"
    assert abs(summary["dsp_convention"]["flops_reduction_pct"] - 50.0) <= 0.5
    total = cli_ok("prune", "RUN", "--flops-reduction", "0.5", "--flops-metric", "total", "--out", "P3.pt", "--json",
                   "--no-progress", cwd=work)
    assert abs(json.loads(total.stdout)["flops_reduction_pct"] - 50.0) <= 0.5
