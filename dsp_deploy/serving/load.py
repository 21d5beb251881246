"""Closed-loop load through a Triton server with ``tritonclient``: N clients, each a bounded loop of
requests, latency per request, failures counted (never retried). Used by the tests and
``bench/serving.py``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp_deploy.errors import ServingError
from dsp_deploy.runtime.stats import percentile


@dataclass
class LoadResult:
    """What one load level produced; latencies in milliseconds, one per successful request."""

    clients: int
    requests: int
    images: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    first_error: str | None = None
    outputs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (input, output) when kept

    def summary(self) -> dict[str, Any]:
        """Throughput and p50/p90/p99 latency (ms) as a flat dict."""
        lat = self.latencies_ms or [float("nan")]
        return {"clients": self.clients, "requests": self.requests, "failures": self.failures,
                "images_per_s": self.images / self.seconds if self.seconds else 0.0,
                "requests_per_s": self.requests / self.seconds if self.seconds else 0.0,
                "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99)}


def make_client(url: str, protocol: str, timeout_s: float = 60.0) -> tuple[Any, Any]:
    """(client, tritonclient module) for ``protocol`` "http" or "grpc"."""
    if protocol == "http":
        import tritonclient.http as module

        return module.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s), module
    import tritonclient.grpc as module

    return module.InferenceServerClient(url), module


def infer(client: Any, module: Any, model: str, inputs: dict[str, np.ndarray], output: str,
          timeout_s: float = 60.0) -> np.ndarray:
    """One inference request; returns ``output`` as numpy (tritonclient raises on an error response)."""
    from tritonclient.utils import np_to_triton_dtype

    items = []
    for name, array in inputs.items():
        item = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        item.set_data_from_numpy(array)
        items.append(item)
    kwargs = {"client_timeout": timeout_s} if module.__name__.endswith("grpc") else {}
    return client.infer(model, items, **kwargs).as_numpy(output)


def run_load(url: str, protocol: str, model: str, input_name: str, output: str,
             make_input: Callable[[np.random.Generator, int], np.ndarray], *, clients: int,
             requests_per_client: int, batch_sizes: Sequence[int] = (1,), seed: int = 0,
             keep_outputs: bool = False) -> LoadResult:
    """``clients`` threads, each with its own connection, send ``requests_per_client`` requests of
    batch sizes drawn from ``batch_sizes``; returns latencies, failures and (optionally) outputs."""
    lock = threading.Lock()
    result = LoadResult(clients, 0, 0, 0.0)
    start = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        rng = np.random.default_rng(seed + index)
        client, module = make_client(url, protocol)
        try:
            start.wait()
            for _ in range(requests_per_client):
                array = make_input(rng, int(rng.choice(batch_sizes)))
                began = time.perf_counter()
                try:
                    out = infer(client, module, model, {input_name: array}, output)
                except Exception as exc:  # noqa: BLE001 - every failed request is counted, not raised
                    with lock:
                        result.failures += 1
                        result.first_error = result.first_error or str(exc).splitlines()[0]
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    result.latencies_ms.append(elapsed)
                    result.requests += 1
                    result.images += len(array)
                    if keep_outputs:
                        result.outputs.append((array, out))
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


def batching_counts(url: str, model: str) -> tuple[int, int]:
    """(successful requests, model executions) from the server's statistics; fewer executions than
    requests means the dynamic batcher merged requests."""
    import tritonclient.http as module

    client = module.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_stats"]["success"]["count"]), int(stats["execution_count"])


def wait_ready(url: str, models: Sequence[str], timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll the HTTP health endpoints until every model is ready (bounded by ``timeout_s``)."""
    import tritonclient.http as module

    deadline = time.monotonic() + timeout_s
    client = module.InferenceServerClient(url)
    try:
        while time.monotonic() < deadline and alive():
            try:
                if client.is_server_ready() and all(client.is_model_ready(m) for m in models):
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.5)
    finally:
        client.close()
    raise ServingError(f"server at {url} not ready within {timeout_s:.0f} s (or it exited)")
