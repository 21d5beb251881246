"""Shared test set-up: makes `tests/support` importable and points at the shared reference data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# One intra-op thread per test process: on a loaded 2-core machine torch's default thread pool
# oversubscribes the cores badly (seconds instead of milliseconds per forward pass).
torch.set_num_threads(1)

# Under pytest-xdist (`scripts/test` runs one worker per core) the CLI subprocesses the tests start get
# one thread too: two workers each running two-thread children would oversubscribe the cores.
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if XDIST_WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))

REFERENCE_DIR = Path(os.environ.get("DSP_REFERENCE_DIR", TESTS_DIR.parent.parent / "shared" / "dsp-reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder holding the authors' released checkpoints (skips when the shared data is absent)."""
    if not (REFERENCE_DIR / "resnet20_g4.pt").is_file():
        pytest.skip(f"shared reference checkpoints not found in {REFERENCE_DIR}")
    return REFERENCE_DIR


# Session fixtures that train or serve: the tests using one run on one xdist worker, so it is built once.
SHARED_FIXTURE_GROUPS = {"pipeline": "training-pipeline", "dpp_pipeline": "dppnet-pipeline",
                         "dsp_onnx": "serving", "repo": "serving"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scheduling for `pytest -n N --dist loadgroup` (what `scripts/test` runs): a file's tests form one
    group (its module fixtures are built once), tests sharing an expensive session fixture one group,
    and files holding `slow` tests go first so the longest groups do not start last."""
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    for item in items:
        path = item.nodeid.split("::")[0]
        shared = [SHARED_FIXTURE_GROUPS[f] for f in getattr(item, "fixturenames", ()) if f in SHARED_FIXTURE_GROUPS]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else path))
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)  # stable: file order kept
