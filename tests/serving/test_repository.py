"""`triton-repo`: configs parse with Triton's model-config protobuf and match the models; planted
mistakes are refused; bad input leaves no repository; corrupt model files fail naming the model."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dsp_deploy.cli.main import main
from dsp_deploy.engines.manifest import EngineManifest
from dsp_deploy.errors import ServingError
from dsp_deploy.serving.config import parse_config
from dsp_deploy.serving.repository import RepoOptions, build_repository, read_repository
from dsp_deploy.utils.hashing import sha256_file


def configs(root: Path) -> dict[str, object]:
    return {p.parent.name: parse_config(p.read_text(), p.parent.name) for p in root.glob("*/config.pbtxt")}


def test_every_config_parses_and_describes_the_model(repo):
    parsed = configs(repo)
    assert set(parsed) == {"dsp20", "dsp20_preprocess", "dsp20_image"}
    model = parsed["dsp20"]
    assert model.platform == "onnxruntime_onnx" and model.max_batch_size == 16
    assert [(t.name, list(t.dims)) for t in model.input] == [("input", [3, 32, 32])]
    assert [(t.name, list(t.dims)) for t in model.output] == [("logits", [10])]
    assert list(model.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert model.instance_group[0].kind == model.instance_group[0].KIND_CPU
    assert (repo / "dsp20" / "1" / "model.onnx").is_file() and (repo / "dsp20_image" / "1").is_dir()
    steps = parsed["dsp20_image"].ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["dsp20_preprocess", "dsp20"]
    assert [m.name for m in read_repository(repo)] == ["dsp20", "dsp20_image", "dsp20_preprocess"]


def test_planted_wrong_input_name_is_refused(repo, tmp_path, capsys):
    planted = tmp_path / "planted"
    shutil.copytree(repo, planted)
    config = planted / "dsp20" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "input"', 'name: "data"'))
    with pytest.raises(ServingError, match="model 'dsp20': config has no input 'input'"):
        read_repository(planted)
    assert main(["serve", str(planted), "--http-port", "1", "--grpc-port", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'dsp20'" in err


def test_unparsable_config_names_the_model(repo, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(repo, broken)
    (broken / "dsp20_preprocess" / "config.pbtxt").write_text("max_batch_size: lots\n")
    with pytest.raises(ServingError, match="model 'dsp20_preprocess': config.pbtxt does not parse"):
        read_repository(broken)


@pytest.mark.parametrize("content", [b"\x00garbage, not protobuf\xff" * 10, "bad-op"])
def test_corrupt_model_file_fails_load_with_one_line_naming_the_model(repo, tmp_path, capsys, content):
    import onnx

    corrupt = tmp_path / "corrupt"
    shutil.copytree(repo, corrupt)
    target = corrupt / "dsp20" / "1" / "model.onnx"
    if content == "bad-op":  # parses as ONNX, but ONNX Runtime cannot build a session from it
        model = onnx.load(str(target))
        model.graph.node[0].op_type = "NoSuchOp"
        onnx.save(model, str(target))
    else:
        target.write_bytes(content)
    assert main(["serve", str(corrupt), "--http-port", "1", "--grpc-port", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model 'dsp20'" in err, err


def test_engine_config_takes_batch_and_dims_from_the_profile(tmp_path):
    plan = tmp_path / "dsp50.plan"
    plan.write_bytes(b"not loaded by triton-repo")
    manifest = EngineManifest(
        engine=plan.name, engine_sha256=sha256_file(plan), engine_bytes=plan.stat().st_size, flavour="tensorrt_rtx",
        version="1.7", source_onnx="dsp50.onnx", source_onnx_sha256="", precision="float16", strongly_typed=True,
        inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 224, 224],
                 "profile": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [16, 3, 224, 224]}}],
        outputs=[{"name": "logits", "dtype": "float32", "shape": [-1, 1000]}],
        batch={"min": 1, "opt": 8, "max": 16}, targets=["DEFAULT"], conv_groups={}, network_layers=[])
    (tmp_path / "dsp50.plan.json").write_text(manifest.to_json())
    out = tmp_path / "repo"
    build_repository([str(plan)], out, RepoOptions(gpu=True, max_batch=64))
    config = configs(out)["dsp50"]
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert list(config.input[0].dims) == [3, 224, 224] and list(config.output[0].dims) == [1000]
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    assert (out / "dsp50" / "1" / "model.plan").is_file() and (out / "dsp50" / "1" / "model.plan.json").is_file()


def test_cli_writes_labels_and_refuses_bad_input_without_a_repository(dsp_onnx, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    out = tmp_path / "repo"
    assert main(["triton-repo", f"m={dsp_onnx}", "--out", str(out), "--labels", str(labels)]) == 0
    assert configs(out)["m"].output[0].label_filename == "labels.txt" and (out / "m" / "labels.txt").is_file()
    capsys.readouterr()
    other = tmp_path / "other"
    assert main(["triton-repo", f"m={dsp_onnx}", str(tmp_path / "missing.onnx"), "--out", str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.onnx" in err
    assert main(["triton-repo", f"a={dsp_onnx}", f"a={dsp_onnx}", "--out", str(other)]) == 1
    assert not other.exists() and not list(tmp_path.glob(".other*"))


def test_serve_builds_the_same_checked_config_for_a_bare_onnx_file(dsp_onnx, repo):
    from dsp_deploy.serving.server import ServeOptions, collect_models

    (model,) = collect_models([f"dsp20={dsp_onnx}"], ServeOptions(max_batch=16, queue_delay_us=2000))
    assert model.config == configs(repo)["dsp20"] and model.path == dsp_onnx
    with pytest.raises(ServingError, match="share a name"):
        collect_models([f"dsp20={dsp_onnx}", str(repo)], ServeOptions())


def test_max_batch_zero_keeps_the_batch_dim_and_no_batcher(dsp_onnx, tmp_path):
    out = tmp_path / "repo"
    build_repository([f"m={dsp_onnx}"], out, RepoOptions(max_batch=0))
    config = configs(out)["m"]
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, 3, 32, 32]
    assert not config.HasField("dynamic_batching")
