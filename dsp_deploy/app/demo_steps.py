"""The demo's deployment step: export the fine-tuned DSP model, the dense model and a channel-
pruned baseline at matched FLOPs, and time them side by side, so the demo ends with the headline
rows of the benchmark (what the pruning buys in measured speed, not only in FLOPs)."""
from __future__ import annotations

from typing import Any

from dsp_deploy.compare import CompareConfig, headline_rows, run_compare


def step_export_and_compare(state: Any) -> None:
    """Quick matched-FLOPs comparison of the fine-tuned checkpoint (ONNX Runtime CPU, 1 thread);
    the exported ONNX files (DSP with `--lowering auto`, parity-checked) stay in compare/models/."""
    out = state.out / "compare"
    config = CompareConfig(checkpoint=state.files["fine-tuned checkpoint"], baselines=("l1-inner",),
                           batches=(1, 32), threads=(1,), quick=True)
    result = run_compare(config, out, progress=state.options.progress)
    state.files["ONNX models"] = str(out / "models")
    state.files["benchmark report"] = str(out / "report.md")
    state.results["headline"] = headline_rows(result)
    state.results["matched_latency"] = matched_latency(state, out / "models", steps=state.options.match_steps)


def matched_latency(state: Any, models: Any, batch: int = 32, steps: int = 3) -> dict[str, Any]:
    """Dense, DSP and the channel-pruned model at DSP's *measured* latency, with accuracies.

    The L1 (block-inner) channel-pruned model of the dense checkpoint is re-pruned until its measured
    speedup at ``batch`` matches the DSP model's (``latency_match``, a few measurements), then fine-tuned
    for the demo's fine-tuning epochs, so the summary ends with the comparison a user deploys by."""
    import time

    from dsp_deploy.checkpoint import load_checkpoint, save_checkpoint
    from dsp_deploy.compare.latency_match import LatencyTarget, OnnxMeasurer, match_latency
    from dsp_deploy.structure import count_costs
    from dsp_deploy.training.distributed import DistContext
    from dsp_deploy.training.finetune import FinetuneOptions, run_finetune
    from dsp_deploy.training.methods import accuracy_on_test
    from dsp_deploy.training.search import prune_channels

    started = time.perf_counter()
    o = state.options
    folder = state.out / "compare" / "latency-match"
    measurer = OnnxMeasurer(models / "dense.onnx", folder, (1, batch), threads=1, runs=10)
    dsp_ms, dense_ms = measurer.time_files(models / "dsp.onnx")
    target = LatencyTarget(speedup=dense_ms[batch] / dsp_ms[batch], batch=batch)
    dense_path = state.files["dense checkpoint"]
    start = state.results["dsp"]["flops_reduction_pct"] / 100.0

    def prune(ratio: float) -> Any:
        return prune_channels("l1", dense_path, ratio, "total", seed=o.seed, prune_streams=False)

    result, pruned = match_latency(prune, measurer, target, start=start, max_steps=steps)
    pruned_path, final = folder / "l1-inner-pruned.pt", folder / "l1-inner-finetuned.pt"
    save_checkpoint(pruned_path, pruned)
    run_finetune(FinetuneOptions(str(pruned_path), o.data, str(final),
                                 overrides={"epochs": o.finetune_epochs, "lr": o.finetune_lr, "momentum": 0.9,
                                            "weight_decay": 5e-4, "warmup_epochs": 0.0},
                                 data_overrides={"batch_size": o.batch_size, "workers": o.workers}, seed=o.seed,
                                 device="cpu", progress=o.progress, eval_each_epoch=False))
    ckpt = load_checkpoint(final)
    test = accuracy_on_test(ckpt, o.data, DistContext(), batch_size=500)
    best = result.best

    def accuracy(key: str) -> float:
        res = state.results[key]
        return res["test_accuracy"] if res.get("test_accuracy") is not None else res["accuracy"]

    state.files["channel-pruned at DSP latency"] = str(final)
    return {
        "batch": batch, "split": "test" if test is not None else "val",
        "dense": {"accuracy": accuracy("dense"), "ms": dense_ms},
        "dsp": {"accuracy": accuracy("dsp"), "ms": dsp_ms,
                "flops_reduction_pct": state.results["dsp"]["flops_reduction_pct"]},
        "channel": {"label": "L1 channel (block-inner)", "accuracy": test if test is not None else ckpt.metadata.get(
            "val_accuracy"), "ms": best.latency_ms,
            "flops_reduction_pct": count_costs(ckpt.structure).flops_reduction_pct,
            "match_error_pct": round(100 * best.error(target), 1), "converged": result.converged},
        "time_s": round(time.perf_counter() - started, 1),
    }


def matched_latency_lines(m: dict[str, Any]) -> list[str]:
    """The summary's closing table (see ``matched_latency``)."""
    b = m["batch"]
    lines = [f"  at matched latency (ONNX Runtime CPU, 1 thread; channel model pruned to DSP's measured batch-{b} "
             f"latency, {m['channel']['match_error_pct']:+.1f}% off, fine-tuned as long as DSP):",
             f"    {'':<28}{'accuracy (' + m['split'] + ')':>16}{'ms b=1':>10}{f'ms b={b}':>10}{'FLOPs -%':>10}"]
    for key, label in (("dense", "dense"), ("dsp", "DSP"), ("channel", m["channel"]["label"])):
        row = m[key]
        ms = {int(k): v for k, v in row["ms"].items()}
        lines.append(f"    {label:<28}{row['accuracy']:>15.2f}%{ms[1]:>10.3f}{ms[b]:>10.3f}"
                     f"{row.get('flops_reduction_pct', 0.0):>10.1f}")
    return lines
