"""The standard comparison matrix committed in bench/results/ and shown in bench/README.md.

DSP against dense and the channel-pruned baselines at matched whole-model FLOPs:

* the authors' released CIFAR-10 checkpoints (resnet56_g2.pt, resnet20_g4.pt from ../shared/dsp-reference);
* ImageNet ResNet-50, one-shot DSP with G=2 at 50% and 70% whole-model FLOPs reduction;

each at batch 1, 8 and 32 on ONNX Runtime CPU with 1 and 2 threads, plus, where a CUDA GPU is visible,
ONNX Runtime CUDA, torch CUDA (eager and CUDA graphs) and TensorRT. Everything runs in this one
process, one entry after the other; inside an entry the variants are timed interleaved.

    python bench/standard_matrix.py --out bench/results            # the committed run
    python bench/standard_matrix.py --quick --only resnet20_g4      # smoke test (seconds)
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dsp_deploy.compare import CompareConfig, headline_rows, run_compare  # noqa: E402
from dsp_deploy.compare.report import verdict_summary  # noqa: E402
from dsp_deploy.compare.results import CompareResult  # noqa: E402
from dsp_deploy.utils.atomic import write_text_atomic  # noqa: E402

log = logging.getLogger("standard_matrix")

BASELINES = ("l1", "l1-inner", "tp")


def entries(reference: Path) -> dict[str, CompareConfig]:
    """Name -> comparison of the standard matrix (CPU settings; GPU backends are added at run time)."""
    common = {"baselines": BASELINES, "batches": (1, 8, 32), "threads": (1, 2), "warmup": 5, "keep_models": False}
    return {
        "resnet56_g2": CompareConfig(checkpoint=str(reference / "resnet56_g2.pt"), runs=60, **common),
        "resnet20_g4": CompareConfig(checkpoint=str(reference / "resnet20_g4.pt"), runs=60, **common),
        "resnet50_g2": CompareConfig(model="resnet50", groups=2, flops_reductions=(0.5, 0.7), flops_metric="total",
                                     runs=40, runs_by_batch=((8, 25), (32, 20)), **{**common, "warmup": 3}),
    }


def _gpu_backends() -> tuple[str, ...]:
    from dsp_deploy.bench.machine import cuda_gpus

    return ("ort-cuda", "torch-cuda", "trt") if cuda_gpus() else ()


def summary_markdown(results: dict[str, CompareResult]) -> str:
    """Per entry: DSP's wins against each baseline and the headline lines."""
    first = next(iter(results.values()))
    minutes = sum(r.seconds for r in results.values()) / 60
    lines = ["# Standard matrix: summary", "", f"Command: `{first.command}` ({minutes:.1f} min in all)", ""]
    for name, result in results.items():
        lines += [f"## {name}", "", f"Report: [{name}/report.md]({name}/report.md). Load average before / after "
                  f"timing: {result.load.get('loadavg_before')} / {result.load.get('loadavg_after')}.", ""]
        lines += verdict_summary(result)
        lines += ["", *[f"- {h}" for h in headline_rows(result)], ""]
    return "\n".join(lines)


def render_only(out: Path, names: list[str]) -> dict[str, CompareResult]:
    """Re-render report.md, plots and the summary from the results.json files already in ``out``."""
    from dsp_deploy.compare.plots import write_plots
    from dsp_deploy.compare.report import write_report
    from dsp_deploy.compare.results import read_results

    results = {}
    for name in names:
        results[name] = read_results(out / name)
        write_report(results[name], out / name)
        write_plots(results[name], out / name)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="results folder")
    parser.add_argument("--reference-dir", default=str(REPO.parent / "shared" / "dsp-reference"),
                        help="folder with the authors' resnet56_g2.pt / resnet20_g4.pt")
    parser.add_argument("--only", default=None, help="comma-separated entry names")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, 1 thread, 5 runs")
    parser.add_argument("--render-only", action="store_true",
                        help="re-render reports, plots and summary.md from the results.json files in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dataclasses import replace

    matrix = entries(Path(args.reference_dir))
    names = args.only.split(",") if args.only else list(matrix)
    unknown = [n for n in names if n not in matrix]
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {', '.join(matrix)}")
    if args.render_only:
        results = render_only(Path(args.out), names)
        write_text_atomic(Path(args.out) / "summary.md", summary_markdown(results))
        return 0
    gpu = _gpu_backends()
    command = " ".join(["python", "bench/standard_matrix.py", *(argv if argv is not None else sys.argv[1:])])
    started = time.perf_counter()
    results: dict[str, CompareResult] = {}
    for name in names:
        config = replace(matrix[name], backends=("ort-cpu", *gpu), label=f"Standard matrix: {name}")
        if args.quick:
            config = replace(config, batches=(1,), threads=(1,), runs=5, runs_by_batch=(), warmup=1)
        log.info("=== %s (load average %s)", name, os.getloadavg())
        results[name] = run_compare(config, Path(args.out) / name, progress=False, command=command)
        for line in headline_rows(results[name]):
            print(line, flush=True)
    seconds = time.perf_counter() - started
    if not args.only:
        write_text_atomic(Path(args.out) / "summary.md", summary_markdown(results))
    print(f"standard matrix done in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
