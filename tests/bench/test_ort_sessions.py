"""ONNX Runtime CPU sessions of the harness: pinned threads, idle workers that sleep, same results as torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dsp_deploy.runtime.ort import OrtRunner


def test_ort_runner_session_settings_and_results(tmp_path: Path) -> None:
    from dsp_deploy.baselines.torch_pruning import export_plain_onnx
    from dsp_deploy.models import create

    model = create("resnet20").eval()
    path = tmp_path / "r20.onnx"
    export_plain_onnx(model, path, (3, 32, 32))
    with OrtRunner(path, threads=2, name="r20/ort-cpu") as runner:
        options = runner._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
        out = runner.infer({"input": x})
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(next(iter(out.values())), ref, atol=1e-4, rtol=1e-4)
        runner.prepare({"input": x})
        assert runner.timed_infer() > 0
