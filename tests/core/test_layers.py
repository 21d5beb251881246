"""The package's import layers (dsp_deploy/layers.py): no import goes up a layer, no package cycle,
and the checker really catches both (shown on a small planted tree)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dsp_deploy
from dsp_deploy.layers import LAYERS, check_package, package_imports

PACKAGE_DIR = Path(dsp_deploy.__file__).parent


def test_dsp_deploy_imports_follow_the_layers() -> None:
    assert check_package(PACKAGE_DIR) == []


def test_function_level_imports_are_seen() -> None:
    found = {(i.module, i.target) for i in package_imports(PACKAGE_DIR)}
    # a function-level import of a lower layer (the demo loads the training stages lazily)
    assert ("dsp_deploy.app.demo", "dsp_deploy.training.learn") in found


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "dsp_deploy"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_planted_upward_import_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "utils/helpers.py": "def f():\n    from dsp_deploy.bench.harness import run\n",  # up, hidden in a function
        "bench/harness.py": "from dsp_deploy.utils import helpers\n",
    })
    problems = check_package(root)
    assert any("dsp_deploy.utils.helpers:2 imports dsp_deploy.bench.harness" in p and "above" in p for p in problems)
    assert any(p.startswith("package cycle") for p in problems)


def test_planted_cycle_within_a_layer_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "export/a.py": "from dsp_deploy.engines import b\n",
        "engines/b.py": "from ..export import a\n",  # relative imports count too
    })
    problems = check_package(root)
    assert problems == [problems[0]] and "package cycle" in problems[0] and "engines" in problems[0]


def test_unplaced_module_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"newthing.py": "", "utils/x.py": ""})
    assert check_package(root) == ["dsp_deploy.newthing is in no layer (add it to dsp_deploy.layers.LAYERS)"]


def test_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"cli/main.py": "from dsp_deploy.bench import harness\nfrom dsp_deploy import errors\n",
                            "bench/harness.py": "import dsp_deploy.runtime.timing\n", "runtime/timing.py": ""})
    assert check_package(root) == []
    assert [u for layer in LAYERS for u in layer].count("runtime") == 1


def test_import_dsp_deploy_stays_light() -> None:
    heavy = ("torch", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx", "polygraphy")
    code = ("import sys, dsp_deploy, dsp_deploy.cli.main, dsp_deploy.runtime; "
            f"print([m for m in sys.modules if m.split('.')[0] in {heavy!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
