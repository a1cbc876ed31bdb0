"""The OpenVINO runtime: the same decoding as PyTorch (fp32 to rounding), bf16 close, cache and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infarctsam.io.volume import Volume
from infarctsam.model.config import ModelConfig
from infarctsam.preprocess import preprocess
from infarctsam.runtime.predictor import PredictorOptions, VolumePredictor, decode_volume

from synthetic_cases import copy_entries, head_phantom

pytest.importorskip("openvino", reason="the openvino runtime is a core dependency; this install lacks it")

TINY = ModelConfig(image_size=32)


@pytest.fixture(scope="module")
def net(tiny_net, compiled_cache):
    """The session's tiny network (memory gate open, object scores near zero: its memory path matters), whose parts
    the session's model cache holds (exported once for the run: see conftest.py)."""
    return tiny_net


@pytest.fixture(scope="module")
def trained_like_model(net):
    return net.model


@pytest.fixture(scope="module")
def cache(compiled_cache):
    return compiled_cache


def _case(flip: bool = False):
    sp = (3.0, 2.5, 3.0)  # 36 mm: 18 slices of the 2-mm model grid
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    affine = np.diag([-sp[0] if flip else sp[0], sp[1], sp[2], 1.0])
    return preprocess(Volume(dwi, affine))


def _predictor(net, runtime, cache, precision="auto"):
    options = PredictorOptions(runtime=runtime, precision=precision, onnx_cache=cache, cache_key=net.key)
    return VolumePredictor(net.model, TINY, options)


def test_fp32_volume_equals_pytorch(net, cache):
    pre = _case(flip=True)
    reference = _predictor(net, "torch", cache).predict(pre)
    fast = _predictor(net, "openvino", cache, "fp32")
    assert fast.runtime == "openvino" and fast.precision == "fp32"
    out = fast.predict(pre)
    assert out.shape == reference.shape
    assert np.abs(out - reference).max() < 1e-4
    assert reference.max() > 0.01  # the comparison is not between two empty maps


@pytest.mark.parametrize("bidirectional,full", [(True, True), (True, False), (False, True)])
def test_compiled_decoding_equals_pytorch_with_partial_and_full_memories(net, trained_like_model, cache,
                                                                         bidirectional, full):
    """11 slices: longer than the memory window, so the first slice of a pass has no memory, the next ones a growing,
    then a full memory (2 spatial memories, 7 pointers); the NumPy memory bank over the compiled parts must give
    PyTorch's probabilities on every slice, in both directions and over lesion runs."""
    from infarctsam.runtime.openvino_parts import decode_compiled
    from infarctsam.runtime.openvino_sam import OpenVinoSam

    torch.manual_seed(1)
    images = torch.rand(11, 3, 32, 32)
    compiled = OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=cache, key=net.key)
    embed = compiled.parts.encode(images.numpy(), batch=4)
    with torch.no_grad():
        features = trained_like_model.encode(images)
        assert np.abs(embed - features.image_embed.numpy()).max() < 1e-4
        expected = decode_volume(trained_like_model, features, bidirectional, full).numpy()
    got = decode_compiled(compiled.parts, compiled.constants, embed, images.numpy(), bidirectional, full)
    assert np.abs(expected - got).max() < 1e-5
    assert expected.max() > 0.05


def test_slice_selection_narrows_the_memory_passes_alike_in_both_runtimes(net, trained_like_model, cache):
    """A selection of slices (the engine's fusion test) changes which slices get memory passes, the same way in the
    compiled and the PyTorch decoding; selecting none leaves every slice's single-slice result."""
    from infarctsam.runtime.openvino_parts import decode_compiled
    from infarctsam.runtime.openvino_sam import OpenVinoSam
    from infarctsam.runtime.predictor import decode_single

    torch.manual_seed(2)
    images = torch.rand(11, 3, 32, 32)
    compiled = OpenVinoSam(trained_like_model, "fp32", threads=1, cache_dir=cache, key=net.key)
    embed = compiled.parts.encode(images.numpy(), batch=4)
    keep = np.zeros(11, bool)
    keep[1] = True
    seen = []

    def select(probs):
        seen.append(probs.shape)
        return keep

    with torch.no_grad():
        features = trained_like_model.encode(images)
        single, scores = decode_single(trained_like_model, features)
        expected = decode_volume(trained_like_model, features, True, False, None, select).numpy()
        unselected = decode_volume(trained_like_model, features, True, False).numpy()
        nothing = decode_volume(trained_like_model, features, True, False, None, lambda p: np.zeros(len(p), bool))
    assert (scores > 0).sum() >= 9  # the tiny network's scores mark most slices: the selection is what narrows
    got = decode_compiled(compiled.parts, compiled.constants, embed, images.numpy(), True, False, None, select)
    assert seen == [(11, 32, 32), (11, 32, 32)]
    assert np.abs(expected - got).max() < 1e-5
    assert np.abs(expected - unselected).max() > 1e-3  # the memory passes run over other slices
    torch.testing.assert_close(nothing, single)


def test_bf16_is_close_to_fp32(net, cache):
    pre = _case()
    fp32 = _predictor(net, "openvino", cache, "fp32").predict(pre)
    bf16 = _predictor(net, "openvino", cache, "bf16")
    assert bf16.precision == "bf16"
    out = bf16.predict(pre)
    assert np.abs(out - fp32).max() < 0.05
    assert np.abs(out - fp32).mean() < 0.005


def test_exports_are_cached_and_read_again(net, cache, tmp_path):
    """A copy of the network's entries in the session's cache (filled by one engine) is read, not exported again,
    also where the compiled blobs are missing (another CPU). Damaged entries of every kind: test_verified_cache.py."""
    from infarctsam.runtime.openvino_sam import OpenVinoSam

    copy = copy_entries(cache, net.key, tmp_path / "cache")
    exports = sorted(copy.glob("ov-*.onnx"))
    assert {p.name.split("-")[1] for p in exports} == {"encoder", "single", "step"}
    assert len(list(copy.glob("ov-constants-*.npz"))) == 1
    stamps = {p: p.stat().st_mtime_ns for p in exports}
    OpenVinoSam(net.model, "fp32", threads=1, cache_dir=copy, key=net.key)
    for blob in (copy / "openvino").glob("*.blob"):  # compiled elsewhere: the exports are read
        blob.unlink()
    again = OpenVinoSam(net.model, "fp32", threads=1, cache_dir=copy, key=net.key)
    assert again.parts.encode(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 256, 8, 8)
    assert {p: p.stat().st_mtime_ns for p in exports} == stamps  # read again, not exported again
    assert list((copy / "openvino").glob("*.blob"))  # compiled, and the blobs stored for the next process


def test_runtime_choice_and_refusals(net, cache):
    from infarctsam.runtime.openvino_parts import default_precision, part_precision

    auto = _predictor(net, "auto", cache)
    assert auto.runtime == "openvino"  # the default where OpenVINO is installed
    assert auto.precision == default_precision() == "fp32"  # the unoptimised model's results by default
    assert [part_precision("mixed", n) for n in ("encoder", "single", "step")] == ["f32", "bf16", "bf16"]
    assert {part_precision(p, "encoder") for p in ("fp32", "bf16")} == {"f32", "bf16"}
    with pytest.raises(ValueError, match="bf16 precision needs the openvino runtime"):
        _predictor(net, "onnx", cache, "bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        _predictor(net, "openvino", cache, "fp16")


def test_engine_loads_from_the_compiled_parts(net, cache, tmp_path):
    """An engine of weights whose parts are in the cache runs from them without building the network (no PyTorch
    needed), and gives the network's probabilities. (The first engine, which exports them, made the session's cache:
    see conftest.py.)"""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.runtime.openvino_parts import CompiledPredictor

    copy = copy_entries(cache, net.key, tmp_path / "cache", blobs=False)  # the exports alone: compiled here
    pre = _case()
    expected = _predictor(net, "torch", None).predict(pre)
    engine = SamEngine.from_weights(net.weights, cache_dir=copy, precision="fp32")
    assert isinstance(engine.predictor, CompiledPredictor) and engine._model is None
    assert engine.info.config["runtime"] == "openvino" and engine.info.config["precision"] == "fp32"
    np.testing.assert_allclose(engine.predict(pre), expected, atol=1e-4)
    assert list((copy / "openvino").glob("*.blob"))  # compiled blobs stored for the next process
    # a damaged part is exported again instead of failing the case: every kind of entry, test_verified_cache.py
