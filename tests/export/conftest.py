"""Export tests use the real ONNX Runtime (and TensorRT for RTX's parser where installed)."""
from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tracing and reference forwards of tiny models: one torch thread is fastest, and with
    two threads on a busy 2-core machine OpenMP spinning makes them ~100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
