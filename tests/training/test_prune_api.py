"""The in-memory pruning API: options validated on construction with errors naming the field,
`prune_dsp` on a loaded checkpoint (no files), and the path wrapper giving the same result."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsp_deploy.checkpoint import dense_checkpoint, load_checkpoint, save_checkpoint
from dsp_deploy.errors import OptionError
from dsp_deploy.models import create
from dsp_deploy.training.common import structure_fingerprint
from dsp_deploy.training.dsp_prune import DSPPruneOptions, PruneRecord, prune_dsp
from dsp_deploy.training.prune import PruneOptions, prune_checkpoint


@pytest.fixture(scope="module")
def dense():
    torch.manual_seed(0)
    return dense_checkpoint("resnet20", create("resnet20"))


@pytest.mark.parametrize("kwargs,needle", [
    ({"flops_reduction": 1.5}, "flops_reduction must be a fraction strictly between 0 and 1"),
    ({}, "no target: pass flops_reduction (e.g. 0.6 for 60% fewer FLOPs) or latency"),
    ({"flops_reduction": 0.5, "groups": 0}, "groups must be a positive integer"),
    ({"flops_reduction": 0.5, "channel_multiple": 0}, "channel_multiple must be a positive integer"),
    ({"flops_reduction": 0.5, "flops_metric": "macs"}, "flops_metric must be one of dsp, total, not 'macs'"),
    ({"flops_reduction": 0.5, "criterion": "nope"}, "criterion must be one of l1, l2sq, not 'nope'"),
])
def test_options_are_checked_on_construction_naming_the_field(kwargs: dict, needle: str) -> None:
    with pytest.raises(OptionError) as info:
        DSPPruneOptions(**kwargs)
    assert needle in str(info.value) and "--" not in str(info.value)
    flag = "--" + info.value.option.replace("_", "-")
    assert flag in str(info.value.named(flag))  # the CLI re-spells the option as its flag


def test_recipe_fills_what_is_left_unset() -> None:
    from dsp_deploy.hardware.budget import LatencyGoal
    from dsp_deploy.training.latency_prune import LatencyOptions

    recipe = {"prune": {"flops_reduction": 0.6, "flops_metric": "total", "groups": 2, "channel_multiple": 4}}
    opts = DSPPruneOptions.from_recipe(recipe, flops_reduction=0.5, groups=None, criterion="l1")
    assert (opts.flops_reduction, opts.flops_metric, opts.groups, opts.channel_multiple) == (0.5, "total", 2, 4)
    assert opts.criterion == "l1"
    latency = LatencyOptions(LatencyGoal(speedup=1.5))
    opts = DSPPruneOptions.from_recipe(recipe, latency=latency)  # a latency goal: no FLOPs target, own alignment
    assert (opts.flops_reduction, opts.channel_multiple, opts.groups) == (None, None, 2)
    assert DSPPruneOptions.from_recipe("cifar10_resnet20").flops_reduction is not None  # shipped, by name


def test_prune_dsp_in_memory_matches_the_file_stage(dense, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pruned = prune_dsp(dense, DSPPruneOptions(flops_reduction=0.6, groups=2), source="dense twin")
    assert list(tmp_path.iterdir()) == []  # nothing written
    record = pruned.record
    assert isinstance(record, PruneRecord) and record.groups == 2 and record.grouping == "one-shot-clustering"
    assert abs(record.reduction_pct - 60.0) <= 0.5 and record.target_pct == 60.0 and 0 < record.beta < 1
    assert record.structure_sha256 == structure_fingerprint(pruned.checkpoint.structure)
    assert pruned.checkpoint.metadata["source"] == "dense twin" and pruned.checkpoint.extra["complete"]
    assert not all(layer.is_dense for layer in pruned.checkpoint.structure.layers)

    save_checkpoint(tmp_path / "dense.pt", dense)
    summary = prune_checkpoint(PruneOptions("dense.pt", "P.pt", 0.6, groups=2, progress=False))
    assert summary["structure_sha256"] == record.structure_sha256 and summary["beta"] == record.beta
    assert load_checkpoint(tmp_path / "P.pt").structure == pruned.checkpoint.structure


def test_prune_dsp_errors_name_options_not_flags(dense) -> None:
    with pytest.raises(OptionError, match=r"has no learned groups.*pass groups G") as info:
        prune_dsp(dense, DSPPruneOptions(flops_reduction=0.6))
    assert "--groups G" in str(info.value.named("--groups"))


def test_another_criterion_prunes_other_channels(dense) -> None:
    default = prune_dsp(dense, DSPPruneOptions(flops_reduction=0.6, groups=2))
    by_l1 = prune_dsp(dense, DSPPruneOptions(flops_reduction=0.6, groups=2, criterion="l1"))
    assert by_l1.record.criterion == "l1" and by_l1.checkpoint.metadata["criterion"] == "l1"
    assert by_l1.checkpoint.structure.layers != default.checkpoint.structure.layers
    assert "criterion" not in default.checkpoint.metadata  # the default leaves the file as before


def test_cli_names_the_flag(cli, tmp_path: Path) -> None:
    proc = cli("prune", "dense.pt", "--groups", "2", "--flops-reduction", "0.6", "--criterion", "nope", "--out",
               "P.pt", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--criterion must be one of l1, l2sq, not 'nope'" in proc.stderr and not (tmp_path / "P.pt").exists()
    proc = cli("prune", "dense.pt", "--out", "P.pt", cwd=tmp_path)  # the same one line as before the options
    assert proc.returncode == 2 and "error: no target: pass --flops-reduction R (e.g. 0.6 for 60% fewer FLOPs), " \
        "--latency-target MS or --speedup X" in proc.stderr
