"""Every file type dsp-deploy reads: how to make a valid sample and how the tool reads it.

Readers go through the real CLI in this process (``dsp_deploy.cli.main.main``) where a command
reads the file; lowering plans and bench/compare result files are read by no command, so their
library readers are used. IDX data is not covered: this branch has no IDX reader.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robustness.hostile import REPO, SENTINEL, Outcome, Variant, judge_api, judge_cli, placed, run_cli

REFERENCE = REPO.parent / "shared" / "dsp-reference" / "resnet20_g4.pt"


@dataclass(frozen=True)
class FileType:
    """A file type: its file name, how the tool reads it, and whether the format is pickle-based."""

    key: str
    name: str  # file name the variant is placed under
    reader: str  # how it is read, for the report
    run: Callable[[Variant, Path, Path, Path], Outcome]  # (variant, file, workdir, marker)
    pickled: bool = False


def _cli(argv: Callable[[Path, Path], list[str]], outputs: Callable[[Path], list[Path]] = lambda w: [],
         sentinel: str | None = None) -> Callable[[Variant, Path, Path, Path], Outcome]:
    def run(variant: Variant, path: Path, work: Path, marker: Path) -> Outcome:
        outs = outputs(work)
        with placed(variant, path):
            code, err = run_cli(argv(path, work))
            outcome = judge_cli(variant, path, code, err, outs, marker, sentinel)
        for out in outs:  # an accepted variant may have written its (valid) output
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        return outcome
    return run


def _api(call: Callable[[Path], object]) -> Callable[[Variant, Path, Path, Path], Outcome]:
    def run(variant: Variant, path: Path, work: Path, marker: Path) -> Outcome:
        with placed(variant, path):
            return judge_api(variant, path, call, marker)
    return run


def _load_plan(path: Path) -> object:
    from dsp_deploy.export import load_plan
    return load_plan(path)


def _read_bench(path: Path) -> object:
    from dsp_deploy.bench.results import read_json
    return read_json(path)


def _read_compare(path: Path) -> object:
    from dsp_deploy.compare.results import read_results
    return read_results(path)


def file_types(samples: Path) -> dict[str, FileType]:
    """The readers; ``samples`` holds the valid files made by :func:`make_samples`."""
    engine = samples / "tiny.engine"
    return {t.key: t for t in (
        FileType("checkpoint", "model.pt", "dsp-deploy info FILE", _cli(lambda p, w: ["info", str(p)]), True),
        FileType("torchscript", "authors.pt", "dsp-deploy import-reference FILE --out OUT --no-verify",
                 _cli(lambda p, w: ["import-reference", str(p), "--out", str(w / "out.pt"), "--no-verify"],
                      lambda w: [w / "out.pt"]), True),
        FileType("structure", "structure.json", "dsp-deploy info FILE", _cli(lambda p, w: ["info", str(p)])),
        FileType("plan", "model.onnx.plan.json", "dsp_deploy.export.load_plan(FILE) (no command reads plans)",
                 _api(_load_plan)),
        FileType("onnx", "model.onnx", "dsp-deploy bench FILE --backend ort-cpu --runs 1 --json OUT",
                 _cli(lambda p, w: ["-q", "bench", str(p), "--backend", "ort-cpu", "--runs", "1", "--warmup", "0",
                                    "--json", str(w / "out.json")], lambda w: [w / "out.json"])),
        FileType("engine", "tiny.engine", "dsp-deploy bench FILE --backend trt --json OUT (valid manifest beside)",
                 _engine_run(engine)),
        FileType("manifest", "tiny.engine.json", "dsp-deploy bench ENGINE --backend trt --json OUT (valid engine)",
                 _manifest_run(engine)),
        FileType("bench-results", "bench.json", "dsp_deploy.bench.results.read_json(FILE) (no command reads it)",
                 _api(_read_bench)),
        FileType("compare-results", "results.json",
                 "dsp_deploy.compare.results.read_results(FILE) (no command reads it)",
                 _api(_read_compare)),
        FileType("recipe", "recipe.json", f"dsp-deploy train --recipe FILE --data {SENTINEL} --out OUT",
                 _cli(lambda p, w: ["train", "--recipe", str(p), "--data", SENTINEL, "--out", str(w / "run")],
                      lambda w: [w / "run"], sentinel=SENTINEL)),
        FileType("profile", "profile.json", f"dsp-deploy export {SENTINEL}.pt --profile FILE --out OUT",
                 _cli(lambda p, w: ["export", f"{SENTINEL}.pt", "--profile", str(p), "--no-cache",
                                    "--out", str(w / "out.onnx")], lambda w: [w / "out.onnx"], sentinel=SENTINEL)),
    )}


def _engine_bench(engine: Path, work: Path) -> list[str]:
    return ["-q", "bench", str(engine), "--backend", "trt", "--runs", "1", "--warmup", "0",
            "--json", str(work / "out.json")]


def _engine_run(sample: Path) -> Callable[[Variant, Path, Path, Path], Outcome]:
    def run(variant: Variant, path: Path, work: Path, marker: Path) -> Outcome:
        shutil.copy(sample.with_name(sample.name + ".json"), path.with_name(path.name + ".json"))
        return _cli(lambda p, w: _engine_bench(p, w), lambda w: [w / "out.json"])(variant, path, work, marker)
    return run


def _manifest_run(sample: Path) -> Callable[[Variant, Path, Path, Path], Outcome]:
    def run(variant: Variant, path: Path, work: Path, marker: Path) -> Outcome:
        engine = path.with_name(path.name.removesuffix(".json"))
        shutil.copy(sample, engine)
        return _cli(lambda p, w: _engine_bench(engine, w), lambda w: [w / "out.json"])(variant, path, work, marker)
    return run


def make_samples(folder: Path) -> dict[str, Path]:
    """Write one valid file of every type into ``folder`` (seeded; a few seconds)."""
    import torch
    from bench.conftest import make_conv_onnx

    from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
    from dsp_deploy.export import export_onnx
    from dsp_deploy.models import create, topology
    from dsp_deploy.structure import dense_structure, save_structure

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    samples = {"checkpoint": folder / "model.pt", "structure": folder / "structure.json",
               "onnx": folder / "model.onnx", "plan": folder / "model.onnx.plan.json",
               "engine": folder / "tiny.engine", "manifest": folder / "tiny.engine.json",
               "bench-results": folder / "bench.json", "compare-results": folder / "results.json",
               "recipe": folder / "recipe.json", "profile": folder / "profile.json"}
    save_checkpoint(samples["checkpoint"], dense_checkpoint("resnet20", create("resnet20")))
    save_structure(dense_structure(topology("resnet20")), samples["structure"])
    export_onnx(str(samples["checkpoint"]), samples["onnx"], lowering="dense", parity=False, cache_path=None)
    tiny = make_conv_onnx(folder / "tiny.onnx", 4)
    for argv in (["build", str(tiny), "--out", str(samples["engine"]), "--batch", "1,1,2"],
                 ["bench", str(tiny), "--backend", "ort-cpu", "--runs", "2", "--warmup", "0",
                  "--json", str(samples["bench-results"])]):
        code, err = run_cli(["-q", *argv])
        assert code == 0, err
    shutil.copy(REPO / "bench" / "results" / "resnet20_g4" / "results.json", samples["compare-results"])
    shutil.copy(REPO / "dsp_deploy" / "recipes" / "cifar10_resnet20.json", samples["recipe"])
    shutil.copy(REPO / "dsp_deploy" / "profiles" / "cpu-ort.json", samples["profile"])
    if REFERENCE.is_file():
        samples["torchscript"] = folder / "authors.pt"
        shutil.copy(REFERENCE, samples["torchscript"])
    return samples


# (`info` reads checkpoints and structure files alike, so neither is "wrong" for the other)
WRONG_FOR_BINARY = ("plan", "profile")
WRONG_FOR_JSON = ("onnx", "engine")


def wrong_types(key: str, samples: dict[str, Path]) -> dict[str, bytes]:
    """Files of other types to put where ``key`` is expected (a PNG header too)."""
    names = WRONG_FOR_JSON if samples[key].suffix == ".json" else WRONG_FOR_BINARY
    wrong = {f"{n} file": samples[n].read_bytes() for n in names if n != key}
    if key in ("checkpoint", "torchscript"):
        wrong["ONNX model"] = samples["onnx"].read_bytes()
    if key == "onnx":
        wrong["checkpoint"] = samples["checkpoint"].read_bytes()
    wrong["PNG image"] = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    return wrong


def run_type(key: str, samples: dict[str, Path], work: Path, *, seed: int = 0, truncations: int = 12,
             flips: int = 12) -> list[Outcome]:
    """Every variant of one file type through its reader; the outcomes in order."""
    from robustness.hostile import variants

    kind = file_types(samples[key].parent)[key]
    case = work / key
    case.mkdir(parents=True, exist_ok=True)
    marker = case / "PICKLED-CODE-RAN"
    outcomes = []
    for variant in variants(samples[key].read_bytes(), wrong_types(key, samples), marker, seed=seed,
                            truncations=truncations, flips=flips, scripted=samples.get("torchscript")):
        outcomes.append(kind.run(variant, case / kind.name, case, marker))
        marker.unlink(missing_ok=True)
    return outcomes
