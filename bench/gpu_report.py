"""The report of ``bench/gpu.py``: ``gpu.json`` (every row, format dsp-deploy/gpu-bench) and
``report.md`` (variants, latency tables per model/precision/mode, who wins, plainly)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsp_deploy.compare.report import _table
from dsp_deploy.utils.atomic import write_text_atomic


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row.get("status") != "ok":
        return "skipped"
    return f"{row['median_ms']:.3f} ({row['p90_ms']:.3f})"


def _lookup(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["model"], r["variant"], r["precision"], r["mode"], r.get("batch")): r for r in rows}


def verdicts(doc: dict[str, Any]) -> list[str]:
    """Per model/precision/mode/batch: the fastest DSP lowering, and DSP's best vs dense and L1-inner."""
    rows = [r for r in doc["rows"] if r.get("status") == "ok"]
    settings = sorted({(r["model"], r["precision"], r["mode"], r["batch"]) for r in rows},
                      key=lambda k: (k[0], k[1], ["eager", "graphs", "compile"].index(k[2]), k[3]))
    table, wins, vs_l1, vs_dense = [], {}, [0, 0], [0, 0]
    for model, precision, mode, batch in settings:
        here = {r["variant"]: r for r in rows if (r["model"], r["precision"], r["mode"], r["batch"])
                == (model, precision, mode, batch)}
        dsp = {n: r for n, r in here.items() if r["kind"].startswith("dsp")}
        if not dsp:
            continue
        name, best = min(dsp.items(), key=lambda kv: kv[1]["median_ms"])
        if mode != "compile":
            wins[best["lowering"]] = wins.get(best["lowering"], 0) + 1
        dense, l1 = here.get("dense"), here.get("l1-inner")
        cells = [model, precision, mode, str(batch), name, f"{best['median_ms']:.3f}"]
        for ref, tally in ((dense, vs_dense), (l1, vs_l1)):
            if ref is None:
                cells.append("-")
                continue
            ratio = ref["median_ms"] / best["median_ms"]
            tally[0] += ratio > 1
            tally[1] += 1
            cells.append(f"{ratio:.2f}x")
        table.append(cells)
    lines = ["## Who wins", "",
             "Fastest DSP variant per setting; ratio = other median / DSP median (> 1: DSP faster).", ""]
    lines += _table(["model", "precision", "mode", "batch", "fastest DSP", "ms", "vs dense", "vs L1-inner"], table)
    count = ", ".join(f"{k} {v}" for k, v in sorted(wins.items(), key=lambda kv: -kv[1])) or "none"
    lines += ["", f"- Fastest DSP lowering (eager and CUDA-graph settings): {count}.",
              f"- DSP's fastest variant beats dense in {vs_dense[0]}/{vs_dense[1]} settings and L1-inner channel "
              f"pruning at matched FLOPs in {vs_l1[0]}/{vs_l1[1]}.", ""]
    return lines


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    lines = ["# GPU benchmark: DSP lowerings vs dense vs L1-inner channel pruning (PyTorch)", "",
             f"Command: `{doc['command']}` ({doc['wall_s']:.0f} s)", "",
             f"Machine: {m.get('gpu') or 'no GPU'} | CPU {m.get('cpu')} ({m.get('usable_cores')} usable cores) | "
             f"device {m.get('device')} | torch CUDA {m.get('torch_cuda')}, cuDNN {m.get('cudnn')} | {versions}", ""]
    if m.get("device") == "cuda":
        lines += [f"cudnn.benchmark={m.get('cudnn_benchmark')}, cuDNN TF32={m.get('cudnn_allow_tf32')}, "
                  f"matmul TF32={m.get('matmul_allow_tf32')}. Timing: CUDA events around the forward (or the graph "
                  "replay); all variants of a model interleaved per batch; median (p90) in ms.", ""]
    else:
        lines += ["Timing: perf_counter around the forward on the CPU; all variants of a model interleaved per "
                  "batch; median (p90) in ms.", ""]
    lines += ["## Variants", ""]
    lines += _table(["model", "variant", "lowering", "MMACs", "conv weights (M)", "parity vs masked model (relative)"],
                    [[v["model"], v["name"], v["lowering"], f"{v['flops'] / 1e6:.0f}", f"{v['conv_params'] / 1e6:.3f}",
                      f"{v['parity']:.1e}"] for v in doc["variants"]])
    lines.append("")
    lines += verdicts(doc)
    look = _lookup(doc["rows"])
    batches = doc["settings"]["batches"]
    for model in doc["settings"]["models"]:
        names = [v["name"] for v in doc["variants"] if v["model"] == model]
        for precision in doc["settings"]["precisions"]:
            for mode in doc["settings"]["modes"]:
                body = [[n] + [_cell(look.get((model, n, precision, mode, b))) for b in batches] for n in names
                        if any((model, n, precision, mode, b) in look for b in batches)]
                if not body:
                    continue
                lines += [f"### {model}, {precision}, {mode}", ""]
                lines += _table(["variant"] + [f"batch {b}" for b in batches], body)
                lines.append("")
    skipped = [r for r in doc["rows"] if r.get("status") == "skipped"]
    if skipped:
        reasons = "; ".join(f"{r['model']} {r['variant']} {r['mode']}: {r['reason']}" for r in skipped)
        lines += [f"Skipped: {reasons}", ""]
    return "\n".join(lines)


def write_outputs(doc: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "gpu.json", json.dumps(doc, indent=1) + "\n")
    write_text_atomic(folder / "report.md", render(doc))
