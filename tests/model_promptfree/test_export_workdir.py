"""ONNX exports leave nothing in the working directory: they run (and must succeed) from a read-only folder."""

from __future__ import annotations

import stat

import numpy as np
import pytest
import torch

from infarctsam.model.build import build_model
from infarctsam.model.config import ModelConfig
from infarctsam.runtime.export_cache import cached_export, export_onnx


@pytest.fixture
def readonly_cwd(tmp_path, monkeypatch):
    """The test's working directory is an empty read-only folder; it must still be empty afterwards (which also
    holds where the permission is not enforced, e.g. for root)."""
    cwd = tmp_path / "readonly"
    cwd.mkdir()
    cwd.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.chdir(cwd)
    yield cwd
    cwd.chmod(stat.S_IRWXU)
    assert list(cwd.iterdir()) == []


def test_export_from_readonly_folder_writes_nothing_there(readonly_cwd, tmp_path):
    onnx = pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    data = export_onnx(module, (torch.zeros(2, 3, 8, 8),), ["images"], ["features"])
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == ["images"]
    assert len(model.graph.initializer) == 2  # the weights are inside the bytes, not in an external-data file
    _, stored = cached_export(tmp_path / "cache", "conv", "k", lambda: data)
    assert stored is not None and stored.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["conv-k.onnx", "conv-k.onnx.sha256"]


def test_model_part_export_from_readonly_folder(readonly_cwd):
    pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
    from infarctsam.runtime.openvino_sam import export_graph

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig(image_size=32), None)
    data = export_graph(model.eval(), "single", 2)
    assert len(data) > 10_000
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime checks the exported graph runs")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["feat", "images"]
    shapes = {i.name: i.shape for i in session.get_inputs()}
    out = session.run(None, {k: np.zeros(v, np.float32) for k, v in shapes.items()})
    assert out[0].shape[0] == 2 and np.isfinite(out[0]).all()
