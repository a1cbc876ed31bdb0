"""The OpenVINO runtime: the same decoding as PyTorch (fp32 to rounding), bf16 close, cache and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infarctsam.io.volume import Volume
from infarctsam.model.build import build_model
from infarctsam.model.config import ModelConfig
from infarctsam.preprocess import preprocess
from infarctsam.runtime.predictor import PredictorOptions, VolumePredictor, decode_volume

from synthetic_cases import head_phantom

pytest.importorskip("openvino", reason="the openvino runtime is a core dependency; this install lacks it")

TINY = ModelConfig(image_size=64)


@pytest.fixture(scope="module")
def trained_like_model():
    """A tiny random model whose memory path matters: memory gate open, object scores near zero."""
    torch.manual_seed(0)
    model, _ = build_model(TINY, None)
    with torch.no_grad():
        model.memory_gate.fill_(1.5)
        for p in model.stem.parameters():  # the stem's last layers start at zero: give them a voice
            p.add_(0.05 * torch.randn_like(p))
        head = model.sam.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        last.bias.fill_(0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cache(trained_like_model, tmp_path_factory):
    """One model cache for the module, filled once (exports, constants, compiled blobs): the tests that damage a
    cache work on a copy of it."""
    from infarctsam.runtime.openvino_sam import OpenVinoSam

    folder = tmp_path_factory.mktemp("ov") / "cache"
    OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=folder)
    return folder


def _case(flip: bool = False):
    sp = (3.0, 2.5, 3.0)  # 36 mm: 18 slices of the 2-mm model grid
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    affine = np.diag([-sp[0] if flip else sp[0], sp[1], sp[2], 1.0])
    return preprocess(Volume(dwi, affine))


def _predictor(model, runtime, cache, precision="auto"):
    options = PredictorOptions(runtime=runtime, precision=precision, onnx_cache=cache)
    return VolumePredictor(model, TINY, options)


def test_fp32_volume_equals_pytorch(trained_like_model, cache):
    pre = _case(flip=True)
    reference = _predictor(trained_like_model, "torch", cache).predict(pre)
    fast = _predictor(trained_like_model, "openvino", cache, "fp32")
    assert fast.runtime == "openvino" and fast.precision == "fp32"
    out = fast.predict(pre)
    assert out.shape == reference.shape
    assert np.abs(out - reference).max() < 1e-4
    assert reference.max() > 0.01  # the comparison is not between two empty maps


@pytest.mark.parametrize("bidirectional,full", [(True, True), (True, False), (False, True)])
def test_compiled_decoding_equals_pytorch_with_partial_and_full_memories(trained_like_model, cache,
                                                                         bidirectional, full):
    """11 slices: longer than the memory window, so the first slice of a pass has no memory, the next ones a growing,
    then a full memory (2 spatial memories, 7 pointers); the NumPy memory bank over the compiled parts must give
    PyTorch's probabilities on every slice, in both directions and over lesion runs."""
    from infarctsam.runtime.openvino_parts import decode_compiled
    from infarctsam.runtime.openvino_sam import OpenVinoSam

    torch.manual_seed(1)
    images = torch.rand(11, 3, 64, 64)
    compiled = OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=cache)
    embed = compiled.parts.encode(images.numpy(), batch=4)
    with torch.no_grad():
        features = trained_like_model.encode(images)
        assert np.abs(embed - features.image_embed.numpy()).max() < 1e-4
        expected = decode_volume(trained_like_model, features, bidirectional, full).numpy()
    got = decode_compiled(compiled.parts, compiled.constants, embed, images.numpy(), bidirectional, full)
    assert np.abs(expected - got).max() < 1e-5
    assert expected.max() > 0.05


def test_bf16_is_close_to_fp32(trained_like_model, cache):
    pre = _case()
    fp32 = _predictor(trained_like_model, "openvino", cache, "fp32").predict(pre)
    bf16 = _predictor(trained_like_model, "openvino", cache, "bf16")
    assert bf16.precision == "bf16"
    out = bf16.predict(pre)
    assert np.abs(out - fp32).max() < 0.05
    assert np.abs(out - fp32).mean() < 0.005


def test_exports_are_cached_and_read_again(trained_like_model, cache, tmp_path):
    """The module's cache was filled by one OpenVinoSam (the fixture); a copy of it is read, not exported again,
    also where the compiled blobs are missing (another CPU). Damaged entries of every kind: test_verified_cache.py."""
    import shutil

    from infarctsam.runtime.openvino_sam import OpenVinoSam

    shutil.copytree(cache, tmp_path / "cache")
    exports = sorted((tmp_path / "cache").glob("ov-*.onnx"))
    assert {p.name.split("-")[1] for p in exports} == {"encoder", "single", "step"}
    assert len(list((tmp_path / "cache").glob("ov-constants-*.npz"))) == 1
    stamps = {p: p.stat().st_mtime_ns for p in exports}
    OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=tmp_path / "cache")
    for blob in (tmp_path / "cache" / "openvino").glob("*.blob"):  # compiled elsewhere: the exports are read
        blob.unlink()
    again = OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=tmp_path / "cache")
    assert again.parts.encode(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 256, 16, 16)
    assert {p: p.stat().st_mtime_ns for p in exports} == stamps  # read again, not exported again


def test_runtime_choice_and_refusals(trained_like_model, cache):
    from infarctsam.runtime.openvino_parts import default_precision, part_precision

    auto = _predictor(trained_like_model, "auto", cache)
    assert auto.runtime == "openvino"  # the default where OpenVINO is installed
    assert auto.precision == default_precision() == "fp32"  # the unoptimised model's results by default
    assert [part_precision("mixed", n) for n in ("encoder", "single", "step")] == ["f32", "bf16", "bf16"]
    assert {part_precision(p, "encoder") for p in ("fp32", "bf16")} == {"f32", "bf16"}
    with pytest.raises(ValueError, match="bf16 precision needs the openvino runtime"):
        _predictor(trained_like_model, "onnx", cache, "bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        _predictor(trained_like_model, "openvino", cache, "fp16")


def test_engine_loads_from_the_compiled_parts(trained_like_model, tmp_path):
    """The second engine of the same weights runs from the cache without building the network (no PyTorch needed)."""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.build import ARCHITECTURE
    from infarctsam.model.weights_format import ModelCard, save_weights
    from infarctsam.runtime.openvino_parts import CompiledPredictor

    card = ModelCard(name="tiny-ov", architecture=ARCHITECTURE, config=TINY.model_dump(), image_size=64,
                     licence="Apache-2.0")
    weights = save_weights(tmp_path / "tiny.safetensors", trained_like_model.state_dict(), card)
    cache = tmp_path / "cache"
    pre = _case()
    first = SamEngine.from_weights(weights, cache_dir=cache, precision="fp32")
    assert first._model is not None  # nothing cached yet: the network was built and its parts exported
    expected = first.predict(pre)
    second = SamEngine.from_weights(weights, cache_dir=cache, precision="fp32")
    assert isinstance(second.predictor, CompiledPredictor) and second._model is None
    assert second.info.config["runtime"] == "openvino" and second.info.config["precision"] == "fp32"
    np.testing.assert_allclose(second.predict(pre), expected, atol=1e-5)
    # a damaged part is exported again instead of failing the case: every kind of entry, test_verified_cache.py
