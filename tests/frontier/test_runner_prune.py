"""The accuracy-latency runner prunes DSP in memory: the same structure as the file stage, no files."""
from __future__ import annotations

from pathlib import Path

import torch

from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
from dsp_deploy.frontier.runner import Runner
from dsp_deploy.frontier.settings import RunSettings
from dsp_deploy.models import create, topology
from dsp_deploy.training.prune import PruneOptions, prune_checkpoint
from dsp_deploy.training.regularizer import prunable_convs


def _learned(folder: Path, groups: int) -> Path:
    """A ResNet-20 'group-learning' checkpoint with random group logits, saved as ``folder/learned.pt``."""
    torch.manual_seed(0)
    learned = dense_checkpoint("resnet20", create("resnet20"))
    convs = prunable_convs(topology("resnet20"))
    learned.extra["group_logits"] = {s.name: torch.randn(groups, s.out_channels) for s in convs}
    save_checkpoint(folder / "learned.pt", learned)
    return folder / "learned.pt"


def test_dsp_prune_in_memory(tmp_path: Path, monkeypatch) -> None:
    source = _learned(tmp_path, 2)
    monkeypatch.chdir(tmp_path)
    runner = Runner(RunSettings("flops", ("resnet20",), (0,), "synthetic:64", 8, 1, 1, 1), tmp_path / "cache")
    pruned = runner.prune("dsp-g2", source, 0.5, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learned.pt"]  # no scratch file, no cache written
    summary = prune_checkpoint(PruneOptions(str(source), str(tmp_path / "P.pt"), 0.5, "total", progress=False))
    assert pruned.metadata["structure_sha256"] == summary["structure_sha256"]
    assert pruned.metadata["grouping"] == "learned" and pruned.structure.max_groups == 2


def test_shaped_dsp_prunes_for_the_match_batch(tmp_path: Path) -> None:
    """``dsp-shaped`` prunes the group-learning model to the FLOPs ratio under `prune --hardware-aware`'s shape
    rules for ONNX Runtime CPU at the run's match batch, with the run's latency table (here one computed by
    hand, so nothing is timed): the same structure as the file stage, and the record says so."""
    from dsp_deploy.targets import make_target
    from dsp_deploy.training.hardware_prune import HardwareTarget

    from support.latency import synthetic_table

    source = _learned(tmp_path, 4)
    settings = RunSettings("flops", ("resnet20",), (0,), "synthetic:64", 8, 1, 1, 1, match_batch=32)
    runner = Runner(settings, tmp_path / "cache")
    table = runner.latency_table("resnet20", 32)
    table.parent.mkdir(parents=True)
    synthetic_table("resnet20", 4, make_target(batch=32)).save(table)
    pruned = runner.prune("dsp-shaped", source, 0.5, 0)
    shaped = pruned.metadata["hardware"]
    assert shaped["target"]["batch"] == 32 and shaped["target"]["backend"] == "ort-cpu"
    assert runner.shaped_for("resnet20").table == str(table)
    summary = prune_checkpoint(PruneOptions(str(source), str(tmp_path / "P.pt"), 0.5, "total", progress=False,
                                            hardware=HardwareTarget(batch=32, table=str(table))))
    assert pruned.metadata["structure_sha256"] == summary["structure_sha256"]
    assert pruned.metadata["structure_sha256"] != runner.prune("dsp-g4", source, 0.5, 0).metadata["structure_sha256"]
