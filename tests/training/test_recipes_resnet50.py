"""Recipes load and validate; one-shot pruning of a dense ImageNet ResNet-50 to 70% on CPU."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dsp_deploy.errors import UsageError
from dsp_deploy.training.recipe import load_recipe, stage_settings

RECIPES = sorted((Path(__file__).resolve().parents[2] / "dsp_deploy" / "recipes").glob("*.json"))
DSP_RECIPES = [p for p in RECIPES if not p.name.startswith("dppnet_")]  # DPPNet's are checked in test_dppnet_pipeline


def test_recipes_cover_the_paper_models() -> None:
    models = {load_recipe(p)["model"] for p in RECIPES}
    assert {"resnet20", "resnet56", "resnet18", "resnet50"} <= models


@pytest.mark.parametrize("path", DSP_RECIPES, ids=lambda p: p.name)
def test_recipe_values(path: Path) -> None:
    recipe = load_recipe(path)
    train = recipe["train"]
    assert train["lr"] == 0.05 and train["momentum"] == 0.9 and train["group_lr"] == 1e-3
    imagenet = recipe["model"] in ("resnet18", "resnet50")
    assert train["weight_decay"] == (3e-5 if imagenet else 1e-3)
    assert train["tau"] in (0.125, 0.25, 0.5, 1.0)
    assert train["lambda"] in ((1e-4, 2e-4, 3e-4, 5e-4) if imagenet else (5e-4, 1e-3, 2e-3, 3e-3))
    assert recipe["prune"]["flops_metric"] == ("total" if imagenet else "dsp")
    assert stage_settings(recipe, "finetune", {"epochs": 3, "lr": None})["epochs"] == 3


def test_bad_recipes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"learning_rate": 0.1}}))
    with pytest.raises(UsageError, match="unknown key 'train.learning_rate'"):
        load_recipe(bad)
    bad.write_text(json.dumps({"train": {"epochs": "ten"}}))
    with pytest.raises(UsageError, match="train.epochs"):
        load_recipe(bad)
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_recipe(bad)
    with pytest.raises(UsageError, match="not found"):
        load_recipe(tmp_path / "missing.json")


def test_recipe_drives_the_cli(cli_ok, pipeline, tmp_path: Path) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"model": "resnet20", "prune": {"flops_reduction": 0.4, "groups": 2}}))
    out = cli_ok("prune", str(pipeline["run"]), "--recipe", str(recipe), "--out", "P.pt", "--json", "--no-progress",
                 cwd=tmp_path)
    summary = json.loads(out.stdout)
    assert summary["groups"] == 2 and abs(summary["reduction_pct"] - 40) <= 0.5


def test_resnet50_one_shot_prune_to_70_percent(cli_ok, info, tmp_path: Path) -> None:
    import torch

    from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
    from dsp_deploy.models import create

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "r50.pt", dense_checkpoint("resnet50", create("resnet50")))
    started = time.time()
    out = cli_ok("prune", "r50.pt", "--groups", "2", "--flops-reduction", "0.7", "--out", "P.pt", "--json",
                 "--no-progress", cwd=tmp_path)
    assert time.time() - started < 300
    summary = json.loads(out.stdout)
    assert summary["flops_metric"] == "total"  # ImageNet models: whole-model FLOPs by default
    pruned = info(tmp_path / "P.pt", tmp_path)
    assert abs(pruned["flops_reduction_pct"] - 70.0) <= 1.0
    layers = {l["name"]: l for l in pruned["layers"]}
    assert layers["conv1"]["flops_reduction_pct"] == 0 and layers["layer1.0.downsample.0"]["flops_reduction_pct"] == 0
    assert layers["layer3.2.conv2"]["groups"] == 2


@pytest.mark.parametrize("path", [p for p in RECIPES if p.name.startswith("dppnet_")], ids=lambda p: p.name)
def test_dppnet_recipe_values(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe["model"].startswith("dppnet-")
    patterns = recipe["patterns"]
    assert patterns["lr"] == 0.1 and patterns["epochs"] == 90 and patterns["alpha"] > 0
    if recipe["model"] == "dppnet-resnet34":  # the authors' ImageNet command
        assert patterns["alpha"] == 8e-6 and recipe["data"]["batch_size"] == 256
    assert recipe["finetune"]["lr"] == 0.01 and recipe["finetune"]["epochs"] == 40
