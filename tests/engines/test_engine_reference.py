"""Acceptance path on a machine without a GPU: authors' checkpoint -> import-reference ->
export --lowering grouped -> `dsp-deploy build` writes an engine whose manifest shows the groups."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "dsp_deploy", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_build_engine_from_exported_reference(reference_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx")
    ckpt, model, engine = tmp_path / "r56.pt", tmp_path / "r56.onnx", tmp_path / "r56.engine"
    cli("import-reference", reference_dir / "resnet56_g2.pt", "--out", ckpt)
    cli("export", ckpt, "--out", model, "--lowering", "grouped")
    cli("build", model, "--out", engine, "--batch", "1,8,32")
    assert engine.stat().st_size > 0
    manifest = json.loads(Path(f"{engine}.json").read_text())
    assert sum(1 for g in manifest["conv_groups"].values() if g > 1) >= 50
