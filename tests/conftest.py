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

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))

REFERENCE_DIR = Path(os.environ.get("DSP_REFERENCE_DIR", TESTS_DIR.parent.parent / "shared" / "dsp-reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder holding the authors' released checkpoints (skips when the shared data is absent)."""
    if not (REFERENCE_DIR / "resnet20_g4.pt").is_file():
        pytest.skip(f"shared reference checkpoints not found in {REFERENCE_DIR}")
    return REFERENCE_DIR
