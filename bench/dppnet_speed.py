"""DPPNet latency vs dense: ResNet-20 (32x32) and ResNet-34 (224x224) with random weights and
random frozen patterns whose union keeps ``--taps`` of the 9 taps per DPP conv (3 of 9: about
the 65.6% FLOPs reduction the paper reports for ResNet-34), exported with the batch-dynamic
DPP lowering, timed in ONNX Runtime CPU with one intra-op thread by the interleaved harness
(dsp_deploy/bench/harness.py) at batch 1 and 32, median of the runs. Prints the FLOPs each
variant executes (counted from its ONNX graph), the speedup those FLOPs promise and the
measured one.

    python bench/dppnet_speed.py [--models resnet20,resnet34] [--taps 3] [--runs 20] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def isa() -> str:
    """The widest x86 vector ISA the CPU reports (what ONNX Runtime's kernels can use)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown ISA"
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if f" {flag}" in flags:
            return name
    return "SSE"


def export_pair(base: str, taps: int, folder: Path) -> tuple[Path, Path]:
    """(dense ONNX, DPPNet ONNX) of ``base`` with random weights (seed 0)."""
    import torch

    from dsp_deploy.export import export_onnx
    from dsp_deploy.models import create
    from dsp_deploy.models.dpp import set_random_patterns

    torch.manual_seed(0)
    dense = folder / f"{base}.onnx"
    export_onnx(create(base).eval(), dense, model_name=base, lowering="dense")
    torch.manual_seed(0)
    dpp = create(f"dppnet-{base}")
    set_random_patterns(dpp, taps=taps)
    path = folder / f"dppnet-{base}.onnx"
    export_onnx(dpp.eval(), path, model_name=f"dppnet-{base}")
    return dense, path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet34")
    parser.add_argument("--taps", type=int, default=3, help="union taps kept per DPP conv (of 9)")
    parser.add_argument("--runs", type=int, default=20, help="timed interleaved rounds per batch size")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args()

    from dsp_deploy.bench.harness import run_benchmark
    from dsp_deploy.bench.machine import machine_info
    from dsp_deploy.compare.onnx_cost import onnx_macs

    lines = [f"# DPPNet vs dense, ONNX Runtime CPU, 1 thread ({machine_info()['cpu']}, {isa()})", "",
             f"random weights, random frozen patterns with {args.taps} of 9 union taps per DPP conv; "
             f"median of {args.runs} interleaved runs", "",
             "| model | batch | dense ms | DPPNet ms | measured speedup | dense MACs | DPPNet MACs "
             "| FLOPs-promised speedup |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for base in args.models.split(","):
            dense, dpp = export_pair(base, args.taps, Path(tmp))
            macs = {dense: onnx_macs(dense), dpp: onnx_macs(dpp)}
            rows = run_benchmark([dense, dpp], ("ort-cpu",), args.batches, threads=1, runs=args.runs, warmup=3,
                                 progress=False)
            by = {(Path(r.path), r.batch): r.median_ms for r in rows}
            for batch in sorted({r.batch for r in rows}):
                d, p = by[(dense, batch)], by[(dpp, batch)]
                lines.append(f"| {base} | {batch} | {d:.2f} | {p:.2f} | {d / p:.2f}x | {macs[dense] / 1e6:.1f}M | "
                             f"{macs[dpp] / 1e6:.1f}M | {macs[dense] / macs[dpp]:.2f}x |")
                print(lines[-1], flush=True)
    lines += ["", "command: `python bench/dppnet_speed.py " + " ".join(sys.argv[1:]) + "`"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from dsp_deploy.utils.atomic import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
