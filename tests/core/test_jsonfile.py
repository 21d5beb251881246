"""read_json_object: the shared reader of the tool's JSON documents."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsp_deploy.errors import BenchError, ExportError
from dsp_deploy.export import load_plan
from dsp_deploy.utils.jsonfile import read_json_object


def test_reads_object_with_format(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"format": "x/y", "a": 1}')
    assert read_json_object(path, BenchError, "thing", format_name="x/y") == {"format": "x/y", "a": 1}


@pytest.mark.parametrize(("text", "message"), [
    (None, "no such file"),
    ("{not json", "not a readable JSON thing"),
    ("[1, 2]", "not an object"),
    ('{"format": "other"}', "format is 'other', expected 'x/y'"),
])
def test_bad_documents_name_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "doc.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BenchError, match=message) as info:
        read_json_object(path, BenchError, "thing", format_name="x/y")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_plan_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx.plan.json"
    path.write_text('{"format": "dsp-deploy/lowering-plan", "format_version": 1, "layers": 3}')
    with pytest.raises(ExportError, match="malformed lowering plan"):
        load_plan(path)
    path.write_text('{"rows": []}')
    with pytest.raises(ExportError, match="not a lowering plan"):
        load_plan(path)
