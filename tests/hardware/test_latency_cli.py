"""The latency-target CLI: `prune` of a torchvision-style state_dict to a speedup or a shaped FLOPs
target, `train --method l1 --speedup`, and the one-line refusals of bad targets and flags (on a
synthetic latency table; two slow tests measure)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from dsp_deploy.models import create
from dsp_deploy.targets import channel_multiple, make_target

from support.latency import synthetic_table


def _one_line_error(proc, fragment):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr and fragment in lines[0], proc.stderr


def _main(capsys, *args):
    """The CLI in-process (no interpreter start-up): exit code and stderr, as a subprocess would give."""
    from dsp_deploy.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture(scope="module")
def tv_files(tmp_path_factory):
    """A torchvision-style state_dict (our ResNet's keys are torchvision's; a DataParallel
    ``module.`` prefix on top) and a latency table for this machine."""
    folder = tmp_path_factory.mktemp("tv")
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in create("resnet20").state_dict().items()}
    torch.save(state, folder / "resnet20.pth")
    synthetic_table("resnet20", 2, make_target()).save(folder / "table.json")
    return folder


def _prune(tv_files) -> tuple:
    """`prune` of the torchvision-style ResNet-20 file as two groups: the arguments every test shares."""
    return ("-q", "prune", tv_files / "resnet20.pth", "--model", "resnet20", "--groups", "2")


def test_prune_torchvision_state_dict_to_speedup(tv_files, capsys):
    out = tv_files / "pruned.pt"
    proc = _main(capsys, *_prune(tv_files), "--speedup", "1.5", "--latency-table", tv_files / "table.json",
                 "--no-measure", "--no-progress", "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    lat = summary["latency"]
    here = channel_multiple(make_target())  # this machine's alignment: 8 on AVX2, 16 on AVX-512
    assert lat["predicted_ms"] <= lat["budget_ms"] and lat["target"]["channel_multiple"] == here
    assert summary["channel_multiple"] == here and summary["flops_reduction_pct"] > 0
    assert lat["shape_rules"] == "whole stream"  # ort-cpu's rules reach it
    from dsp_deploy.checkpoint import load_checkpoint

    assert load_checkpoint(out).metadata["latency"]["goal"] == "1.5x dense"
    text = _main(capsys, *_prune(tv_files), "--speedup", "1.5", "--latency-table", tv_files / "table.json",
                 "--no-measure", "--no-progress", "--out", out).stdout
    assert "shape rules" in text and "whole stream" in text


def test_prune_hardware_aware_flops_target(tv_files, capsys):
    """`--flops-reduction R --hardware-aware`: the FLOPs target under the target's shape rules; the summary
    and the checkpoint say what it was shaped for. With a latency goal the flag is refused in one line."""
    out = tv_files / "shaped.pt"
    table = ("--latency-table", tv_files / "table.json")
    proc = _main(capsys, *_prune(tv_files), "--flops-reduction", "0.5", "--hardware-aware", *table, "--no-progress",
                 "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    hw = summary["hardware"]
    assert abs(summary["reduction_pct"] - 50.0) <= 1.5 and summary["latency"] is None  # SHAPED_TOLERANCE_PCT
    assert hw["target"]["channel_multiple"] == channel_multiple(make_target())
    assert summary["channel_multiple"] == hw["channel_multiple"] and hw["predicted_speedup"] > 1.0
    from dsp_deploy.checkpoint import load_checkpoint

    assert load_checkpoint(out).metadata["hardware"] == hw
    text = _main(capsys, *_prune(tv_files), "--flops-reduction", "0.5", "--hardware-aware", *table, "--no-progress",
                 "--out", out).stdout
    assert "shaped for" in text and "latency (predicted)" in text
    _one_line_error(_main(capsys, *_prune(tv_files), "--speedup", "1.5", "--hardware-aware", *table, "--out",
                          tv_files / "never.pt"), "--hardware-aware shapes a FLOPs target")
    _one_line_error(_main(capsys, *_prune(tv_files), "--flops-reduction", "0.5", "--hardware-aware", "--backend", "tpu",
                          "--out", tv_files / "never.pt"), "unknown backend 'tpu'")
    assert not (tv_files / "never.pt").exists()


def test_prune_bad_inputs_are_one_line(tv_files, capsys):
    base = (*_prune(tv_files), "--no-measure", "--latency-table", tv_files / "table.json")
    out = tv_files / "never.pt"
    _one_line_error(_main(capsys, *base, "--latency-target", "0.001", "--out", out), "out of reach")
    _one_line_error(_main(capsys, *base, "--speedup", "2", "--backend", "tpu", "--out", out), "unknown backend 'tpu'")
    _one_line_error(
        _main(capsys, *base, "--speedup", "2", "--flops-reduction", "0.5", "--out", out), "one pruning target"
    )
    bad = tv_files / "corrupt.json"
    from dsp_deploy.hardware.latency import FORMAT_VERSION

    bad.write_text(f'{{"format": "dsp-deploy/latency-table", "format_version": {FORMAT_VERSION}}}')
    _one_line_error(_main(capsys, *base[:-1], bad, "--speedup", "2", "--out", out), "corrupt latency table")
    wrong_model = [a if a != "resnet20" else "resnet32" for a in _prune(tv_files)]
    _one_line_error(_main(capsys, *wrong_model, "--flops-reduction", "0.5", "--out", out), "not a resnet32 state_dict")
    assert not out.exists()


def test_target_flags_that_would_be_ignored_are_refused(tv_files, capsys):
    """A target flag without a latency goal or --hardware-aware, and a measuring flag beside
    --hardware-aware (which measures nothing but its table), is refused in one line before
    anything is loaded or written."""
    out = tv_files / "never.pt"
    flops = (*_prune(tv_files), "--flops-reduction", "0.5", "--out", out)
    _one_line_error(_main(capsys, *flops, "--backend", "ort-cpu"), "--backend describes a latency target")
    _one_line_error(_main(capsys, *flops, "--target-batch", "32", "--no-measure"),
                    "--target-batch, --no-measure describe a latency target")
    _one_line_error(_main(capsys, *flops, "--hardware-aware", "--latency-stat", "min"),
                    "--latency-stat: --hardware-aware measures nothing beyond its latency table")
    _one_line_error(_main(capsys, "-q", "train", "--data", "synthetic", "--out", tv_files / "run", "--target-threads",
                          "2"), "--target-threads describes a latency target")
    assert not out.exists() and not (tv_files / "run").exists()


@pytest.mark.slow
def test_train_method_l1_to_a_speedup(tv_files, tmp_path, capsys):
    """`train --method l1 --speedup X`: the channel method's prune stage searches predicted latency."""
    proc = _main(
        capsys,
        "-q",
        "train",
        "--method",
        "l1",
        "--model",
        "resnet20",
        "--data",
        "synthetic:64",
        "--speedup",
        "1.3",
        "--latency-table",
        tv_files / "table.json",
        "--no-measure",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--workers",
        "0",
        "--no-progress",
        "--json",
        "--out",
        tmp_path / "RUN",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["latency"]["predicted_ms"] <= summary["latency"]["budget_ms"]
    assert summary["groups"] == 1 and summary["target_pct"] is None


@pytest.mark.slow
def test_prune_records_measured_latency(tv_files, tmp_path, capsys):
    """Without --no-measure the result is exported (--lowering auto) and timed beside dense."""
    proc = _main(capsys, *_prune(tv_files), "--speedup", "1.3", "--latency-table", tv_files / "table.json",
                 "--no-progress", "--json", "--out", tmp_path / "p.pt")
    assert proc.returncode == 0, proc.stderr
    lat = json.loads(proc.stdout)["latency"]
    assert lat["measured_ms"] > 0 and lat["measured_dense_ms"] > 0 and lat["measured_speedup_min"] > 0




def test_target_flags_reach_the_options_and_the_rest_keep_their_defaults():
    """Given target flags set the LatencyOptions / HardwareTarget fields they name; the others keep the
    dataclasses' defaults (ort-cpu, 1 thread, batch 1, median, measured)."""
    from dsp_deploy.cli.main import build_parser
    from dsp_deploy.training.cli_args import hardware_target, latency_options
    from dsp_deploy.training.hardware_prune import HardwareTarget
    from dsp_deploy.training.latency_prune import LatencyOptions

    parse = build_parser().parse_args
    given = parse(["prune", "x.pt", "--out", "y.pt", "--speedup", "2", "--target-batch", "32", "--latency-stat", "min",
                   "--channel-multiple", "8", "--latency-table", "t.json", "--no-measure"])
    opts = latency_options(given, None)
    assert (opts.batch, opts.stat, opts.channel_multiple, opts.table, opts.measure) == (32, "min", 8, "t.json", False)
    assert (opts.backend, opts.threads) == (LatencyOptions.backend, LatencyOptions.threads) == ("ort-cpu", 1)
    plain = latency_options(parse(["prune", "x.pt", "--out", "y.pt", "--speedup", "2"]), None)
    assert (plain.batch, plain.stat, plain.measure) == (1, "median", True)
    assert plain.channel_multiple is None and plain.table is None
    shaped = hardware_target(parse(["prune", "x.pt", "--out", "y.pt", "--flops-reduction", "0.5", "--hardware-aware",
                                    "--target-threads", "2"]))
    assert shaped == HardwareTarget(threads=2)
