"""run_benchmark over real ONNX Runtime sessions on tiny models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsp_deploy.bench import (
    ResultRow,
    RunnerOptions,
    format_table,
    load_variant,
    make_runner,
    read_json,
    run_benchmark,
    write_json,
)
from dsp_deploy.errors import BenchError, UsageError
from dsp_deploy.runtime.ort import OrtRunner
from dsp_deploy.utils.machine import cuda_gpus


class RecordingRunner(OrtRunner):
    """A real ORT runner that also appends what the harness asks of it to a shared log."""

    def __init__(self, log: list, label: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log, self.label = log, label

    def prepare(self, feed) -> None:
        self.log.append(("prepare", self.label, next(iter(feed.values())).shape[0]))
        super().prepare(feed)

    def timed_infer(self) -> int:
        self.log.append(("run", self.label, None))
        return super().timed_infer()


def test_variants_are_interleaved_per_round(tmp_path: Path, make_onnx) -> None:
    paths = [make_onnx(tmp_path / f"{n}.onnx", 4 + i, seed=i) for i, n in enumerate("abc")]
    calls: list = []

    def factory(variant, backend, options: RunnerOptions):
        return RecordingRunner(calls, variant.name, variant.path, threads=options.threads)

    warmup, runs = 2, 3
    rows = run_benchmark(paths, "ort-cpu", [1, 2], threads=1, runs=runs, warmup=warmup, runner_factory=factory)
    per_batch = 3 + 3 * (warmup + runs)  # 3 prepares, then rounds of a b c
    assert len(calls) == 2 * per_batch
    for index, batch in enumerate((1, 2)):
        chunk = calls[index * per_batch:(index + 1) * per_batch]
        assert chunk[:3] == [("prepare", n, batch) for n in "abc"]
        assert [label for _, label, _ in chunk[3:]] == list("abc") * (warmup + runs)
    assert [(r.variant, r.batch, r.runs) for r in rows] == [(n, b, runs) for b in (1, 2) for n in "abc"]


def test_ort_cpu_rows_for_two_models(onnx_pair: tuple[Path, Path]) -> None:
    rows = run_benchmark(list(onnx_pair), ["ort-cpu"], [1, 4], threads=1, runs=15, warmup=2)
    assert [(r.variant, r.batch) for r in rows] == [("small", 1), ("wide", 1), ("small", 4), ("wide", 4)]
    for row in rows:
        assert row.status == "ok" and row.reason == ""
        assert row.backend == "ort-cpu" and row.threads == 1 and row.runs == 15
        assert 0 < row.min_ms <= row.median_ms <= row.p90_ms <= row.p99_ms <= row.max_ms
        assert len(row.samples_ms) == 15
        assert row.throughput == pytest.approx(row.batch * 1000 / row.median_ms)
        assert row.input_shapes == {"x": [row.batch, 3, 8, 8]}
        assert row.machine["cpu"] and row.machine["logical_cores"] >= 1
        assert row.versions["onnxruntime"]


def test_gpu_backends_skipped_with_reason(onnx_pair: tuple[Path, Path], engine_file: Path) -> None:
    if cuda_gpus():
        pytest.skip("a CUDA GPU is present; this checks the CPU-only behaviour")
    rows = run_benchmark([onnx_pair[0], engine_file], "ort-cpu,ort-cuda,trt", [1], threads=1, runs=3, warmup=0)
    status = {(r.variant, r.backend): r for r in rows}
    assert set(status) == {("small", "ort-cpu"), ("small", "ort-cuda"), ("eng", "trt")}
    assert status[("small", "ort-cpu")].status == "ok"
    for key in (("small", "ort-cuda"), ("eng", "trt")):
        row = status[key]
        assert row.status == "skipped" and row.median_ms is None
        assert row.reason and "\n" not in row.reason
    assert "CUDAExecutionProvider" in status[("small", "ort-cuda")].reason
    assert "GPU" in status[("eng", "trt")].reason
    table = format_table(rows)
    assert "skipped: " in table and "ort-cuda" in table


def test_unknown_backend_lists_valid_ones(onnx_pair: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError) as info:
        run_benchmark([onnx_pair[0]], "ort-cpu,tvm", [1], runs=1)
    message = str(info.value)
    assert "tvm" in message and "ort-cpu" in message and "trt" in message


def test_fixed_batch_onnx_rejects_other_batch(tmp_path: Path, make_onnx) -> None:
    fixed = make_onnx(tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(BenchError, match="fixed batch size of 1; batch 4"):
        run_benchmark([fixed], "ort-cpu", [1, 4], runs=1, warmup=0)
    rows = run_benchmark([fixed], "ort-cpu", [1], runs=2, warmup=0)
    assert rows[0].status == "ok"


def test_engine_profile_range_checked_before_running(engine_file: Path) -> None:
    with pytest.raises(BenchError, match="outside the engine profile range 1..8"):
        run_benchmark([engine_file], "trt", [4, 16], runs=1)


def test_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(BenchError, match="not an ONNX model"):
        load_variant(junk)
    with pytest.raises(BenchError, match="no such file"):
        load_variant(tmp_path / "missing.onnx")
    with pytest.raises(BenchError, match="no manifest"):
        (tmp_path / "bare.engine").write_bytes(b"\0" * 16)
        load_variant(tmp_path / "bare.engine")


def test_corrupt_onnx_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a model")
    with pytest.raises(BenchError) as info:
        run_benchmark([bad], "ort-cpu", [1], runs=1)
    assert "bad.onnx" in str(info.value) and "\n" not in str(info.value)


def test_time_budget_mode(onnx_pair: tuple[Path, Path]) -> None:
    rows = run_benchmark([onnx_pair[0]], "ort-cpu", [1], threads=1, time_budget=0.2, warmup=1)
    assert rows[0].runs >= 1 and len(rows[0].samples_ms) == rows[0].runs
    with pytest.raises(UsageError):
        run_benchmark([onnx_pair[0]], "ort-cpu", [1], runs=5, time_budget=1.0)


def test_min_seconds_stretches_the_rounds(onnx_pair: tuple[Path, Path]) -> None:
    """``runs`` is a minimum then: rounds go on until the time has passed (a tiny model: thousands)."""
    import time

    started = time.perf_counter()
    rows = run_benchmark(list(onnx_pair), "ort-cpu", [1], threads=1, runs=5, min_seconds=0.3, warmup=1)
    assert time.perf_counter() - started >= 0.3
    assert rows[0].runs == rows[1].runs > 5  # interleaved: every variant the same rounds
    assert run_benchmark([onnx_pair[0]], "ort-cpu", [1], threads=1, runs=50, min_seconds=1e-9)[0].runs == 50
    for bad in ({"min_seconds": -1.0}, {"min_seconds": 1.0, "time_budget": 1.0, "runs": None}):
        with pytest.raises(UsageError):
            run_benchmark([onnx_pair[0]], "ort-cpu", [1], **{"runs": 5, **bad})


def test_json_round_trip_and_table(onnx_pair: tuple[Path, Path], tmp_path: Path) -> None:
    rows = run_benchmark(list(onnx_pair), "ort-cpu,ort-cuda", [1], threads=1, runs=5, warmup=1)
    out = tmp_path / "res" / "bench.json"
    write_json(rows, out)
    doc = json.loads(out.read_text())
    assert doc["format"] == "dsp-deploy/bench-results" and doc["format_version"] == 1 and len(doc["rows"]) == len(rows)
    assert [p.name for p in out.parent.iterdir()] == ["bench.json"]  # no temp file left behind
    back = read_json(out)
    assert back == rows and all(isinstance(r, ResultRow) for r in back)
    table = format_table(rows, baseline="small")
    lines = table.splitlines()
    assert "speedup vs small" in lines[0]
    small_line = next(line for line in lines if line.startswith("small") and "ort-cpu" in line)
    assert small_line.rstrip().endswith("1.00x")
    with pytest.raises(BenchError):
        format_table(rows, baseline="nope")
    with pytest.raises(BenchError, match="not a dsp-deploy bench result"):
        (tmp_path / "x.json").write_text("[]")
        read_json(tmp_path / "x.json")
    del doc["rows"][0]["variant"]  # a damaged row names the file and the row
    doc["rows"][1] = "oops"
    for bad, needle in ((doc, "row 0: malformed result row"), (dict(doc, rows=doc["rows"][1:]), "row 0 is a str")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(BenchError, match=needle) as err:
            read_json(tmp_path / "bad.json")
        assert str(tmp_path / "bad.json") in str(err.value)


def test_torchscript_runner_matches_ort(tmp_path: Path, make_onnx, conv_weights) -> None:
    """The torch backend on a TorchScript module computes what ORT computes on the same conv."""
    torch = pytest.importorskip("torch")
    onnx_path = make_onnx(tmp_path / "conv.onnx", 4, seed=5)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(conv_weights(4, 5)))
    script = tmp_path / "conv.pt"
    torch.jit.trace(conv.eval(), torch.zeros(1, 3, 8, 8)).save(str(script))
    options = RunnerOptions(threads=1, input_shape=(3, 8, 8))
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    with make_runner(load_variant(script), "torch", options) as torch_runner, \
            make_runner(load_variant(onnx_path), "ort-cpu", options) as ort_runner:
        assert torch_runner.input_specs()[0].shape == (None, 3, 8, 8)
        (got,) = torch_runner.infer(feed).values()
        (want,) = ort_runner.infer(feed).values()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    rows = run_benchmark([script], "torch,torch-cuda", [1, 2], threads=1, runs=3, warmup=1, input_shape="3x8x8")
    torch_rows = [(r.backend, r.batch, r.status) for r in rows if r.backend == "torch"]
    assert torch_rows == [("torch", 1, "ok"), ("torch", 2, "ok")]
    if not torch.cuda.is_available():
        assert all(r.status == "skipped" and "CUDA" in r.reason for r in rows if r.backend == "torch-cuda")


def test_checkpoint_variant_runs_on_torch(tmp_path: Path) -> None:
    checkpoint = pytest.importorskip("dsp_deploy.checkpoint")
    models = pytest.importorskip("dsp_deploy.models")
    path = tmp_path / "r20.pt"
    checkpoint.save_checkpoint(path, checkpoint.dense_checkpoint("resnet20", models.create("resnet20")))
    assert load_variant(path).kind == "checkpoint"
    rows = run_benchmark([path], "torch", [1], threads=1, runs=2, warmup=1)
    assert rows[0].status == "ok" and rows[0].input_shapes == {"input": [1, 3, 32, 32]}
