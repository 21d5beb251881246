"""The demo pipeline at a smaller budget than `dsp-deploy demo`: DSP at 60% fewer FLOPs stays
close to the dense model (the README documents the full-budget figures)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsp_deploy.app.demo import DEMO_STEPS, DemoOptions, DemoStep, format_demo_summary, run_demo
from dsp_deploy.checkpoint import load_checkpoint
from dsp_deploy.hardware.budget import live_groups
from dsp_deploy.training.hardware_prune import SHAPED_TOLERANCE_PCT


@pytest.mark.slow
def test_demo_small_budget(tmp_path: Path, training_threads: None) -> None:
    seen: list[str] = []

    def extra_step(state) -> None:  # later stages (export, bench) plug in like this
        seen.append(state.files["fine-tuned checkpoint"])
        state.results["extra"] = True

    options = DemoOptions(out=str(tmp_path / "demo"), dense_epochs=4, group_epochs=1, finetune_epochs=2,
                          match_steps=1, progress=False)  # one latency measurement: the matcher has its own tests
    summary = run_demo(options, DEMO_STEPS + [DemoStep("extra", "a plugged-in step", extra_step)])
    res = summary["results"]
    dense, dsp = res["dense"]["accuracy"], res["dsp"]["accuracy"]
    assert dense > 30.0, f"the dense model did not learn ({dense:.1f}%; chance is 10%)"
    assert dsp >= dense - 10.0, f"DSP {dsp:.1f}% vs dense {dense:.1f}%"
    assert abs(res["dsp"]["dsp_flops_reduction_pct"] - 60.0) <= SHAPED_TOLERANCE_PCT  # shaped: the rules move in steps
    assert [s["name"] for s in summary["steps"]] == ["dense", "group-learning", "prune", "finetune", "evaluate",
                                                     "export+bench", "extra"]
    assert seen == [str(tmp_path / "demo" / "finetuned.pt")] and res["extra"]
    for path in summary["files"].values():
        assert Path(path).exists()
    assert any(Path(summary["files"]["ONNX models"]).glob("dsp*.onnx"))
    assert res["headline"] and "speedup vs dense" in res["headline"][0]
    shaped = res["prune"]["hardware"]  # shaped for this machine by default (prune --hardware-aware)
    assert shaped["target"]["batch"] == 32 and shaped["grouped_layers"] + shaped["one_group_layers"] > 0
    groups = [live_groups(layer) for layer in load_checkpoint(tmp_path / "demo" / "pruned.pt").structure.layers]
    assert max(groups) <= 4 and sum(g > 1 for g in groups) == shaped["grouped_layers"]
    text = format_demo_summary(summary)
    assert "pruning shaped for this machine" in text and "DSP G=4 shaped" in res["headline"][0]
    assert "accuracy (val)" in text and f"-{res['dsp']['dsp_flops_reduction_pct']:.1f}%" in text
    assert "finetuned.pt" in text
    listed = text.split("  files:\n", 1)[1].split("\n\n", 1)[0].splitlines()  # one column of paths, any label
    columns = {line.rindex(path) for line, path in zip(listed, summary["files"].values(), strict=True)}
    assert len(columns) == 1, listed
    assert "latency (ONNX Runtime CPU" in text
    matched = res["matched_latency"]  # the summary ends with dense / DSP / channel-pruned at DSP's latency
    assert matched["channel"]["accuracy"] > 10.0 and matched["channel"]["flops_reduction_pct"] > 0
    assert Path(summary["files"]["channel-pruned at DSP latency"]).exists()
    assert "at matched latency" in text and text.rstrip().splitlines()[-1].lstrip().startswith("L1 channel")


def test_demo_rejects_bad_options(tmp_path: Path) -> None:
    from dsp_deploy.errors import UsageError

    with pytest.raises(UsageError, match="between 0 and 1"):
        run_demo(DemoOptions(out=str(tmp_path), flops_reduction=60))
    with pytest.raises(UsageError, match="dense-epochs"):
        run_demo(DemoOptions(out=str(tmp_path), dense_epochs=0))
    with pytest.raises(UsageError, match="match-steps"):
        run_demo(DemoOptions(out=str(tmp_path), match_steps=0))
    assert list(tmp_path.iterdir()) == []


def test_demo_prunes_by_flops_alone_where_shaping_cannot_reach(tmp_path: Path, caplog) -> None:
    """The demo's prune step falls back to FLOPs-only pruning (with a warning) when the machine's
    shape rules cannot reach the FLOPs target: at 97% fewer FLOPs a G=4 ResNet-20 keeps at least
    a channel multiple of 4 per live group, or the whole stream where it runs as one group."""
    import logging

    from dsp_deploy.app.demo import DemoState, step_prune
    from dsp_deploy.cli.main import main

    run = tmp_path / "group-learned"
    assert main(["-q", "train", "--data", "synthetic", "--model", "resnet20", "--groups", "4", "--iterations", "2",
                 "--out", str(run), "--no-progress"]) == 0
    state = DemoState(DemoOptions(out=str(tmp_path / "demo"), flops_reduction=0.97, progress=False), tmp_path / "demo")
    state.out.mkdir()
    state.files["group-learned checkpoint"] = str(run / "checkpoint.pt")
    with caplog.at_level(logging.WARNING, logger="dsp_deploy.app.demo"):
        step_prune(state)
    summary = state.results["prune"]
    assert summary.get("hardware") is None and abs(summary["reduction_pct"] - 97.0) <= 0.5
    assert "pruning by FLOPs alone" in caplog.text and "out of reach" in caplog.text
    assert load_checkpoint(state.files["pruned checkpoint"]).structure is not None
    text = format_demo_summary({"model": "resnet20", "data": "synthetic", "groups": 4,
                                "target_flops_reduction_pct": 97.0, "results": {"prune": summary}, "steps": [],
                                "total_time_s": 0.0, "files": {}})
    assert "pruning shaped for this machine" not in text
