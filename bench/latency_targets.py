"""Latency targets (hardware-aware DSP): the latency model's own error and pruning to a speedup,
measured with ONNX Runtime CPU, 1 intra-op thread, batch 1, medians of interleaved runs, every
model side by side with its dense network in one process, exported by the exporter with
``--lowering auto``. Random-init weights (latency does not depend on them).

- predictor error: N random structures per model (DSP at random thresholds and every third an L1
  channel-pruned one at a random FLOPs reduction, both as latency-targeted pruning leaves them:
  counts aligned to the target, DSP's shaped by the target's rules, `budget.target_shape`),
  predicted vs measured, absolute and as a fraction of dense timed in the same run;
- ``--speedup 2.0`` on dense ResNet-50 (G=2) and ``--speedup 1.4`` on ResNet-20 (G=4): measured
  speedup (targets 1.8-2.2x and 1.26-1.54x);
- ResNet-50: the FLOPs the latency-targeted DSP model (G=2) keeps at the measured latency of the
  L1-inner channel-pruned model at -50% and -70% FLOPs.

    python bench/latency_targets.py [--structures 10] [--runs 20] [--out bench/results/latency_targets_<isa>.md]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = {"resnet20": 4, "resnet56": 2, "resnet50": 2}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table_for(model: str, target, work: Path, runs: int, groups: int | None = None):
    """The latency table DSP (G of the model) or, with ``groups=1``, channel pruning uses (calibrated on
    structures of its family), and its build time."""
    from dsp_deploy.hardware.latency import load_or_build
    from dsp_deploy.training.latency_prune import calibrate_whole_model

    groups = GROUPS[model] if groups is None else groups
    start = time.perf_counter()
    table = load_or_build(
        model,
        target,
        [groups],
        path=work / (f"{model}-table.json" if groups > 1 else f"{model}-g1-table.json"),
        runs=runs,
        calibrate=calibrate_whole_model(groups),
    )
    return table, time.perf_counter() - start


def random_structures(model: str, target, n: int, seed: int, dsp_table):
    from dsp_deploy.baselines import L1ChannelPruner
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.hardware import channel_multiple
    from dsp_deploy.hardware.budget import target_shape
    from dsp_deploy.hardware.whole import random_weights
    from dsp_deploy.models import topology
    from dsp_deploy.structure import count_costs, dense_structure
    from dsp_deploy.training.latency_prune import sample_structure

    rng = random.Random(seed)
    state = random_weights(model, seed)
    topo = topology(model)
    dense_flops = count_costs(dense_structure(topo)).flops
    shape = target_shape(dsp_table, topo, target.backend)  # the rules the latency-targeted search prunes under
    out = {}
    for i in range(n):
        if i % 3 == 2:  # channel pruning as latency-targeted pruning does it: counts in the target's multiple
            red = rng.uniform(0.2, 0.7)
            pruner = L1ChannelPruner(topo, state)
            pruner.align(channel_multiple(target))
            try:
                _, out[f"l1-{red:.2f}"] = pruner.match_cost(lambda s: count_costs(s).flops, (1 - red) * dense_flops,
                                                            what="FLOPs", unit="MACs")
            except TrainingError:  # aligned counts floor above this reduction (e.g. 16-multiples on ResNet-20)
                out[f"l1-floor{i}"] = pruner.structure_for(pruner.units)
        else:
            beta = rng.uniform(0.05, 0.7)
            out[f"dsp-b{beta:.2f}"] = shape(sample_structure(
                model, GROUPS[model], beta, seed=seed + i, multiple=channel_multiple(target), state_dict=state
            ))
    return out


def predictor_error(model: str, target, tables: dict, n: int, runs: int, plan_runs: int):
    """Each structure predicted (DSP structures by the G table, L1 ones by the G=1 table, as the pruners
    use them) vs measured: absolute (ms; moves with the machine's speed between the table's build and
    this timing) and relative to dense timed interleaved in the same run (the predicted vs measured
    fraction of dense's latency: what a --speedup goal relies on)."""
    from dsp_deploy.hardware.whole import measure_structures
    from dsp_deploy.models import topology
    from dsp_deploy.structure import count_costs, dense_structure

    structures = random_structures(model, target, n, seed=1, dsp_table=tables["dsp"])
    dense = dense_structure(topology(model))
    measured = measure_structures(dict(structures, dense=dense), target, runs=runs, plan_runs=plan_runs, stat="both")
    rows, errors = [], {"min": [], "median": [], "relative": []}
    for name, structure in structures.items():
        table = tables["channels" if name.startswith("l1") else "dsp"]
        predicted, predicted_dense = table.predict(structure), table.predict(dense)
        err = {k: (predicted - measured[name][k]) / measured[name][k] for k in ("min", "median")}
        err["relative"] = (predicted / predicted_dense) / (measured[name]["median"] / measured["dense"]["median"]) - 1
        for k in errors:
            errors[k].append(abs(err[k]))
        rows.append(
            (
                name,
                f"{count_costs(structure).flops_reduction_pct:.1f}%",
                f"{predicted:.3f}",
                f"{measured[name]['min']:.3f}",
                f"{100 * err['min']:+.1f}%",
                f"{measured[name]['median']:.3f}",
                f"{100 * err['median']:+.1f}%",
                f"{predicted / predicted_dense:.3f} / {measured[name]['median'] / measured['dense']['median']:.3f}",
                f"{100 * err['relative']:+.1f}%",
            )
        )
    rows.append(("dense", "0.0%", f"{tables['dsp'].predict(dense):.3f}", f"{measured['dense']['min']:.3f}", "",
                 f"{measured['dense']['median']:.3f}", "", "1 / 1", ""))
    return rows, {k: statistics.median(v) for k, v in errors.items()}


def prune_to(model: str, work: Path, table_path: Path, *, speedup: float | None = None, runs: int):
    """`dsp-deploy prune DENSE.pt --groups G --speedup X` on a random-init dense checkpoint."""
    import torch

    from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
    from dsp_deploy.hardware.budget import LatencyGoal
    from dsp_deploy.models import create
    from dsp_deploy.training.latency_prune import LatencyOptions
    from dsp_deploy.training.prune import PruneOptions, prune_checkpoint

    torch.manual_seed(0)
    dense = work / f"{model}-dense.pt"
    save_checkpoint(dense, dense_checkpoint(model, create(model)))
    latency = LatencyOptions(LatencyGoal(speedup=speedup), table=str(table_path), runs=runs)
    return prune_checkpoint(
        PruneOptions(
            str(dense),
            str(work / f"{model}-x{speedup}.pt"),
            None,
            groups=GROUPS[model],
            progress=False,
            latency=latency,
        )
    )


def l1_matched(target, table, runs: int, plan_runs: int, plan_cache: Path):
    """ResNet-50: L1-inner at -50%/-70% FLOPs, then DSP pruned to the L1 model's measured speedup. Every
    export plans through ``plan_cache``, so the side-by-side run times the lowering the search timed."""

    from dsp_deploy.baselines import L1ChannelPruner
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.hardware.budget import LatencyGoal
    from dsp_deploy.hardware.whole import measure_structures, random_weights
    from dsp_deploy.models import topology
    from dsp_deploy.structure import count_costs, dense_structure
    from dsp_deploy.training.clustering import one_shot_assignments
    from dsp_deploy.training.latency_prune import LatencyOptions, dsp_to_budget

    topo = topology("resnet50")
    state = random_weights("resnet50", 0)
    assignments = one_shot_assignments(topo, state, 2)
    dense = dense_structure(topo)
    rows = []
    for reduction in (0.5, 0.7):
        l1 = L1ChannelPruner(topo, state, prune_streams=False).match_reduction(reduction).structure
        plans = {"cache_path": str(plan_cache), "plan_runs": plan_runs}
        first = measure_structures({"dense": dense, "l1": l1}, target, runs=runs, state_dict=state, **plans)
        ratio = first["dense"] / first["l1"]
        opts = LatencyOptions(LatencyGoal(speedup=ratio), runs=runs,  # measured and corrected, as `prune` does
                              plan_cache=str(plan_cache), plan_runs=plan_runs)
        try:
            found = dsp_to_budget(opts, topo, state, assignments, 2, {"method": "dsp"})
        except TrainingError as exc:  # the predictor says DSP cannot get that fast
            rows.append(
                (
                    f"-{100 * reduction:.0f}%",
                    f"{100 - count_costs(l1, topo).flops_reduction_pct:.1f}%",
                    f"{first['l1']:.2f}",
                    f"{ratio:.2f}x",
                    f"out of reach: {exc}",
                    "",
                    "",
                    "",
                    "",
                )
            )
            continue
        dsp, record = found.structure, found.record
        both = measure_structures(
            {"dense": dense, "l1": l1, "dsp": dsp}, target, runs=runs, state_dict=state, **plans
        )
        kept = {k: 100 - count_costs(s, topo).flops_reduction_pct for k, s in (("l1", l1), ("dsp", dsp))}
        rows.append(
            (
                f"-{100 * reduction:.0f}%",
                f"{kept['l1']:.1f}%",
                f"{both['l1']:.2f}",
                f"{both['dense'] / both['l1']:.2f}x",
                f"{kept['dsp']:.1f}%",
                f"{both['dsp']:.2f}",
                f"{both['dense'] / both['dsp']:.2f}x",
                f"{record['measured_speedup']:.2f}x ({len(record['corrections'])} measured)",
                f"{table.predict(dsp, topo):.2f}",
            )
        )
        log(f"L1-inner {reduction}: {rows[-1]}")
    return rows


def _multiple(latency: dict) -> str:
    """The channel multiple a latency-targeted result used, and the target's when it was relaxed."""
    used, native = latency.get("channel_multiple"), latency["target"]["channel_multiple"]
    return f"{used} (target's {native} out of reach)" if used not in (None, native) else str(native)


def md_table(rows: list[tuple], header: tuple[str, ...]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,resnet50")
    parser.add_argument("--structures", type=int, default=10, help="random structures per model (predictor error)")
    parser.add_argument("--runs", type=int, default=20, help="timed interleaved runs per model (median)")
    parser.add_argument("--table-runs", type=int, default=10, help="timed runs per latency-table sample")
    parser.add_argument("--plan-runs", type=int, default=5, help="planner runs per candidate (export --lowering auto)")
    parser.add_argument("--skip-l1", action="store_true", help="skip the ResNet-50 L1-inner matched-latency part")
    parser.add_argument("--work", help="folder for tables and checkpoints (default: a temporary folder)")
    parser.add_argument("--out", default=None,
                        help="report (default: bench/results/latency_targets_<isa>.md, e.g. _avx2, _avx512)")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from dsp_deploy.errors import DSPDeployError
    from dsp_deploy.hardware import make_target
    from dsp_deploy.training.latency_prune import CORRECTIONS
    from dsp_deploy.utils.machine import cpu_isa, cpu_model

    torch.set_num_threads(1)
    started, load0 = time.perf_counter(), os.getloadavg()
    work = Path(args.work or tempfile.mkdtemp(prefix="latency_targets_"))
    work.mkdir(parents=True, exist_ok=True)
    target = make_target()
    log(f"target: {target.describe()}  CPU {cpu_model()} ISA {cpu_isa()}")
    if args.out is None:  # one report per ISA: figures from two machines are not one table
        args.out = str(ROOT / "bench" / "results" / f"latency_targets_{cpu_isa().lower().replace('-', '')}.md")
    models = [m for m in args.models.split(",") if m]
    sections, errors, verdicts, tables = [], [], [], {}
    for model in models:
        table, seconds = table_for(model, target, work, args.table_runs)
        tables[model] = table
        if args.structures < 1:
            continue
        channels, channel_seconds = table_for(model, target, work, args.table_runs, groups=1)
        rows, median = predictor_error(model, target, {"dsp": table, "channels": channels}, args.structures,
                                       args.runs, args.plan_runs)
        errors.append(
            (
                model,
                f"G={GROUPS[model]}",
                f"{seconds:.0f} s + {channel_seconds:.0f} s",
                f"{table.scale:.3f} / {table.offset:.3f} ms; {channels.scale:.3f} / {channels.offset:.3f} ms",
                f"{100 * median['min']:.1f}%",
                f"{100 * median['median']:.1f}%",
                f"{100 * median['relative']:.1f}%",
            )
        )
        verdicts.append(
            (
                f"{model}: predictor median abs error <= 10% (relative to dense in the same run; absolute vs "
                "min / median of runs)",
                f"{100 * median['relative']:.1f}% ({100 * median['min']:.1f}% / {100 * median['median']:.1f}%)",
                median["relative"] <= 0.10,
            )
        )
        sections.append(
            f"### {model} (G={GROUPS[model]})\n\n"
            + md_table(
                rows,
                ("structure", "FLOPs -", "predicted ms", "measured min ms", "error", "measured median ms", "error",
                 "fraction of dense predicted / measured", "error"),
            )
        )
        log(f"{model}: median error {median}")
    speed_rows = []
    for model, speedup, (lo, hi) in (("resnet50", 2.0, (1.8, 2.2)), ("resnet20", 1.4, (1.26, 1.54))):
        if model not in tables:
            continue
        try:
            summary = prune_to(model, work, work / f"{model}-table.json", speedup=speedup, runs=args.runs)
        except DSPDeployError as exc:  # e.g. the table puts the goal out of reach: a finding, not a crash
            speed_rows.append((model, f"G={GROUPS[model]}", f"--speedup {speedup}", "-", "-", "-", "-", "-", "-",
                               str(exc)))
            verdicts.append((f"{model} --speedup {speedup}: measured {lo}-{hi}x", "not pruned", False))
            log(f"{model} speedup {speedup}: {exc}")
            continue
        lat = summary["latency"]
        speed_rows.append(
            (
                model,
                f"G={GROUPS[model]}",
                f"--speedup {speedup}",
                f"{lat['predicted_speedup']:.2f}x",
                f"{lat['measured_dense_ms']:.2f} / {lat['measured_ms']:.2f}",
                f"{lat['measured_speedup']:.2f}x",
                f"{lat['measured_speedup_min']:.2f}x",
                f"{summary['flops_reduction_pct']:.1f}%",
                _multiple(lat),
                " -> ".join(f"{st['measured_goal_ms'] * speedup / st['measured_ms']:.2f}x"
                            for st in lat.get("corrections", [])) or "none needed",
            )
        )
        verdicts.append(
            (
                f"{model} --speedup {speedup}: measured {lo}-{hi}x",
                f"{lat['measured_speedup']:.2f}x",
                lo <= lat["measured_speedup"] <= hi,
            )
        )
        log(f"{model} speedup {speedup}: {speed_rows[-1]}")
    l1_rows = (
        []
        if args.skip_l1 or "resnet50" not in tables
        else l1_matched(target, tables["resnet50"], args.runs, args.plan_runs, work / "plan-costs.json")
    )
    load1 = os.getloadavg()
    command = "python bench/latency_targets.py " + " ".join(sys.argv[1:])
    text = (
        f"# Latency targets (ONNX Runtime CPU, 1 thread, batch 1)\n\nGenerated by `{command.strip()}` in "
        f"{(time.perf_counter() - started) / 60:.1f} min. CPU: {cpu_model()}, ISA {cpu_isa()} "
        f"(target {target.describe()}); ONNX Runtime {ort.__version__}; load average {load0[0]:.1f} at start, "
        f"{load1[0]:.1f} at end (a shared 2-core machine: medians move with other work, interleaving keeps "
        "ratios comparable). Exports with `--lowering auto` (planner runs per candidate: "
        f"{args.plan_runs}); medians of {args.runs} interleaved runs; random-init weights.\n\n## Targets\n\n"
        + md_table([(t, v, "met" if ok else "NOT met") for t, v, ok in verdicts], ("target", "measured", "status"))
        + "\n\n## Latency model: build time and predictor error\n\nTwo tables per model, each calibrated on "
        "structures of the family it predicts: the DSP table (G of the model; dense + three DSP samples shaped by the "
        "target's rules) and the channel table (G=1; dense + L1 samples at -30/-50/-70% FLOPs) that channel pruning "
        "uses; DSP structures below (other seeds and thresholds, shaped the same way: the latency-targeted search "
        "predicts no other kind) are predicted by the first, L1 ones by the second.\n\n"
        + md_table(
            errors,
            (
                "model",
                "groups",
                "table build (incl. calibration): DSP + channel",
                "scale / offset: DSP; channel",
                f"median abs error vs min ({args.structures} structures)",
                "vs median",
                "relative to dense (same run)",
            ),
        )
        + "\n\n"
        + "\n\n".join(sections)
        + "\n\n## Pruning to a speedup (dense checkpoint, one-shot groups)\n\n`prune --speedup X` searches the "
        "latency table's budget, exports and times the result beside dense, and, while the measurement misses the "
        f"goal by more than 5% (at most {CORRECTIONS} times), measures another structure searched by whole-model FLOPs "
        "reduction (bracketed between the tries as a latency match does; from one try, latency taken as "
        "proportional to FLOPs); where the target's channel multiple cannot reach the goal it is halved "
        "(down to 4). The last column lists every measured try at the multiple used.\n\n"
        + md_table(
            speed_rows,
            (
                "model",
                "groups",
                "goal",
                "predicted",
                "measured median ms dense / pruned",
                "measured speedup (medians)",
                "(mins)",
                "FLOPs -",
                "channel multiple",
                "measured corrections (speedup per step)",
            ),
        )
    )
    if l1_rows:
        text += (
            "\n\n## ResNet-50: DSP (G=2) at the latency of L1-inner\n\nL1-inner = L1-norm channel pruning of the "
            "block-inner convs only. DSP is pruned to the L1 model's measured speedup; all three measured "
            "side by side. 'in its search': the speedup the latency-targeted search measured for the structure "
            "it kept (its own timing beside dense, of the same lowering: every export plans through one cache; "
            "how many structures it measured).\n\n"
            + md_table(
                l1_rows,
                (
                    "L1-inner FLOPs",
                    "L1 FLOPs kept",
                    "L1 ms",
                    "L1 speedup",
                    "DSP FLOPs kept",
                    "DSP ms",
                    "DSP speedup",
                    "DSP speedup in its search",
                    "DSP predicted ms",
                ),
            )
        )
    from dsp_deploy.utils.atomic import write_text_atomic

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
