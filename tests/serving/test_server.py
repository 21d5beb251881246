"""The real Triton server serving a `triton-repo` repository: parity with ONNX Runtime over HTTP and
gRPC, load with dynamic batching, bad requests, a killed client, and a clean shutdown."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dsp_deploy.serving.load import batching_counts, infer, make_client, run_load

pytestmark = pytest.mark.slow


def images(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)


def ort_run(path, x: np.ndarray) -> np.ndarray:
    from dsp_deploy.runtime.ort import OrtRunner

    with OrtRunner(path) as runner:
        return runner.infer({"input": x})["logits"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_responses_match_onnx_runtime(server, dsp_onnx, protocol):
    x = images(np.random.default_rng(0), 5)
    client, module = make_client(server.http_url if protocol == "http" else server.grpc_url, protocol)
    try:
        got = infer(client, module, "dsp20", {"input": x}, "logits")
    finally:
        client.close()
    assert got.shape == (5, 10)
    assert np.abs(got - ort_run(dsp_onnx, x)).max() <= 1e-5


def test_image_ensemble_preprocesses_like_the_dataset(server, dsp_onnx):
    from dsp_deploy.data.info import CIFAR10_MEAN, CIFAR10_STD

    image = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    client, module = make_client(server.http_url, "http")
    try:
        got = infer(client, module, "dsp20_image", {"image": image}, "logits")
    finally:
        client.close()
    chw = (image.astype(np.float32) / 255 - np.float32(CIFAR10_MEAN)) / np.float32(CIFAR10_STD)
    want = ort_run(dsp_onnx, np.ascontiguousarray(chw.transpose(0, 3, 1, 2)))
    assert np.abs(got - want).max() <= 1e-4


def test_load_16_clients_dynamic_batching(server, dsp_onnx):
    before = batching_counts(server.http_url, "dsp20")
    result = run_load(server.grpc_url, "grpc", "dsp20", "input", "logits", images, clients=16,
                      requests_per_client=50, batch_sizes=range(1, 9), keep_outputs=True)
    requests, executions = (a - b for a, b in zip(batching_counts(server.http_url, "dsp20"), before))
    summary = result.summary()
    print(f"load 16x50: p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms, "
          f"{summary['images_per_s']:.0f} img/s, {requests} requests in {executions} executions")
    assert result.failures == 0, result.first_error
    assert result.requests == 800 and requests == 800
    assert executions < requests  # the dynamic batcher merged requests
    assert summary["p50_ms"] <= summary["p99_ms"]
    x, y = result.outputs[-1]
    assert np.abs(y - ort_run(dsp_onnx, x)).max() <= 1e-5


@pytest.mark.parametrize("name,shape,dtype", [
    ("input", (2, 3, 16, 16), np.float32),  # wrong shape
    ("input", (2, 3, 32, 32), np.float64),  # wrong dtype
    ("pixels", (2, 3, 32, 32), np.float32),  # unknown input name
])
def test_bad_request_gets_error_and_server_keeps_serving(server, name, shape, dtype):
    from tritonclient.utils import InferenceServerException

    client, module = make_client(server.http_url, "http")
    try:
        with pytest.raises(InferenceServerException):
            infer(client, module, "dsp20", {name: np.zeros(shape, dtype)}, "logits")
        assert infer(client, module, "dsp20", {"input": images(np.random.default_rng(2), 2)}, "logits").shape == (2, 10)
    finally:
        client.close()


KILLED_CLIENT = """
import sys, numpy as np, tritonclient.http as h
c = h.InferenceServerClient(sys.argv[1], concurrency=4)
x = np.ones((16, 3, 32, 32), np.float32)
i = h.InferInput("input", list(x.shape), "FP32"); i.set_data_from_numpy(x)
for n in range(200):
    c.async_infer("dsp20", [i])
    if n == 8:
        print("sending", flush=True)
"""


def test_killed_client_loses_no_other_response(server, dsp_onnx):
    victim = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, server.http_url], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline().strip() == "sending"
        result = run_load(server.http_url, "http", "dsp20", "input", "logits", images, clients=4,
                          requests_per_client=8, batch_sizes=(1, 4), keep_outputs=True, seed=7)
        victim.kill()  # while its requests are queued or running
    finally:
        victim.kill()
        victim.wait(timeout=10)
    after = run_load(server.http_url, "http", "dsp20", "input", "logits", images, clients=4,
                     requests_per_client=4, batch_sizes=(2,), keep_outputs=True, seed=9)
    assert result.failures == 0 and after.failures == 0, result.first_error or after.first_error
    assert result.requests == 32 and after.requests == 16
    for x, y in result.outputs + after.outputs:
        assert np.abs(y - ort_run(dsp_onnx, x)).max() <= 1e-5


def test_sigint_stops_server_without_orphans(server):
    assert server.descendants, "the server started no tritonserver process"
    started = time.monotonic()
    code, leftover = server.stop_checked(signal.SIGINT)
    assert code == 0, server.log.read_text()[-2000:]
    assert leftover == []
    assert time.monotonic() - started < 60
