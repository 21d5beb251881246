"""`bench/latency_targets.py`'s predictor-error structures are the kind the latency-targeted search
predicts: DSP samples shaped by the target's rules (on a table computed by hand, nothing timed)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from dsp_deploy.hardware.budget import live_groups, target_shape
from dsp_deploy.models import topology
from dsp_deploy.targets import make_target

from support.latency import synthetic_table

ROOT = Path(__file__).resolve().parents[2]


def _bench_module():
    spec = importlib.util.spec_from_file_location("latency_targets_bench", ROOT / "bench" / "latency_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predictor_error_structures_are_shaped_as_the_search_leaves_them():
    bench = _bench_module()
    target = make_target(multiple=8)
    table = synthetic_table("resnet20", 4, target, grouped_ms=100.0)  # groups never pay: every conv falls to one
    topo = topology("resnet20")
    shape = target_shape(table, topo, target.backend)
    structures = bench.random_structures("resnet20", target, 5, seed=1, dsp_table=table)
    dsp = {k: s for k, s in structures.items() if k.startswith("dsp-")}
    assert len(dsp) >= 3 and len(structures) == 5
    for name, structure in dsp.items():
        assert shape(structure).layers == structure.layers, name  # a fixed point of the target's rules
        assert all(live_groups(layer) == 1 for layer in structure.layers if not layer.is_dense), name
