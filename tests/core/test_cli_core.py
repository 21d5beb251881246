"""CLI: help, import-reference + info on the real files, and one-line errors on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.authors_format import write_authors_checkpoint


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "dsp_deploy", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def assert_one_line_error(proc, fragment):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in lines[0], lines[0]


def test_import_is_light():
    code = ("import sys, dsp_deploy; from dsp_deploy.cli.main import build_parser; build_parser();"
            "heavy=[m for m in ('torch','onnx','onnxruntime','tensorrt','tensorrt_rtx') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_subcommands():
    out = cli("--help").stdout
    for command in ("import-reference", "info"):
        assert command in out


@pytest.mark.parametrize("name, flops, params", [("resnet20_g4.pt", 63.57, 50.45), ("resnet56_g2.pt", 63.26, 56.24)])
def test_import_then_info_json(reference_dir, tmp_path, name, flops, params):
    out = tmp_path / "ours.pt"
    cli("import-reference", reference_dir / name, "--out", out)
    doc = json.loads(cli("info", out, "--json").stdout)
    for key in ("model", "flops", "params", "dense_flops", "dense_params", "flops_reduction_pct",
                "params_reduction_pct", "dsp_convention", "layers"):
        assert key in doc
    assert abs(doc["dsp_convention"]["flops_reduction_pct"] - flops) < 0.05
    assert abs(doc["dsp_convention"]["params_reduction_pct"] - params) < 0.05
    assert all("groups" in l and "flops" in l for l in doc["layers"])
    assert "layer1.0.conv1" in cli("info", out).stdout


def test_bad_inputs_give_one_line_and_no_output(tmp_path):
    out = tmp_path / "out.pt"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_one_line_error(cli("import-reference", text, "--out", out, check=False), "not a readable TorchScript")
    wide = write_authors_checkpoint(str(tmp_path / "wide.pt"), 20, 2, width_scale=2)
    assert_one_line_error(cli("import-reference", wide, "--out", out, check=False), "conv_1_3x3")
    good = write_authors_checkpoint(str(tmp_path / "good.pt"), 20, 2)
    data = open(good, "rb").read()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    assert_one_line_error(cli("import-reference", tmp_path / "cut.pt", "--out", out, check=False), "cut.pt")
    assert_one_line_error(cli("import-reference", tmp_path / "nope.pt", "--out", out, check=False), "not found")
    assert_one_line_error(cli("info", text, check=False), "notes.txt")
    assert_one_line_error(cli("info", good, check=False), "TorchScript")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_structure_json(tmp_path):
    from dsp_deploy.models import topology
    from dsp_deploy.structure import dense_structure

    doc = dense_structure(topology("resnet20")).to_dict()
    doc["layers"][2]["group_inputs"] = [[0, 99]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert_one_line_error(cli("info", bad, check=False), "layer1.0.conv2")
    doc["layers"][2]["group_inputs"] = [[3, 3]]
    bad.write_text(json.dumps(doc))
    assert_one_line_error(cli("info", bad, check=False), "more than once")
