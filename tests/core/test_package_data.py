"""Export profiles and training recipes are package data: found by name through importlib.resources,
so a plain (non-editable) ``pip install .`` finds them from any directory."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from dsp_deploy.errors import UsageError
from dsp_deploy.export.profiles import list_profiles, load_profile
from dsp_deploy.training.recipe import list_recipes, load_recipe

REPO = Path(__file__).resolve().parents[2]
CHECK = ("from dsp_deploy.export.profiles import load_profile; from dsp_deploy.training.recipe import load_recipe; "
         "import dsp_deploy; print(dsp_deploy.__file__); print(load_profile('cpu-ort')['lowering']); "
         "print(load_recipe('cifar10_resnet20')['train']['groups'])")


def test_profiles_and_recipes_are_found_by_name() -> None:
    assert {"cpu-ort", "tensorrt-fp16", "tensorrt-fp32", "dense-reference"} <= set(list_profiles())
    assert {"cifar10_resnet20", "fashion_mnist_resnet20", "imagenet_resnet50"} <= set(list_recipes())
    assert load_profile("cpu-ort")["lowering"] == "auto"
    assert load_recipe("cifar10_resnet56")["train"]["lambda"] == 5e-4
    with pytest.raises(UsageError, match="nor a shipped recipe .*cifar10_resnet20"):
        load_recipe("no_such_recipe")


def test_every_shipped_file_is_declared_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package in ("dsp_deploy.profiles", "dsp_deploy.recipes"):
        assert declared[package] == ["*.json"] and (REPO / package.replace(".", "/") / "__init__.py").is_file()


@pytest.mark.slow
def test_non_editable_install_finds_them_from_another_directory(tmp_path: Path) -> None:
    """``pip install .`` (no deps, no build isolation: setuptools and the dependencies come from the
    running environment through a .pth) into a fresh venv, then look both up from elsewhere."""
    if tuple(int(x) for x in importlib.metadata.version("setuptools").split(".")[:2]) < (77, 0):
        pytest.skip("setuptools >= 77 is needed to build without isolation")
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(REPO / "dsp_deploy", source / "dsp_deploy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
                   check=True, env=env, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([python, "-c", CHECK], cwd=elsewhere, env=env, check=True, capture_output=True, text=True)
    location, lowering, groups = out.stdout.split()
    assert location.startswith(purelib) and lowering == "auto" and groups == "4"
