"""The predictor's optional progress callback and ONNX cache folder; the sam engine's full weights sha256."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infarctsam.io.volume import Volume
from infarctsam.model.config import ModelConfig
from infarctsam.preprocess import preprocess
from infarctsam.runtime.predictor import PredictorOptions, VolumePredictor

from synthetic_cases import head_phantom

TINY = ModelConfig(image_size=32)


@pytest.fixture(scope="module")
def tiny_model(tiny_net, compiled_cache):
    """The session's tiny network, whose parts the session's model cache holds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_net.model
    torch.set_num_threads(previous)


def _case():
    sp = (3.0, 3.0, 3.0)  # 36 mm: 18 slices of the 2-mm model grid
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    return preprocess(Volume(dwi, np.diag([*sp, 1.0])))


@pytest.mark.parametrize("runtime", ["torch", "onnx", "openvino"])
def test_progress_counts_every_slice_encoded_then_decoding(tiny_model, tmp_path, runtime):
    from infarctsam.runtime.onnx_trunk import onnxruntime_available
    from infarctsam.runtime.openvino_parts import openvino_available

    if (runtime == "onnx" and not onnxruntime_available()) or (runtime == "openvino" and not openvino_available()):
        pytest.skip(f"the {runtime} runtime's package is not installed")
    pre = _case()
    from infarctsam.model.weights_format import state_dict_sha256
    from infarctsam.runtime import export_cache

    # the session's tiny network: its exports are shared through the run's cache, by key
    key = state_dict_sha256(tiny_model.state_dict())[:24] if runtime == "openvino" else None
    folder = tmp_path / "cache" if runtime == "torch" else export_cache.DEFAULT_CACHE
    options = PredictorOptions(batch_size=3, runtime=runtime, onnx_cache=folder, cache_key=key)
    predictor = VolumePredictor(tiny_model, TINY, options)
    calls: list[tuple[str, int, int]] = []
    with_progress = predictor.predict(pre, progress=lambda *a: calls.append(a))
    n = len(predictor.slice_images(pre)[2])
    encoded = [(d, t) for s, d, t in calls if s == "encoding slices"]
    from infarctsam.runtime.openvino_parts import ENCODER_BATCH

    step = ENCODER_BATCH if runtime == "openvino" else 3  # OpenVINO's encoder takes a slice a call
    assert encoded == [(min(i + step, n), n) for i in range(0, n, step)]
    stages = [s for s, _, _ in calls if s != "encoding slices"]
    assert stages[:2] == ["decoding slices one by one", "decoding slices with memory"]
    memory = [(d, t) for s, d, t in calls[calls.index(("decoding slices with memory", 0, 0)) + 1:]]
    assert memory and all(t == memory[0][1] for _, t in memory) and memory[-1][0] == memory[-1][1]
    np.testing.assert_array_equal(with_progress, predictor.predict(pre))  # the callback changes nothing
    exported = {"torch": "*.onnx", "onnx": "tinyvit-*.onnx", "openvino": "ov-*.onnx"}[runtime]
    assert (runtime != "torch") == any(folder.glob(exported))  # the cache goes where asked
