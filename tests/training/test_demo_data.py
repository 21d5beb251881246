"""Which data the demo uses: Fashion-MNIST when installed, else synthetic with how to get the real set."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsp_deploy.app.demo import DEMO_FASHION_TRAIN, resolve_demo_data
from dsp_deploy.data import fashion_mnist


def test_without_the_package_the_demo_says_so_and_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(fashion_mnist, "DEBIAN_PATH", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get to install it with
    data, note = resolve_demo_data("auto")
    assert data == "synthetic"
    assert "SYNTHETIC" in note and "apt-get install dataset-fashion-mnist" in note


def test_with_the_files_the_demo_uses_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from support.idx import write_fashion_set

    write_fashion_set(tmp_path / "fm")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_PATH", tmp_path / "fm")
    data, note = resolve_demo_data("auto")
    assert data == f"fashion-mnist@{DEMO_FASHION_TRAIN}" and "Fashion-MNIST" in note
    assert resolve_demo_data("synthetic")[0] == "synthetic"
