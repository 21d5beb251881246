"""DSP latency-targeted pruning as a method of the accuracy-latency run: registered by the frontier runner,
it prunes a group-learned checkpoint straight to a latency budget (a hand-made latency table: nothing is
timed here), reusing a DSP group-learning run. Its rows in the report: test_frontier_report.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
from dsp_deploy.compare.latency_match import LatencyTarget, latency_targeted
from dsp_deploy.errors import TrainingError, UsageError
from dsp_deploy.frontier.runner import skip_reason
from dsp_deploy.frontier.settings import settings_for
from dsp_deploy.models import create, topology
from dsp_deploy.structure import count_costs, dense_structure
from dsp_deploy.targets import make_target
from dsp_deploy.training.regularizer import prunable_convs

from support.latency import synthetic_table


def _group_learned(path: Path, groups: int = 2) -> Path:
    """A ResNet-20 checkpoint with learned-group logits, as `train` (group learning) leaves it."""
    torch.manual_seed(0)
    ckpt = dense_checkpoint("resnet20", create("resnet20").eval(), source="test")
    topo = topology("resnet20")
    ckpt.extra.update(
        complete=True, group_logits={s.name: torch.randn(groups, s.out_channels) for s in prunable_convs(topo)}
    )
    save_checkpoint(path, ckpt)
    return path


def test_registered_pruner_prunes_to_the_latency_budget(tmp_path: Path) -> None:
    assert skip_reason("dsp-latency") is None  # importing the runner registered it
    prune, reason = latency_targeted("dsp-latency")
    assert prune is not None and reason == ""
    target = LatencyTarget(speedup=1.5, batch=32)
    table = synthetic_table("resnet20", 2, make_target("ort-cpu", threads=1, batch=32))
    table.save(tmp_path / "table.json")
    pruned = prune(_group_learned(tmp_path / "learned.pt"), target, seed=0, table=tmp_path / "table.json",
                   measure=False)  # the table alone (the run's pruner also measures and corrects)
    topo = topology("resnet20")
    budget = table.predict(dense_structure(topo), topo) / 1.5
    predicted = table.predict(pruned.structure, topo)
    assert 0.9 * budget < predicted <= budget  # pruned to the budget by the table, not far below
    assert pruned.metadata["latency"]["goal"] == "1.5x dense" and pruned.metadata["groups"] == 2
    assert "measured_ms" not in pruned.metadata["latency"]
    assert count_costs(pruned.structure).flops_reduction_pct > 10
    assert max(layer.groups for layer in pruned.structure.layers) == 2  # the learned groups are used
    with pytest.raises(TrainingError, match="out of reach"):  # the run lists such a budget as not reached
        prune(tmp_path / "learned.pt", LatencyTarget(speedup=50.0, batch=32), seed=0, table=tmp_path / "table.json",
              measure=False)


def test_settings_reuse_a_dsp_group_learning_run() -> None:
    for budget in ("quick", "full"):
        s = settings_for(budget)
        assert "dsp-latency" in s.methods and f"dsp-g{s.latency_groups}" in s.methods  # nothing trained twice
    assert settings_for("quick").key() != settings_for("quick", latency_groups=4).key()


def test_latency_groups_must_be_dsp_groups() -> None:
    with pytest.raises(UsageError, match="latency-groups"):
        settings_for("quick", latency_groups=1)


def test_latency_table_exports_the_runs_input_shape(tmp_path: Path) -> None:
    """The table's calibration exports random-weight structures: shaped like the run's data (Fashion-MNIST:
    one channel, 28x28), not like the architecture's default."""
    import onnx

    from dsp_deploy.hardware.whole import export_structures

    topo = topology("resnet20", 10, (28, 28), 1)
    path = export_structures({"dense": dense_structure(topo)}, tmp_path, lowering="dense")["dense"]
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [1, 28, 28]


def test_measured_prune_shares_the_runs_block_timings(tmp_path: Path) -> None:
    """The pruner's measured tries plan their exports with the run's block timings: the run's own export
    of the result then finds every block already timed and lowers it as the measured try did (the row's
    latency is that of the structure the corrections accepted, not of a re-planned export)."""
    import json

    from dsp_deploy.compare.latency_match import export_checkpoint

    prune, _ = latency_targeted("dsp-latency")
    table = synthetic_table("resnet20", 2, make_target("ort-cpu", threads=1, batch=32))
    table.save(tmp_path / "table.json")
    cache = tmp_path / "plan-cache.json"
    pruned = prune(_group_learned(tmp_path / "learned.pt"), LatencyTarget(speedup=1.3, batch=32), seed=0,
                   table=tmp_path / "table.json", runs=1, corrections=0, plan_cache=cache, plan_runs=1,
                   plan_batches=(1,))  # as the quick run: matched at batch 32, exports planned at batch 1
    assert "measured_ms" in pruned.metadata["latency"]
    timed = set(json.loads(cache.read_text())["entries"])
    assert timed  # the measured tries planned their exports with the run's cache
    export_checkpoint(pruned, tmp_path / "row.onnx", cache_path=str(cache), plan_runs=1, plan_batches=(1,))
    assert set(json.loads(cache.read_text())["entries"]) == timed  # every block found: nothing re-timed


def test_run_aims_inside_half_the_tolerance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run times a latency-targeted result again after the pruner accepted it: the pruner is asked for
    half the tolerance, so the second measurement's noise does not push a borderline try out of it."""
    from dsp_deploy.compare import latency_match
    from dsp_deploy.frontier.runner import Runner

    seen = []
    monkeypatch.setitem(latency_match._LATENCY_TARGETED, "recorder",
                        lambda source, target, **kw: seen.append((target, kw["min_seconds"])))
    Runner(settings_for("full"), tmp_path).prune_to_latency("recorder", tmp_path / "x.pt", "resnet20",
                                                            LatencyTarget(speedup=1.5, batch=32), 0)
    # and its tries are timed as long as the run times every model
    assert seen == [(LatencyTarget(speedup=1.5, batch=32, tolerance=0.025), settings_for("full").min_seconds)]
    assert settings_for("full").min_seconds >= 3.0
