"""`dsp-deploy serve`: ONNX models (or a triton-repo repository) behind a real Triton server."""
from __future__ import annotations

import argparse
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.serving.server import ModelServer, ServeOptions, collect_models, serve_until_signal


def add_parser(subparsers: Any) -> None:
    """Register the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve models over HTTP and gRPC through Triton Inference Server (PyTriton) until SIGINT/SIGTERM",
        description="Starts PyTriton's tritonserver with every MODEL bound to an ONNX Runtime runner (TensorRT "
        "for engines on a GPU), dynamic batching on. Listens on 127.0.0.1 unless --host says otherwise.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="ONNX file ([NAME=]PATH) or a repository written by `dsp-deploy triton-repo`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--http-port", type=int, default=8000, help="default %(default)s")
    parser.add_argument("--grpc-port", type=int, default=8001, help="default %(default)s")
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port (default: off)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per model (default 1)")
    parser.add_argument("--max-batch", type=int, default=32, help="max_batch_size for bare ONNX files")
    parser.add_argument("--queue-delay-us", type=int, default=1000, help="dynamic batching queue delay")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal; prints the endpoints once the models are ready."""
    if args.threads < 1 or args.max_batch < 0 or args.queue_delay_us < 0:
        raise UsageError("--threads must be >= 1, --max-batch >= 0, --queue-delay-us >= 0")
    options = ServeOptions(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                           metrics_port=args.metrics_port, threads=args.threads, max_batch=args.max_batch,
                           queue_delay_us=args.queue_delay_us)
    models = collect_models(args.models, options)

    def ready() -> None:
        print(f"serving {', '.join(m.name for m in models)} on http://{args.host}:{args.http_port} "
              f"and grpc {args.host}:{args.grpc_port}", flush=True)

    return serve_until_signal(ModelServer(models, options), ready)
