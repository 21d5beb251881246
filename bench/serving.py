"""Serving benchmark: throughput and latency percentiles vs concurrency through a real Triton server.

Per model family (ResNet-56 from the authors' G=2 checkpoint, ResNet-50 one-shot DSP G=2 at 50%
whole-model FLOPs reduction): dense, DSP and the L1 channel-pruned baseline at matched FLOPs are
built and exported as in `dsp-deploy compare`, served together by one `dsp-deploy serve` (PyTriton's
tritonserver, ONNX Runtime CPU per model, dynamic batching), and loaded with `tritonclient` gRPC
clients sending batch-1 requests in bounded closed loops at 1, 4, 16 and 64 clients. Variants take
turns at each concurrency level (interleaved), so a busy machine slows all of them alike.

    python bench/serving.py --out bench/results/serving.md           # the committed run
    python bench/serving.py --only resnet56 --requests 32 --out /tmp/s.md   # smoke run
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dsp_deploy.utils.atomic import write_text_atomic  # noqa: E402

log = logging.getLogger("serving")
REFERENCE = REPO.parent / "shared" / "dsp-reference"


def configs(requests: dict[str, int]) -> dict[str, tuple[object, int]]:
    """Family -> (comparison config building its variants, requests per concurrency level)."""
    from dsp_deploy.compare import CompareConfig

    common = {"baselines": ("l1",), "backends": ("ort-cpu",), "batches": (1,), "keep_models": True}
    return {
        "resnet56": (CompareConfig(checkpoint=str(REFERENCE / "resnet56_g2.pt"), **common), requests["resnet56"]),
        "resnet50": (CompareConfig(model="resnet50", groups=2, flops_reductions=(0.5,), flops_metric="total",
                                   **common), requests["resnet50"]),
    }


def export_variants(config: object, folder: Path) -> list[tuple[str, Path, float]]:
    """(served name, ONNX file, whole-model GFLOPs) for dense, DSP and L1 of one family."""
    from dsp_deploy.compare.artifacts import make_artifacts
    from dsp_deploy.compare.variants import build_variants
    from dsp_deploy.structure.validate import topology_for

    built, _ = build_variants(config.validated())  # type: ignore[attr-defined]
    topo = topology_for(built[0].checkpoint.structure)
    artifacts = make_artifacts(built, folder, backends=("ort-cpu",), batches=(1,), lowering="auto",
                               input_shape=(3, *topo.input_size))
    out = []
    for b in built:
        path = artifacts.files.get(b.info.name, {}).get("onnx")
        if path is not None:
            out.append((re.sub(r"[^A-Za-z0-9_]", "_", b.info.name), path, b.info.flops / 1e9))
    return out


def bench_family(name: str, variants: list[tuple[str, Path, float]], requests: int, levels: list[int],
                 threads: int, workdir: Path) -> list[dict[str, object]]:
    """Serve the variants in one server and load each at every level; one row per (level, variant)."""
    import numpy as np
    import onnx

    from dsp_deploy.serving.load import batching_counts, run_load
    from dsp_deploy.serving.process import ServeProcess

    shape = [d.dim_value for d in onnx.load(str(variants[0][1])).graph.input[0].type.tensor_type.shape.dim][1:]
    specs = [f"{v}={p}" for v, p, _ in variants]
    server = ServeProcess(specs, workdir / f"{name}-serve.log", ["--threads", str(threads), "--max-batch", "64"])
    rows = []
    try:
        server.wait_ready([v for v, _, _ in variants])

        def images(rng: np.random.Generator, batch: int) -> np.ndarray:
            return rng.standard_normal((batch, *shape)).astype(np.float32)

        for variant, _, _ in variants:  # warm-up: first requests pay for session set-up
            run_load(server.grpc_url, "grpc", variant, "input", "logits", images, clients=1, requests_per_client=2)
        for clients in levels:
            per_client = max(1, requests // clients)
            for variant, _, gflops in variants:
                before = batching_counts(server.http_url, variant)
                result = run_load(server.grpc_url, "grpc", variant, "input", "logits", images, clients=clients,
                                  requests_per_client=per_client)
                done, executions = (a - b for a, b in zip(batching_counts(server.http_url, variant), before))
                row = {"family": name, "variant": variant, "gflops": gflops, **result.summary(),
                       "mean_exec_batch": done / executions if executions else 0.0}
                log.info("%s %s clients=%d: %.1f img/s p50 %.1f ms p99 %.1f ms (failures %d)", name, variant,
                         clients, row["images_per_s"], row["p50_ms"], row["p99_ms"], result.failures)
                rows.append(row)
    finally:
        code = server.stop()
        log.info("%s server stopped (exit %d)", name, code)
    return rows


def markdown(rows: list[dict[str, object]], command: str, threads: int, minutes: float, load: tuple) -> str:
    """The committed report: command, machine, one table per family with throughput vs dense."""
    from dsp_deploy.bench.machine import cpu_isa, cpu_model, library_versions, usable_cores

    versions = library_versions()
    lines = ["# Serving: dense vs DSP vs channel-pruned through Triton", "",
             f"Command: `{command}` ({minutes:.1f} min). CPU: {cpu_model()} ({cpu_isa()}), {usable_cores()} usable "
             f"cores, no GPU (no GPU rows). Load average before / after: {load[0]} / {load[1]}.", "",
             f"Server: `dsp-deploy serve` = PyTriton's tritonserver (Python backend) with each model bound to an "
             f"ONNX Runtime {versions.get('onnxruntime')} CPU session ({threads} intra-op threads), dynamic batching "
             "(max batch 64, preferred 4/8/16/32/64, 1 ms queue delay). Clients: tritonclient gRPC, one connection "
             "per client, batch-1 requests in closed loops, variants interleaved per concurrency level. Latency = "
             "client-side round trip. `exec batch` = requests per model execution (dynamic batching at work).",
             ""]
    for family in dict.fromkeys(r["family"] for r in rows):
        lines += [f"## {family}", "", "| clients | variant | GFLOPs | requests | img/s | vs dense | p50 ms | p90 ms | "
                  "p99 ms | exec batch | failures |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        fam = [r for r in rows if r["family"] == family]
        for r in fam:
            dense = next((d for d in fam if d["clients"] == r["clients"] and d["variant"] == "dense"), None)
            ratio = f"{r['images_per_s'] / dense['images_per_s']:.2f}x" if dense and dense["images_per_s"] else "-"
            lines.append(f"| {r['clients']} | {r['variant']} | {r['gflops']:.2f} | {r['requests']} | "
                         f"{r['images_per_s']:.1f} | {ratio} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['mean_exec_batch']:.1f} | {r['failures']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.md")
    parser.add_argument("--only", choices=("resnet56", "resnet50"), default=None)
    parser.add_argument("--clients", default="1,4,16,64", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per variant and level (default: resnet56 256, resnet50 64)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model (default: cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from dsp_deploy.bench.machine import usable_cores

    threads = args.threads or usable_cores()
    requests = {"resnet56": args.requests or 256, "resnet50": args.requests or 64}
    levels = [int(c) for c in args.clients.split(",")]
    started, load_before = time.perf_counter(), tuple(round(x, 2) for x in os.getloadavg())
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="dsp-serving-") as tmp:
        for family, (config, count) in configs(requests).items():
            if args.only in (None, family):
                folder = Path(tmp) / family
                rows += bench_family(family, export_variants(config, folder), count, levels, threads, Path(tmp))
    command = "python " + " ".join([Path(sys.argv[0]).as_posix().split(f"{REPO.name}/")[-1], *sys.argv[1:]])
    load_after = tuple(round(x, 2) for x in os.getloadavg())
    text = markdown(rows, command, threads, (time.perf_counter() - started) / 60, (load_before, load_after))
    write_text_atomic(args.out, text)
    print(text)
    return 0 if all(r["failures"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
