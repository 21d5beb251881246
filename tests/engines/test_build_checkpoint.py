"""`dsp-deploy build CHECKPOINT`: export with the TensorRT lowering, then build; plans and
manifests name their backend; a foreign (ONNX Runtime CPU) plan gives one warning line; bad
input gives one error line and leaves no file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsp_deploy.checkpoint import FORMAT_NAME, FORMAT_VERSION, save_checkpoint
from dsp_deploy.export import export_onnx
from dsp_deploy.utils.machine import cuda_gpus

from .engine_models import RTX, files_in
from .test_engine_cli import run_cli

pytest.importorskip("onnxruntime")

NO_GPU = not cuda_gpus()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.helpers import tiny_checkpoint

    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, tiny_checkpoint("resnet20", groups=2, size=16, seed=7))
    return path


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_checkpoint_to_engine(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "m.engine"
    proc = run_cli(ckpt, "--out", out, "--batch", "1,2,4", "--opt-level", "0", "--flavour", RTX, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert files_in(out.parent) == {"m.engine", "m.engine.json", "m.onnx", "m.onnx.plan.json"}
    assert not [line for line in stderr_lines(proc) if "WARNING" in line]  # planned for TensorRT: no warning
    plan = json.loads((out.parent / "m.onnx.plan.json").read_text())
    assert plan["backend"] == "tensorrt" and plan["mode"] == "auto" and plan["machine"]["cpu"]
    manifest = json.loads((out.parent / "m.engine.json").read_text())
    assert manifest["precision"] == "float16" and manifest["batch"] == {"min": 1, "opt": 2, "max": 4}
    record = manifest["lowering_plan"]
    assert record["backend"] == "tensorrt" and record["file"] == "m.onnx.plan.json"
    assert sum(g > 1 for g in manifest["conv_groups"].values()) > 0
    if NO_GPU:
        assert record["measured"] is False and "not measured" in record["note"] and "not measured" in proc.stdout


def test_onnx_planned_for_ort_cpu_warns_once_and_builds(ckpt: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "ort.onnx"
    export_onnx(str(ckpt), onnx_path, plan_batches=(1,), runs=2, parity=False)  # the default: auto on ORT CPU
    proc = run_cli(onnx_path, "--out", tmp_path / "ort.engine", "--opt-level", "0", "--flavour", RTX, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in stderr_lines(proc) if "WARNING" in line]
    assert len(warnings) == 1, proc.stderr
    line = warnings[0]
    assert "onnxruntime-cpu" in line and "not for tensorrt" in line and "dsp-deploy build CHECKPOINT" in line
    manifest = json.loads((tmp_path / "ort.engine.json").read_text())
    assert manifest["lowering_plan"]["backend"] == "onnxruntime-cpu" and manifest["lowering_plan"]["measured"]


@pytest.fixture
def foreign_arch(tmp_path: Path, ckpt: Path) -> Path:
    """A well-formed checkpoint file whose architecture dsp-deploy does not support."""
    payload = torch.load(ckpt, weights_only=True)
    structure = json.loads(payload["structure"])
    structure["model"] = payload["model"] = "mobilenet_v2"
    payload["structure"] = json.dumps(structure)
    path = tmp_path / "mobilenet.pt"
    torch.save(payload, path)
    assert payload["format"] == FORMAT_NAME and payload["format_version"] == FORMAT_VERSION
    return path


@pytest.mark.parametrize(
    ("source", "extra", "code", "needle"),
    [
        ("ckpt", ["--precision", "int4"], 2, "--precision int4"),
        ("ckpt", ["--batch", "8,4,2"], 2, "MIN <= OPT <= MAX"),
        ("arch", [], 1, "unknown model 'mobilenet_v2'"),
        ("onnx", ["--precision", "fp16"], 2, "is float32, not float16"),
        # the engine path is a folder: the build fails after the export, which is removed again
        pytest.param("ckpt", ["--out", "out/m.engine"], 1, "cannot write", marks=pytest.mark.slow),
    ],
)
def test_bad_input_one_line_no_files(source: str, extra: list[str], code: int, needle: str, ckpt: Path,
                                     foreign_arch: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    path = {"ckpt": ckpt, "arch": foreign_arch, "onnx": tiny_onnx}[source]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if "out/m.engine" in extra:
        (out_dir / "m.engine").mkdir()
    proc = run_cli(path, "--out", out_dir / "m.engine", "--opt-level", "0", "--flavour", RTX, *extra, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    errors = [line for line in stderr_lines(proc) if not line.startswith("INFO ")]
    assert len(errors) == 1 and errors[0].startswith("dsp-deploy build: error:") and needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert files_in(out_dir) == ({"m.engine"} if "out/m.engine" in extra else set())


@pytest.mark.slow
def test_authors_resnet56_checkpoint_to_engine(reference_dir: Path, tmp_path: Path) -> None:
    """The acceptance run: the authors' TorchScript ResNet-56 G=2 straight to an engine."""
    from dsp_deploy.reference.authors import import_authors_checkpoint

    source = reference_dir / "resnet56_g2.pt"
    out = tmp_path / "r56.engine"
    proc = run_cli(source, "--out", out, "--batch", "1,8,32", "--flavour", RTX, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "r56.engine.json").read_text())
    pruned = sum(not layer.is_dense for layer in import_authors_checkpoint(str(source)).structure.layers)
    grouped = sum(g > 1 for g in manifest["conv_groups"].values())
    assert grouped >= pruned / 2, (grouped, pruned)
    assert manifest["lowering_plan"]["backend"] == "tensorrt"
    if NO_GPU:
        assert manifest["lowering_plan"]["measured"] is False and "not measured" in manifest["lowering_plan"]["note"]
