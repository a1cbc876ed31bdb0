"""The predictor's optional progress callback and ONNX cache folder; the sam engine's full weights sha256."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infarctsam.io.volume import Volume
from infarctsam.model.build import build_model
from infarctsam.model.config import ModelConfig
from infarctsam.model.predictor import PredictorOptions, VolumePredictor
from infarctsam.preprocess import preprocess

from synthetic_cases import head_phantom, save_nifti

TINY = ModelConfig(image_size=64)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    model, _ = build_model(TINY, None)
    yield model
    torch.set_num_threads(previous)


def _case():
    sp = (3.0, 3.0, 6.0)
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    return preprocess(Volume(dwi, np.diag([*sp, 1.0])))


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_progress_counts_every_slice_encoded_then_decoding(tiny_model, tmp_path, runtime):
    from infarctsam.model.onnx_trunk import onnxruntime_available

    if runtime == "onnx" and not onnxruntime_available():
        pytest.skip("onnxruntime / onnx are not installed")
    pre = _case()
    options = PredictorOptions(batch_size=3, runtime=runtime, onnx_cache=tmp_path / "cache")
    predictor = VolumePredictor(tiny_model, TINY, options)
    calls: list[tuple[str, int, int]] = []
    with_progress = predictor.predict(pre, progress=lambda *a: calls.append(a))
    n = len(predictor.slice_images(pre)[2])
    encoded = [(d, t) for s, d, t in calls if s == "encoding slices"]
    assert encoded == [(min(i + 3, n), n) for i in range(0, n, 3)]
    assert calls[-1] == ("decoding slices with memory", 0, 0)
    np.testing.assert_array_equal(with_progress, predictor.predict(pre))  # the callback changes nothing
    assert (runtime == "onnx") == any((tmp_path / "cache").glob("*.onnx"))  # the cache goes where asked


def test_sam_engine_json_has_full_weights_sha256(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from infarctsam.cli import app
    from infarctsam.model.build import ARCHITECTURE
    from infarctsam.model.weights_format import ModelCard, read_card, save_weights

    card = ModelCard(name="tiny-sha", architecture=ARCHITECTURE, config=TINY.model_dump(), image_size=64,
                     licence="Apache-2.0")
    weights = save_weights(tmp_path / "w.safetensors", tiny_model.state_dict(), card)
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=(3.0, 3.0, 6.0), scalp=False)
    src = save_nifti(tmp_path / "p_dwi.nii.gz", dwi, np.diag([-3.0, 3.0, 6.0, 1.0]))
    res = CliRunner().invoke(app, ["segment", str(src), "--engine", "sam", "--weights", str(weights), "--no-qc",
                                   "--cache-dir", str(tmp_path / "onnx"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "p.json").read_text(encoding="utf-8"))
    digest = summary["weights"].split("sha256 ")[1].rstrip(")")
    assert digest == read_card(weights).tensors_sha256 and len(digest) == 64  # not cut to a prefix
    assert any((tmp_path / "onnx").glob("*.onnx"))  # --cache-dir moved the encoder cache
