"""GPU truth: which lowering of a DSP model is fastest in PyTorch on a GPU, and does DSP beat
channel pruning there? One command, PyTorch only (no network, no pip), one folder of results.

Models (all lowered by the exporter's passes, as physically compact torch modules):
- ResNet-56: the authors' g=2 checkpoint (``--reference DIR/resnet56_g2.pt``, imported on the fly),
  its dense twin, and L1-inner channel pruning matched to its whole-model FLOPs;
- ResNet-50 (224x224, random weights): one-shot DSP G=2 at -70% FLOPs, plain and aligned to the
  GPU channel multiple (``--channel-multiple``, 8 = fp16 tensor-core granule), dense, L1-inner.
Every DSP model runs in each forced lowering (grouped, branches, union, dense). Each model's
variants are timed interleaved (``dsp_deploy.bench.harness.run_benchmark``: CUDA events, warm-up,
median and p90) per precision (fp32; fp16; fp16 + channels_last) and mode (eager; CUDA graphs;
torch.compile for dense, L1-inner and the fastest lowering of each DSP model under CUDA graphs,
within the time budget) at batch 1, 8, 32 and 128. Writes OUT/gpu.json and OUT/report.md.

    python bench/gpu.py --reference ../shared/dsp-reference --out bench/results/gpu    # GPU, < 8 min on an H200
    python bench/gpu.py --device cpu --quick --out /tmp/gpu-quick                      # CPU smoke run (~30 s)
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the GPU machine gets a bare checkout: no install

FORMAT, FORMAT_VERSION = "dsp-deploy/gpu-bench", 1
LOWERINGS = ("grouped", "branches", "union", "dense")
PRECISIONS = ("fp32", "fp16", "fp16-cl")
MODES = ("eager", "graphs", "compile")
RUNS = {1: 60, 8: 40, 32: 25, 128: 15}
DEFAULT_REFERENCE = ROOT.parent / "shared" / "dsp-reference"


def log(msg: str) -> None:
    print(f"[gpu.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Entry:
    """One timed variant: a lowered module plus what it is."""

    model: str
    name: str
    kind: str  # dense | dsp | dsp-aligned | l1-inner
    lowering: str
    flops: int
    parity: float  # max |lowered - masked model| / max |masked model| at batch 1
    conv_params: int
    module: Any = field(repr=False, default=None)


def _entries(model: str, sources: list[tuple[str, Any, int]], lowerings: tuple[str, ...]) -> list[Entry]:
    """Lower every (kind, checkpoint, flops) source and check it against the masked torch model."""
    import numpy as np
    import torch

    from dsp_deploy.export.torch_module import lowered_module, torch_parity

    out = []
    for kind, ckpt, flops in sources:
        for lowering in (lowerings if kind.startswith("dsp") else ("union" if kind == "l1-inner" else "dense",)):
            module, lowered = lowered_module(ckpt, lowering=lowering)
            shape = (3, *ckpt.structure.input_size)
            diff = torch_parity(module, lowered.torch_model, shape, batches=(1,))[1]
            x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32))
            with torch.no_grad():  # torch_parity's input; relative: random-weight ResNet-50 logits are small
                diff /= max(float(lowered.torch_model(x).abs().max()), 1e-12)
            name = kind if not kind.startswith("dsp") else f"{kind}-{lowering}"
            params = sum(p.numel() for p in module.parameters() if p.dim() == 4)
            out.append(Entry(model, name, kind, lowering, int(flops), diff, params, module))
            log(f"{model} {name}: lowered, parity {diff:.1e}, {params / 1e6:.2f} M conv weights")
    return out


def build_entries(args: argparse.Namespace) -> list[Entry]:
    from dsp_deploy.compare.config import CompareConfig
    from dsp_deploy.compare.variants import _one_shot, build_variants
    from dsp_deploy.structure import count_costs
    from dsp_deploy.structure.validate import topology_for

    entries: list[Entry] = []
    if "resnet56" in args.models:
        ref = Path(args.reference) / "resnet56_g2.pt"
        if not ref.is_file():
            sys.exit(f"gpu.py: error: {ref}: the authors' checkpoint is missing (pass --reference DIR)")
        built, _ = build_variants(CompareConfig(checkpoint=str(ref), baselines=("l1-inner",)).validated())
        entries += _entries("resnet56", [(b.info.name, b.checkpoint, b.info.flops) for b in built], args.lowerings)
    if "resnet50" in args.models:
        config = CompareConfig(model="resnet50", groups=2, flops_reductions=(0.7,), baselines=("l1-inner",))
        built, _ = build_variants(config.validated())
        sources = [(b.info.name, b.checkpoint, b.info.flops) for b in built]
        if args.channel_multiple > 1:
            aligned = _one_shot(built[0].checkpoint, 2, 0.7, None, 0, channel_multiple=args.channel_multiple)
            aligned_flops = count_costs(aligned.structure, topology_for(aligned.structure)).flops
            sources.append(("dsp-aligned", aligned, aligned_flops))
        entries += _entries("resnet50", sources, args.lowerings)
    return entries


def prepared(module: Any, precision: str, device: str) -> Any:
    """A copy of ``module`` on ``device`` in ``precision`` (fp16-cl: half weights, NHWC)."""
    import torch

    out = copy.deepcopy(module).to(device)
    if precision.startswith("fp16"):
        out = out.half()
    if precision.endswith("-cl"):
        out = out.to(memory_format=torch.channels_last)
    return out.eval()


def time_group(entries: list[Entry], modules: dict[str, Any], precision: str, mode: str,
               args: argparse.Namespace) -> list[dict]:
    """All entries of one model in one precision and mode, interleaved, through the harness."""
    from dsp_deploy.bench.harness import RunnerOptions, run_benchmark
    from dsp_deploy.bench.torch_runner import TorchRunner
    from dsp_deploy.bench.variants import Variant

    cuda = args.device == "cuda"
    by_name = {e.name: e for e in entries if e.name in modules}

    def factory(variant: Variant, backend: str, options: RunnerOptions) -> TorchRunner:
        entry = by_name[variant.name]
        return TorchRunner(module=modules[variant.name], cuda=cuda, cuda_graphs=mode == "graphs",
                           threads=options.threads, input_shape=entry.module.input_shape,
                           channels_last=precision.endswith("-cl"), name=f"{variant.name}/{precision}/{mode}")

    variants = [Variant(name, Path(f"{by_name[name].model}/{name}"), "checkpoint") for name in by_name]
    rows = []
    for batch in args.batches:  # per batch: the harness's rounds stay interleaved, runs scale with the cost
        result = run_benchmark(variants, "torch-cuda" if cuda else "torch", (batch,), threads=args.threads,
                               runs=args.runs or RUNS.get(batch, 15), warmup=args.warmup, runner_factory=factory,
                               progress=False)
        for row in result:
            entry = by_name[row.variant]
            rows.append({"model": entry.model, "variant": entry.name, "kind": entry.kind, "lowering": entry.lowering,
                         "precision": precision, "mode": mode, "batch": row.batch, "status": row.status,
                         "reason": row.reason, "runs": row.runs, "median_ms": row.median_ms, "p90_ms": row.p90_ms,
                         "min_ms": row.min_ms, "timing": row.timing})
    return rows


def compile_modules(entries: list[Entry], rows: list[dict], precision: str, args: argparse.Namespace,
                    deadline: float) -> tuple[dict[str, Any], dict[str, str]]:
    """torch.compile dense, L1-inner and each DSP model's fastest lowering (graphs mode, largest batch),
    pre-compiled at every batch; candidates that would overrun ``deadline`` are skipped with the reason."""
    import torch

    best: dict[str, tuple[float, str]] = {}
    ref_mode = "graphs" if any(r["mode"] == "graphs" for r in rows) else "eager"
    for r in rows:
        if (r["model"] == entries[0].model and r["mode"] == ref_mode and r["precision"] == precision
                and r["batch"] == max(args.batches) and r["median_ms"]):
            key = r["kind"] if r["kind"].startswith("dsp") else r["variant"]
            best[key] = min(best.get(key, (float("inf"), "")), (r["median_ms"], r["variant"]))
    order = [best[k][1] for k in ("dense", "dsp", "l1-inner", "dsp-aligned") if k in best]
    modules: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    spent: list[float] = []
    size = entries[0].module.input_shape
    for name in order:
        guess = max(spent, default=0.0) * 1.2
        if time.perf_counter() + guess > deadline:
            skipped[name] = f"time budget: compiling would take ~{guess:.0f} s more"
            continue
        start = time.perf_counter()
        module = torch.compile(prepared(next(e for e in entries if e.name == name).module, precision, args.device),
                               backend=args.compile_backend)
        dtype = torch.float16 if precision.startswith("fp16") else torch.float32
        with torch.inference_mode():
            for batch in args.batches:
                x = torch.randn(batch, *size, device=args.device, dtype=dtype)
                module(x.contiguous(memory_format=torch.channels_last) if precision.endswith("-cl") else x)
        spent.append(time.perf_counter() - start)
        modules[name] = module
        log(f"compiled {name} {precision} in {spent[-1]:.1f} s")
    return modules, skipped


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from dsp_deploy.bench.machine import library_versions, machine_info

    info: dict[str, Any] = {**machine_info(), "versions": library_versions(), "python": platform.python_version(),
                            "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                            "device": args.device}
    if args.device == "cuda":
        info.update(gpu=torch.cuda.get_device_name(), cudnn_benchmark=torch.backends.cudnn.benchmark,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: ResNet-56 only, lowerings grouped and union, batch 1, fp32, eager, 5 runs")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="folder holding resnet56_g2.pt")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu"))
    p.add_argument("--models", help="resnet56,resnet50 (default: both; --quick: resnet56)")
    p.add_argument("--batches", help="default 1,8,32,128 (--quick: 1)")
    p.add_argument("--precisions", help="fp32,fp16,fp16-cl (default on CUDA: all; CPU: fp32)")
    p.add_argument("--modes", help="eager,graphs,compile (default on CUDA: all; CPU: eager)")
    p.add_argument("--lowerings", help="forced lowerings of the DSP models (default: all four; --quick: grouped,union)")
    p.add_argument("--compile-precision", default="fp16-cl", help="the one precision torch.compile runs in")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager' to smoke-test on CPU)")
    p.add_argument("--channel-multiple", type=int, default=8, help="aligned ResNet-50 DSP variant (0: none)")
    p.add_argument("--runs", type=int, help="timed rounds per batch (default by batch: 60/40/25/15)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (--device cpu)")
    p.add_argument("--budget-s", type=float, default=420.0, help="torch.compile candidates stop past this (s)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    split = lambda text, default: tuple(t.strip() for t in (text or default).split(",") if t.strip())  # noqa: E731
    args.models = split(args.models, "resnet56" if args.quick else "resnet56,resnet50")
    args.batches = tuple(int(b) for b in split(args.batches, "1" if args.quick else "1,8,32,128"))
    args.precisions = split(args.precisions, "fp32" if args.quick or not cuda else ",".join(PRECISIONS))
    args.modes = split(args.modes, "eager" if args.quick or not cuda else ",".join(MODES))
    args.lowerings = split(args.lowerings, "grouped,union" if args.quick else ",".join(LOWERINGS))
    if args.quick:
        args.runs, args.warmup = args.runs or 5, min(args.warmup, 2)
    bad = [m for m in args.modes if m not in MODES] + [q for q in args.precisions if q not in PRECISIONS]
    bad += [m for m in args.models if m not in ("resnet56", "resnet50")]
    bad += [x for x in args.lowerings if x not in LOWERINGS]
    if bad or (not cuda and "graphs" in args.modes):
        p.error(f"unsupported choice: {(bad or ['graphs (CUDA graphs need --device cuda)'])[0]}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # bad options fail before torch loads
    import torch

    started = time.perf_counter()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("gpu.py: error: torch sees no CUDA GPU (use --device cpu --quick for a CPU smoke run)")
        torch.backends.cudnn.benchmark = True
    deadline = started + args.budget_s
    entries = build_entries(args)
    log(f"{len(entries)} variants lowered in {time.perf_counter() - started:.0f} s")
    rows: list[dict] = []

    def save() -> None:  # after every phase: a run cut short still leaves its report
        from gpu_report import write_outputs  # beside this script

        doc = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "command": " ".join(["python", "bench/gpu.py", *(sys.argv[1:] if argv is None else argv)]),
               "wall_s": round(time.perf_counter() - started, 1), "machine": machine(args), "settings": vars(args),
               "variants": [{f.name: getattr(e, f.name) for f in fields(e) if f.name != "module"} for e in entries],
               "rows": rows}
        write_outputs(doc, Path(args.out))

    for model in args.models:  # eager and CUDA graphs first: torch.compile gets what the budget leaves
        group = [e for e in entries if e.model == model]
        for precision in args.precisions:
            modules = {e.name: prepared(e.module, precision, args.device) for e in group}
            for mode in [m for m in args.modes if m != "compile"]:
                rows += time_group(group, modules, precision, mode, args)
                log(f"{model} {precision} {mode} timed ({time.perf_counter() - started:.0f} s)")
            del modules
        save()
    for model in args.models if "compile" in args.modes and args.compile_precision in args.precisions else ():
        group = [e for e in entries if e.model == model]
        compiled, skipped = compile_modules(group, rows, args.compile_precision, args, deadline)
        if compiled:
            rows += time_group(group, compiled, args.compile_precision, "compile", args)
        rows += [{"model": model, "variant": n, "precision": args.compile_precision, "mode": "compile",
                  "status": "skipped", "reason": why} for n, why in skipped.items()]
        log(f"{model} compile done ({time.perf_counter() - started:.0f} s)")
        save()
    log(f"wrote {args.out}/gpu.json and report.md in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
