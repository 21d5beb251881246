"""Hardware speed targets of issue 11 ("export at the FLOPs' speed"), side by side with dense, on
ONNX Runtime CPU with 1 intra-op thread (variants interleaved run by run in one process, medians of
at least ``--runs`` rounds taking at least ``--min-seconds`` per batch):

- ``r56``: the authors' ResNet-56 g=2 checkpoint, ``--lowering auto``, batch 1 and 32
  (targets >= 1.15x and >= 1.25x dense);
- ``r50``: ImageNet ResNet-50 G=2 at -70% whole-model FLOPs (random weights, one-shot pruning)
  shaped for this machine at batch 1 (``prune --hardware-aware``: every group's channel counts in the
  target's multiple, ``--channel-multiple``, 8 = AVX2's 8-float vectors, 16 = AVX-512; one group where
  the latency table says groups cost more), batch 1 (target >= 2.5x); ``r50f``: the same pruned by
  FLOPs alone with the alignment (no target);
- ``r20``: the demo's ResNet-20 G=4 at -60% block FLOPs (the structure ``dsp-deploy demo`` learnt
  on Fashion-MNIST and pruned shaped for its machine, ``prune --hardware-aware --target-batch 32``,
  committed in ``bench/data/`` with the machine it was shaped for; ``--demo-structure`` takes your own
  demo's ``pruned.pt``), random weights, batch 32 (target >= 1.2x);
- ``r20f``: the same learnt groups pruned by FLOPs alone (``dsp-deploy demo --flops-only``), for
  reference (no target).

The exporter gets the same ``--channel-multiple`` (its padding / candidate alignment). Prints the
CPU model and ISA; writes a markdown report.

    python bench/hw_speed.py --channel-multiple 8 --out bench/results/hw_speed_avx2.md
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from export_speed import resnet50_checkpoint, table, time_models  # noqa: E402

from dsp_deploy.export import export_onnx  # noqa: E402
from dsp_deploy.runtime.timing import MEASURE_SECONDS  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "dsp-reference"
DEMO_STRUCTURE = ROOT / "bench" / "data" / "demo_resnet20_g4_structure.json"
FLOPS_ONLY_STRUCTURE = ROOT / "bench" / "data" / "demo_resnet20_g4_flops_only_structure.json"
SETTINGS = ("r56", "r50", "r50f", "r20", "r20f")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def demo_checkpoint(path: Path = DEMO_STRUCTURE, seed: int = 0):
    """A demo's learnt ResNet-20 G=4 -60% structure (a structure JSON or a checkpoint) on a randomly
    initialised ResNet-20."""
    import torch

    from dsp_deploy.checkpoint import Checkpoint, load_checkpoint
    from dsp_deploy.models import create
    from dsp_deploy.structure.io import load_structure

    structure = load_structure(path) if str(path).endswith(".json") else load_checkpoint(path).structure
    torch.manual_seed(seed)
    model = create("resnet20", num_classes=structure.num_classes, in_channels=structure.in_channels)
    return Checkpoint("resnet20", model.state_dict(), structure), model


def setting(name: str, multiple: int, demo: Path = DEMO_STRUCTURE):
    """(title, pruned checkpoint, dense torch model, model name, input shape, batches, targets)."""
    import torch

    from dsp_deploy.models import create
    from dsp_deploy.reference import import_authors_checkpoint

    if name == "r56":
        torch.manual_seed(0)
        return ("ResNet-56 g=2 (authors' checkpoint), CIFAR 32x32", import_authors_checkpoint(
            str(REFERENCE / "resnet56_g2.pt")), create("resnet56"), "resnet56", (3, 32, 32), (1, 32),
            {1: 1.15, 32: 1.25})
    if name in ("r50", "r50f"):
        ck, dense, how = resnet50_checkpoint(channel_multiple=multiple, shaped=name == "r50")
        return (f"ResNet-50 G=2 -70% whole-model FLOPs, 224x224 ({how})", ck, dense, "resnet50", (3, 224, 224),
                (1,), {1: 2.5} if name == "r50" else {})
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.hardware.budget import live_groups
    from dsp_deploy.models import topology
    from dsp_deploy.structure import dense_structure

    ck, _ = demo_checkpoint(demo if name == "r20" else FLOPS_ONLY_STRUCTURE)
    torch.manual_seed(1)
    st = ck.structure
    dense_model = create("resnet20", num_classes=st.num_classes, in_channels=st.in_channels)
    dense = Checkpoint("resnet20", dense_model.state_dict(),  # a checkpoint: it keeps the 1-channel input
                       dense_structure(topology("resnet20", st.num_classes, st.input_size, st.in_channels)))
    shaped = st.metadata.get("shaped_for")
    grouped = sum(live_groups(layer) > 1 for layer in st.layers)
    how = (f"shaped for {shaped['fingerprint']['cpu']} ({shaped['fingerprint']['isa']}), batch {shaped['batch']}, "
           f"channel multiple {st.metadata.get('channel_multiple')}: {grouped} layer(s) grouped" if shaped
           else "pruned by FLOPs alone")
    return (f"ResNet-20 G=4 -60% block FLOPs (the demo's learnt structure, Fashion-MNIST 28x28, {how})", ck, dense,
            "resnet20", (1, 28, 28), (1, 32), {32: 1.2} if name == "r20" else {})


def executed(paths: dict[str, Path]) -> tuple[str, float]:
    """What each ONNX file really runs: Conv/Gemm MMACs per image (padding and zero rows included)
    and its data-movement nodes; plus dense MACs / auto MACs, the speed-up the executed work allows."""
    from dsp_deploy.compare.onnx_cost import onnx_costs

    cells, macs_of = [], {}
    for variant, path in paths.items():
        macs, moves = onnx_costs(path)
        macs_of[variant] = macs
        moved = ", ".join(f"{n} {op}" for op, n in sorted(moves.items())) or "no data-movement node"
        cells.append(f"{variant} {macs / 1e6:.1f} MMACs ({moved})")
    return "Executed per image: " + "; ".join(cells) + ".", macs_of["dense model"] / macs_of["auto"]


def run_setting(name: str, multiple: int, runs: int, work: Path, breakdown: bool = False,
                demo: Path = DEMO_STRUCTURE, min_seconds: float = 0.0) -> tuple[str, list[tuple]]:
    """Export dense and auto, time them interleaved; returns (markdown section, verdict rows)."""
    from dsp_deploy.structure import count_costs

    title, ck, dense, model_name, shape, batches, targets = setting(name, multiple, demo)
    cache = str(work / "planner-cache.json")
    start = time.perf_counter()
    paths = {"dense model": export_onnx(dense, work / f"{name}_dense.onnx", lowering="dense",
                                        model_name=model_name).onnx_path}
    result = export_onnx(ck, work / f"{name}_auto.onnx", lowering="auto", cache_path=cache,
                         channel_multiple=multiple)
    paths["auto"] = result.onnx_path
    log(f"{name}: exported in {time.perf_counter() - start:.0f}s (parity max |diff| {result.max_diff:.1e})")
    costs = count_costs(ck.structure)
    work_text, bound = executed(paths)
    rows, verdicts = [], []
    for batch in batches:
        res = time_models(paths, (batch, *shape), runs, min_seconds)
        ratio = res["dense model"][0] / res["auto"][0]
        for variant, (med, low) in res.items():
            rows.append((variant, batch, f"{med:.3f}", f"{low:.3f}", f"{res['dense model'][0] / med:.2f}x"))
        if batch in targets:
            low = res["dense model"][1] / res["auto"][1]
            verdicts.append((f"{name}: auto batch {batch} >= {targets[batch]:.2f}x dense", f"{ratio:.2f}x",
                             f"{low:.2f}x", f"{bound:.2f}x", "met" if ratio >= targets[batch] else "NOT met"))
        log(f"{name} batch {batch}: auto {ratio:.2f}x dense")
    section = (f"## {name}: {title}\n\nFLOPs -{costs.flops_reduction_pct:.1f}% whole model "
               f"(ideal {100 / (100 - costs.flops_reduction_pct):.2f}x), -{costs.dsp_flops_reduction_pct:.1f}% "
               f"block convs. {work_text}\n\n"
               + table(rows, ("variant", "batch", "median ms", "min ms", "vs dense (median)"))
               + "\n\n```\n" + result.plan.table() + "\n```")
    if breakdown:
        from dsp_deploy.bench.breakdown import breakdown_onnx_files, format_breakdown

        batch = max(targets or batches)
        columns = breakdown_onnx_files(paths, batch, input_shape=shape, runs=max(5, runs // 4))
        section += (f"\n\nWhere the time goes at batch {batch} (ONNX Runtime profiler, median kernel ms per node, "
                    f"summed by category):\n\n" + format_breakdown(columns, baseline="dense model"))
    return section, verdicts


def conv_model(cin: int, cout: int, group: int, size: int) -> bytes:
    """A 3x3 Conv (``group`` groups) between two depthwise 1x1 convs (NCHWc context, as the planner)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, shape).astype(np.float32), name) for name, shape in
             (("a", (cin, 1, 1, 1)), ("w", (cout, cin // group, 3, 3)), ("b", (cout,)), ("z", (cout, 1, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "a"], ["x1"], group=cin, kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x1", "w", "b"], ["y1"], group=group, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y1"], ["y2"]),
             helper.make_node("Conv", ["y2", "z"], ["y"], group=cout, kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def kernel_section(runs: int) -> str:
    """Why small groups do not pay: time per MAC of grouped 3x3 convs with 8, 16, 32 filters a group
    (40 inputs a group, 7x7, batch 32) relative to a dense 64->64 conv, interleaved."""
    import numpy as np

    from dsp_deploy.export.measure import ort_session, time_interleaved

    shapes = {"dense 64->64": (64, 64, 1), "10 groups x (40 in, 8 out)": (400, 80, 10),
              "5 groups x (40 in, 16 out)": (200, 80, 5), "3 groups x (40 in, 32 out)": (120, 96, 3)}
    times = {}
    for name, (cin, cout, group) in shapes.items():  # own input width each: time them one after the other
        sessions = {name: ort_session(conv_model(cin, cout, group, 7))}
        feed = np.random.default_rng(0).standard_normal((32, cin, 7, 7)).astype(np.float32)
        times[name] = min(time_interleaved(sessions, feed, runs=runs)[name])
    macs = {name: cout * (cin // group) for name, (cin, cout, group) in shapes.items()}
    base = times["dense 64->64"] / macs["dense 64->64"]
    rows = [(name, macs[name] * 9 * 49, f"{times[name]:.3f}", f"{times[name] / macs[name] / base:.2f}x")
            for name in shapes]
    return ("## Grouped conv kernels (ONNX Runtime NCHWc, batch 32, 7x7, min of runs)\n\n"
            + table(rows, ("conv", "MACs per image", "min ms", "time per MAC vs dense")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per variant and batch, at least (median)")
    parser.add_argument("--min-seconds", type=float, default=MEASURE_SECONDS, metavar="S",
                        help="keep timing each batch's interleaved rounds until S seconds have passed (default "
                             f"{MEASURE_SECONDS:g}, the project's timing window: 40 runs of a small model take "
                             "a tenth of a second, where one burst of a neighbour on the host moves the median)")
    parser.add_argument("--channel-multiple", type=int, metavar="N",
                        help="the target's channel alignment (8: AVX2, 16: AVX-512) for pruning and export "
                             "(default: this machine's, from dsp_deploy.targets)")
    parser.add_argument("--only", default=",".join(SETTINGS), help=f"comma-separated subset of {','.join(SETTINGS)}")
    parser.add_argument("--kernels", action="store_true",
                        help="add the grouped-conv kernel efficiency table (8/16/32 filters a group vs dense)")
    parser.add_argument("--breakdown", action="store_true", help="add a per-category ORT profile at the target batch")
    parser.add_argument("--out", help="markdown report to write (default: print only)")
    parser.add_argument("--work", help="folder for the ONNX files (default: a temporary folder)")
    parser.add_argument("--demo-structure", type=Path, default=DEMO_STRUCTURE, metavar="FILE",
                        help="the r20 structure: a structure JSON or your demo's pruned.pt (default: the committed "
                             "one, shaped for the machine it names)")
    args = parser.parse_args()
    if not args.demo_structure.is_file():
        parser.error(f"--demo-structure {args.demo_structure}: no such file")
    if args.runs < 1 or args.min_seconds < 0:
        parser.error("--runs takes a positive count and --min-seconds a duration >= 0")

    import onnxruntime as ort
    import torch

    from dsp_deploy.bench.machine import cpu_isa, cpu_model

    if args.channel_multiple is None:
        from dsp_deploy.targets import channel_multiple, make_target

        args.channel_multiple = channel_multiple(make_target("ort-cpu"))
    names = [n for n in args.only.split(",") if n]
    if any(n not in SETTINGS for n in names):
        parser.error(f"--only takes {', '.join(SETTINGS)}")
    torch.set_num_threads(1)
    work = Path(args.work or tempfile.mkdtemp(prefix="hw_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    machine = f"{cpu_model()}, {cpu_isa()}, {os.cpu_count()} logical cores, ONNX Runtime {ort.__version__}"
    log(f"machine: {machine}")
    load0 = os.getloadavg()
    sections, verdicts = [], []
    for name in names:
        section, rows = run_setting(name, args.channel_multiple, args.runs, work, args.breakdown, args.demo_structure,
                                    args.min_seconds)
        sections.append(section)
        verdicts += rows
    if args.kernels:
        sections.append(kernel_section(args.runs))
    load1 = os.getloadavg()
    command = (f"python bench/hw_speed.py --runs {args.runs} --min-seconds {args.min_seconds:g} "
               f"--channel-multiple {args.channel_multiple}") + (
        f" --only {args.only}" if names != list(SETTINGS) else "") + (" --breakdown" if args.breakdown else "") + (
        " --kernels" if args.kernels else "") + (
        f" --demo-structure {args.demo_structure}" if args.demo_structure != DEMO_STRUCTURE else "")
    text = (f"# Hardware speed targets (issue 11), ONNX Runtime CPU, 1 thread\n\nCommand: `{command}`\n\n"
            f"Machine: {machine}. Load average {load0[0]:.1f} at start, {load1[0]:.1f} at end. Sessions: "
            f"intra_op 1, sequential, ORT_ENABLE_ALL; dense and auto interleaved run by run, median of at least "
            f"{args.runs} runs and {args.min_seconds:g} s per batch (min beside it). 'dense model' = the unpruned "
            "architecture exported with `--lowering dense`.\n\n"
            + table(verdicts, ("target", "measured (medians)", "ratio of the minima",
                                     "MAC bound (dense / executed MACs)", "status"))
            + "\n\n" + "\n\n".join(sections) + "\n")
    if args.out:
        from dsp_deploy.utils.atomic import write_text_atomic

        write_text_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
