"""The TensorRT lowering choice: the block-candidate selection on hand-made timings (CPU), the
documented default where TensorRT cannot run, and the measured path where a GPU is present."""
from __future__ import annotations

import json

import pytest

from dsp_deploy.errors import UsageError
from dsp_deploy.export import export_onnx, load_plan
from dsp_deploy.export.planner import pick_candidate
from dsp_deploy.export.profiles import load_profile
from dsp_deploy.export.trt_planner import CANDIDATES, DEFAULT_LOWERING, runtime_unavailable
from dsp_deploy.utils.machine import cuda_gpus

from .helpers import tiny_checkpoint


def test_pick_candidate_fastest_at_largest_batch() -> None:
    times = {"dense": {1: 1.0, 32: 10.0}, "grouped": {1: 0.9, 32: 6.0}, "union": {1: 0.5, 32: 7.0}}
    assert pick_candidate(times, (1, 32)) == "grouped"


def test_pick_candidate_never_slower_than_dense_anywhere() -> None:
    # grouped wins big at batch 32 but is 10% slower at batch 1: not eligible
    times = {"dense": {1: 1.0, 32: 10.0}, "grouped": {1: 1.1, 32: 5.0}, "branches": {1: 0.99, 32: 9.0}}
    assert pick_candidate(times, (1, 32)) == "branches"
    assert pick_candidate(times, (1, 32), tolerance=0.15) == "grouped"


def test_pick_candidate_falls_back_to_dense() -> None:
    times = {"dense": {4: 2.0}, "grouped": {4: 3.0}, "union": {4: 2.5}}
    assert pick_candidate(times, (4,)) == "dense"
    # a tie with dense keeps dense (no lowering for nothing); a tie on the largest batch is broken by the mean
    assert pick_candidate({"dense": {4: 2.0}, "grouped": {4: 2.0}}, (4,)) == "dense"
    tie = {"dense": {1: 1.0, 8: 4.0}, "grouped": {1: 0.8, 8: 3.0}, "union": {1: 0.9, 8: 3.0}}
    assert pick_candidate(tie, (1, 8)) == "grouped"


def test_tensorrt_profiles_plan_for_tensorrt(tmp_path) -> None:
    for name in ("tensorrt-fp16", "tensorrt-fp32"):
        profile = load_profile(name)
        assert profile["backend"] == "tensorrt" and profile["lowering"] == "auto"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lowering": "auto", "backend": "openvino"}))
    with pytest.raises(UsageError, match="openvino"):
        load_profile(str(bad))


@pytest.mark.skipif(bool(cuda_gpus()), reason="a GPU is present: the planner measures instead")
def test_default_where_tensorrt_cannot_run(tmp_path) -> None:
    ck = tiny_checkpoint("resnet20", groups=2, size=16, seed=3)
    result = export_onnx(ck, tmp_path / "m.onnx", backend="tensorrt", parity=False)
    plan = load_plan(result.plan_path)
    assert plan.backend == "tensorrt" and plan.mode == "auto" and plan.measured is False
    assert "not measured" in plan.notes["not_measured"] and plan.machine["gpu"] is None
    pruned = [layer.name for layer in ck.structure.layers if not layer.is_dense]
    assert pruned and all(plan.layers[name].lowering == DEFAULT_LOWERING for name in pruned)
    assert "not measured" in plan.table()
    assert "GPU" in (runtime_unavailable() or "")


@pytest.mark.skipif(runtime_unavailable() is not None, reason="needs a GPU: TensorRT engines cannot run here")
def test_measured_plan_where_a_gpu_is_present(tmp_path) -> None:
    assert runtime_unavailable() is None
    ck = tiny_checkpoint("resnet20", groups=2, size=16, seed=3)
    result = export_onnx(ck, tmp_path / "m.onnx", backend="tensorrt", fp16=True, plan_batches=(1, 4), parity=False)
    plan = load_plan(result.plan_path)
    assert plan.backend == "tensorrt" and plan.measured is True and plan.machine["gpu"]
    assert plan.measurements, "every pruned block is timed"
    for unit, times in plan.measurements.items():
        assert "dense" in times and set(times) <= set(CANDIDATES)
        assert all(ms > 0 for per_batch in times.values() for ms in per_batch.values())
        assert plan.chosen[unit] in times


def test_candidates_build_as_small_engines(tmp_path) -> None:
    """The half of the measured path that needs no GPU: every candidate of a pruned block is
    lowered and built by TensorRT for RTX, and the grouped one keeps its grouped convs."""
    pytest.importorskip("tensorrt_rtx")
    from dsp_deploy.checkpoint import build_model
    from dsp_deploy.engines import EngineManifest
    from dsp_deploy.export.build import build_plain_graph
    from dsp_deploy.export.trt_planner import build_candidate_engines
    from dsp_deploy.export.units import find_units
    from dsp_deploy.models import topology

    ck = tiny_checkpoint("resnet20", groups=2, size=16, seed=3)
    topo = topology(ck.model, ck.structure.num_classes, ck.structure.input_size)
    weights = {k: v.detach().numpy() for k, v in build_model(ck).state_dict().items()}
    plain = build_plain_graph(topo, weights, ck.structure, stem_pool=False)
    structure = plain.context.structure
    unit = next(u for u in find_units(plain, topo) if not all(structure[s.name].is_dense for s in u.convs))
    engines, options = build_candidate_engines(plain, unit, (1, 4), tmp_path, fp16=True, flavour="tensorrt_rtx")
    assert set(engines) == set(options) and {"dense", "grouped"} <= set(engines) <= set(CANDIDATES)
    manifests = {name: EngineManifest.load(path) for name, path in engines.items()}
    assert all(m.precision == "float16" and m.batch == {"min": 1, "opt": 4, "max": 4} for m in manifests.values())
    def grouped(name: str) -> int:  # the depthwise 1x1 convs around the block count in every candidate
        return sum(g > 1 for g in manifests[name].conv_groups.values())

    assert grouped("grouped") > grouped("dense")
