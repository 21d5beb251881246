"""Export options: validated on construction (errors name the field), profiles merged inside them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsp_deploy.errors import OptionError, UsageError
from dsp_deploy.export.options import ExportOptions
from dsp_deploy.export.plan import ORT_CPU, TENSORRT


def test_defaults_match_export_onnx() -> None:
    assert ExportOptions().kwargs() == {"lowering": "auto", "fp16": False, "opset": 17, "plan_batches": None,
                                        "channel_multiple": None, "backend": ORT_CPU}


def test_profile_by_name_and_file_under_explicit_values(tmp_path: Path) -> None:
    opts = ExportOptions.from_profile("tensorrt-fp16", lowering="union", opset=None)
    assert opts.lowering == "union" and opts.fp16 and opts.backend == TENSORRT  # profile, then the given value
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"opset": 18, "plan_batches": [1, 8], "description": "mine"}))
    opts = ExportOptions.from_profile(str(path), plan_batches=[4])
    assert opts.opset == 18 and opts.kwargs()["plan_batches"] == [4]
    assert ExportOptions.from_profile({"channel_multiple": 8}).channel_multiple == 8
    with pytest.raises(UsageError, match="unknown export profile 'nope'"):
        ExportOptions.from_profile("nope")


@pytest.mark.parametrize("kwargs,needle", [
    ({"opset": 9}, "opset 9 is not supported (13..21; default 17)"),
    ({"lowering": "fast"}, "unknown lowering 'fast'"),
    ({"backend": "tpu"}, "unknown backend 'tpu'"),
])
def test_bad_option_names_the_field(kwargs: dict, needle: str) -> None:
    with pytest.raises(OptionError) as info:
        ExportOptions(**kwargs)
    assert needle in str(info.value) and "--" not in str(info.value)
    assert str(info.value.named("--x")).count("--x") == 1
