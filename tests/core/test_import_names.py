"""Every `from dsp_deploy... import name` in the package and the bench scripts names something that
exists. Function-level imports only fail when their function runs, so a name moved by a refactor
would otherwise break a benchmark (run by hand, not by the suite) silently."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_imports(files: list[Path], root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(module, name) -> where it is imported, for every ``from dsp_deploy.X import name`` (``*``: the
    module alone, checked as ``(module, "")``)."""
    found: dict[tuple[str, str], list[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dsp_deploy"):
                for alias in node.names:
                    name = "" if alias.name == "*" else alias.name
                    found.setdefault((node.module, name), []).append(f"{file.relative_to(root)}:{node.lineno}")
    return found


def missing_names(imports: dict[tuple[str, str], list[str]]) -> list[str]:
    """Imports whose module or name does not exist (a name may also be a submodule)."""
    missing = []
    for (module, name), where in sorted(imports.items()):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{where[0]}: {module} ({exc})")
            continue
        is_package = hasattr(mod, "__path__")
        if name and not hasattr(mod, name) and not (is_package and importlib.util.find_spec(f"{module}.{name}")):
            missing.append(f"{where[0]}: {name} from {module}")
    return missing


def test_every_imported_name_exists() -> None:
    files = sorted((ROOT / "dsp_deploy").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    imports = project_imports(files)
    assert len(imports) > 200  # the scan sees the package's own imports
    assert missing_names(imports) == []


def test_a_moved_name_is_caught(tmp_path: Path) -> None:
    planted = tmp_path / "bench_script.py"
    planted.write_text("def main():\n    from dsp_deploy.targets import cpu_isa\n")
    assert missing_names(project_imports([planted], tmp_path)) == ["bench_script.py:2: cpu_isa from dsp_deploy.targets"]
