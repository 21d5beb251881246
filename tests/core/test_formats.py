"""One contract per file format: every JSON document the tool writes carries
``{"format": "dsp-deploy/<kind>", "format_version": N}``, its typed class reads it back, files of
the earlier spellings (one fixture each in ``old_formats/``, written by those releases) still
load, and a newer ``format_version`` is refused with one line naming the file and both versions."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsp_deploy.bench.results import BENCH_FORMAT, read_json
from dsp_deploy.checkpoint import CHECKPOINT_FORMAT
from dsp_deploy.compare.results import COMPARE_FORMAT, CompareRow, read_results
from dsp_deploy.engines.manifest import MANIFEST_FORMAT, EngineManifest
from dsp_deploy.errors import BenchError, DSPDeployError, ExportError
from dsp_deploy.export.measure import COST_CACHE_FORMAT, CostCache
from dsp_deploy.export.plan import PLAN_FORMAT, LoweringPlan
from dsp_deploy.structure import load_structure
from dsp_deploy.structure.ir import STRUCTURE_FORMAT
from dsp_deploy.utils.jsonfile import DocFormat

OLD = Path(__file__).with_name("old_formats")

# file in old_formats/ -> (its format, how the tool reads it, what its old spelling was)
READERS: dict[str, tuple[DocFormat, Callable[[Path], Any], str]] = {
    "structure.json": (STRUCTURE_FORMAT, load_structure, '"schema_version"'),
    "model.onnx.plan.json": (PLAN_FORMAT, LoweringPlan.load, '"version" only'),
    "tiny.engine.json": (MANIFEST_FORMAT, EngineManifest.load, '"dsp-deploy-engine-manifest"'),
    "bench.json": (BENCH_FORMAT, read_json, '"dsp-deploy-bench" + "version"'),
    "compare-results.json": (COMPARE_FORMAT, read_results, '"dsp-deploy-compare" + "version"'),
    "export-costs.json": (COST_CACHE_FORMAT, lambda p: CostCache(p).entries, "no header at all"),
}


def test_every_format_is_named_alike() -> None:
    formats = [f for f, _, _ in READERS.values()] + [CHECKPOINT_FORMAT]
    assert all(f.name == f"dsp-deploy/{f.kind}" and f.version >= 1 for f in formats)
    assert len({f.name for f in formats}) == len(formats)


@pytest.mark.parametrize("name", sorted(READERS))
def test_old_spellings_still_load(name: str) -> None:
    doc = json.loads((OLD / name).read_text())
    assert "format_version" not in doc or doc["format"] != READERS[name][0].name, "fixture is not an old spelling"
    assert READERS[name][1](OLD / name)


def test_old_files_load_as_typed_objects() -> None:
    assert read_results(OLD / "compare-results.json").rows[0] == CompareRow.from_dict(
        json.loads((OLD / "compare-results.json").read_text())["rows"][0])
    assert isinstance(read_results(OLD / "compare-results.json").rows[0].speedup_vs_dense, float)
    assert EngineManifest.load(OLD / "tiny.engine.json").batch == {"min": 1, "opt": 4, "max": 8}
    assert read_json(OLD / "bench.json")[0].median_ms > 0
    assert CostCache(OLD / "export-costs.json").entries
    plan = LoweringPlan.load(OLD / "model.onnx.plan.json")
    assert plan.layers and plan.passes == []  # written before plans recorded the export passes (format_version 2)


def _rewrite(name: str, tmp_path: Path) -> dict[str, Any]:
    """Load the old fixture and write it back in the current spelling; the written document."""
    path = tmp_path / name
    shutil.copy(OLD / name, path)
    loaded = READERS[name][1](path)
    if name == "structure.json":
        from dsp_deploy.structure import save_structure
        save_structure(loaded, path)
    elif name == "model.onnx.plan.json":
        path.write_text(loaded.to_json())
    elif name == "tiny.engine.json":
        path.write_text(loaded.to_json())
    elif name == "bench.json":
        from dsp_deploy.bench.results import write_json
        write_json(loaded, path)
    elif name == "compare-results.json":
        from dsp_deploy.compare.results import write_results_json
        write_results_json(loaded, path)
    else:
        cache = CostCache(path)
        cache.dirty = True
        cache.save()
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(READERS))
def test_written_documents_carry_the_header_and_read_back(name: str, tmp_path: Path) -> None:
    fmt, reader, _ = READERS[name]
    doc = _rewrite(name, tmp_path)
    assert doc["format"] == fmt.name and doc["format_version"] == fmt.version
    assert not {"schema_version", "version"} & set(doc) or name == "tiny.engine.json"  # manifest: TensorRT's version
    assert reader(tmp_path / name)


@pytest.mark.parametrize("name", sorted(READERS))
def test_newer_format_version_is_one_line_naming_file_and_versions(name: str, tmp_path: Path) -> None:
    fmt = READERS[name][0]
    doc = _rewrite(name, tmp_path)
    doc["format_version"] = fmt.version + 1
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    with pytest.raises(DSPDeployError) as info:
        READERS[name][1](path)
    message = str(info.value)
    assert str(path) in message and f"format_version {fmt.version + 1}" in message
    assert f"the {fmt.version} this dsp-deploy reads" in message and "\n" not in message


def test_check_refuses_foreign_and_invalid_headers() -> None:
    fmt = DocFormat("thing", 2, "thing file", old_names=("old-thing",), old_version_keys=("version",))
    assert fmt.check({"format": "old-thing", "version": 1}, BenchError, "f") == 1
    assert fmt.check({"format": "dsp-deploy/thing", "format_version": 2, "version": 9}, BenchError, "f") == 2
    for bad, message in [([], "not an object"), ({"format": "other"}, "format is 'other'"),
                         ({"format": "dsp-deploy/thing"}, "no valid format_version"),
                         ({"format": "dsp-deploy/thing", "format_version": True}, "no valid format_version"),
                         ({"format": "dsp-deploy/thing", "format_version": 3}, "format_version 3, newer than the 2")]:
        with pytest.raises(BenchError, match=message):
            fmt.check(bad, BenchError, "f")


def test_cost_cache_refuses_another_kind_of_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    shutil.copy(OLD / "bench.json", path)
    with pytest.raises(ExportError, match="not a planner timing cache"):
        CostCache(path)


@pytest.mark.parametrize("kind", ["checkpoint", "torch-lowered"])
def test_newer_torch_payloads_are_refused_alike(kind: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.export.torch_module import TORCH_EXPORT_FORMAT, load_lowered

    fmt, load = (CHECKPOINT_FORMAT, load_checkpoint) if kind == "checkpoint" else (TORCH_EXPORT_FORMAT, load_lowered)
    path = tmp_path / "model.pt"
    torch.save({"format": fmt.name, "format_version": fmt.version + 1}, path)
    with pytest.raises(DSPDeployError, match=f"{path}: .*format_version {fmt.version + 1}, newer than the 1"):
        load(path)


def test_json_summaries_carry_the_header(capsys: pytest.CaptureFixture[str]) -> None:
    from dsp_deploy.cli.main import main

    assert main(["info", str(OLD / "structure.json"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "dsp-deploy/info" and doc["format_version"] == 1 and doc["model"] == "resnet20"
