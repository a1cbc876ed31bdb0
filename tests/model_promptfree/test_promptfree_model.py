"""The prompt-free model: builder, memory-bounded volumetric predictor, weight round trip, sam engine, SAM 2 path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from infarctsam.errors import WeightsError
from infarctsam.io.volume import Volume
from infarctsam.model.build import ARCHITECTURE, build_model, expected_shapes
from infarctsam.model.config import ModelConfig
from infarctsam.model.sam2 import MemoryBank
from infarctsam.preprocess import preprocess
from infarctsam.runtime.predictor import PredictorOptions, VolumePredictor

from synthetic_cases import copy_entries, head_phantom, save_nifti

TINY = ModelConfig(image_size=32)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model, info = build_model(TINY, None)
    return model


def _case():
    sp = (3.0, 3.0, 3.0)  # 36 mm: 18 slices of the 2-mm model grid
    dwi, _, _, les = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    pre = preprocess(Volume(dwi, np.diag([*sp, 1.0])))
    return pre, les


def test_untrained_model_is_single_slice_litemedsam_shape(tiny_model):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits = tiny_model(x)
    assert logits.shape == (2, 1, 32, 32) and torch.isfinite(logits).all()
    # the memory gate starts closed and the stem's outputs at zero: memory and stem do not change the output
    assert float(tiny_model.memory_gate.detach()) == 0.0
    s0, s1 = tiny_model.stem(x)
    assert s0.shape == (2, 32, 32, 32) and s1.shape == (2, 64, 16, 16) and s0.abs().max() == 0


def test_predictor_probability_volume_and_bounded_memory(tiny_model, monkeypatch):
    pre, _ = _case()
    predictor = VolumePredictor(tiny_model, TINY, PredictorOptions(runtime="torch"))  # the PyTorch memory bank
    sizes = []
    original = MemoryBank.add

    def spy(self, index, entry, conditioning=False):
        original(self, index, entry, conditioning)
        sizes.append(len(self))

    monkeypatch.setattr(MemoryBank, "add", spy)
    prob = predictor.predict(pre)
    assert prob.shape == pre.dwi.shape and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    n_slices = int((pre.brain.sum(axis=(0, 1)) >= 10).sum())
    assert len(sizes) == n_slices  # forward and backward passes run together, one memory per step
    cap = max(TINY.num_maskmem - 1, TINY.max_obj_ptrs - 1)
    assert max(sizes) <= cap < n_slices  # the bank never holds the whole stack
    empty = pre.brain.sum(axis=(0, 1)) < 10
    assert np.all(prob[:, :, empty] == 0)


def test_safetensors_round_trip_and_engine(tmp_path, tiny_net, compiled_cache):
    """The session's tiny network saved under another name: the same tensors, hence the parts compiled for the
    session (see conftest.py), give the in-memory network's probabilities."""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.weights_format import ModelCard, save_weights

    card = ModelCard(name="tiny-test", architecture=ARCHITECTURE, config=TINY.model_dump(), image_size=32,
                     licence="Apache-2.0")
    path = save_weights(tmp_path / "tiny.safetensors", tiny_net.model.state_dict(), card)
    engine = SamEngine.from_weights(path, precision="fp32")
    pre, _ = _case()
    a = engine.predict(pre)
    b = VolumePredictor(tiny_net.model, TINY, PredictorOptions(runtime="torch")).predict(pre)  # in-memory network
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert b.max() > 0.01  # not two empty maps
    assert engine.info.name == "sam" and "tiny-test" in engine.info.weights
    assert set(expected_shapes(TINY)) == set(tiny_net.model.state_dict())


def test_segment_cli_with_sam_weights(tmp_path, tiny_net, compiled_cache):
    from infarctsam.cli import app
    from infarctsam.model.weights_format import ModelCard, read_card, save_weights

    card = ModelCard(name="tiny-cli", architecture=ARCHITECTURE, config=TINY.model_dump(), image_size=32,
                     licence="Apache-2.0")
    weights = save_weights(tmp_path / "w.safetensors", tiny_net.model.state_dict(), card)
    # --cache-dir holds the network's exports (not their compiled blobs): read, compiled and completed there
    onnx = copy_entries(compiled_cache, tiny_net.key, tmp_path / "onnx", blobs=False)
    stamps = {p: p.stat().st_mtime_ns for p in onnx.glob("*.onnx")}
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=(3.0, 3.0, 3.0), scalp=False)
    src = save_nifti(tmp_path / "p_dwi.nii.gz", dwi, np.diag([-3.0, 3.0, 3.0, 1.0]))
    res = CliRunner().invoke(app, ["segment", str(src), "--engine", "sam", "--weights", str(weights), "--no-qc",
                                   "--cache-dir", str(tmp_path / "onnx"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "p.json").read_text(encoding="utf-8"))
    assert summary["engine"] == "sam" and "tiny-cli" in summary["weights"]
    assert summary["engine_config"]["image_size"] == 32
    digest = summary["weights"].split("sha256 ")[1].rstrip(")")
    assert digest == read_card(weights).tensors_sha256 and len(digest) == 64  # not cut to a prefix
    assert list((onnx / "openvino").glob("*.blob"))  # --cache-dir is the cache that was used
    assert {p: p.stat().st_mtime_ns for p in onnx.glob("*.onnx")} == stamps  # read, not exported again


def test_tampered_weights_are_refused(tmp_path, tiny_model):
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.weights_format import ModelCard, save_weights

    card = ModelCard(name="t", architecture=ARCHITECTURE, config=TINY.model_dump(), image_size=32, licence="x")
    path = save_weights(tmp_path / "t.safetensors", tiny_model.state_dict(), card)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError):
        SamEngine.from_weights(path)
    with pytest.raises(WeightsError, match="not found"):
        SamEngine.from_weights(tmp_path / "missing.safetensors")


def test_sam21_checkpoint_loads_strict_into_the_hiera_backbone(tmp_path):
    """A SAM 2.1-tiny-shaped .pt (random values) loads with strict=True and segments a volume prompt-free."""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.sam2 import build_sam2, hiera_tiny

    torch.manual_seed(1)
    ref = build_sam2(hiera_tiny(256))
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": ref.state_dict()}, ckpt)
    engine = SamEngine.from_weights(ckpt, image_size=256)
    assert engine.config.backbone == "sam2.1_hiera_tiny" and engine.config.image_size == 256
    sam = engine.predictor.model.sam
    for key, value in ref.state_dict().items():
        assert torch.equal(sam.state_dict()[key], value), key
    pre, _ = _case()
    pre.dwi, pre.brain = pre.dwi[:, :, 4:6].copy(), pre.brain[:, :, 4:6].copy()  # two slices keep it fast
    prob = engine.predict(pre)
    assert prob.shape == pre.dwi.shape and np.isfinite(prob).all()


def test_onnx_runtime_encoder_matches_torch(tiny_net):
    from infarctsam.runtime.onnx_trunk import onnxruntime_available
    from infarctsam.runtime.predictor import PredictorOptions

    if not onnxruntime_available():
        pytest.skip("onnxruntime / onnx are not installed")
    pre, _ = _case()
    fast = VolumePredictor(tiny_net.model, TINY, PredictorOptions(runtime="onnx"))  # the session's trunk export
    slow = VolumePredictor(tiny_net.model, TINY, PredictorOptions(runtime="torch"))
    assert fast._onnx is not None and slow._onnx is None
    images, _, _ = slow.slice_images(pre)
    x = torch.from_numpy(images)
    with torch.inference_mode():
        a, b = fast.encode(x), slow.encode(x)
    rel = float((a.image_embed - b.image_embed).abs().max() / b.image_embed.abs().max())
    assert rel < 1e-4
    np.testing.assert_allclose(fast.predict(pre), slow.predict(pre), atol=1e-3)


def test_batched_bidirectional_decoding_equals_two_passes(tiny_model):
    from infarctsam.runtime.predictor import decode_both_directions, decode_stack

    torch.manual_seed(3)
    with torch.inference_mode():
        feats = tiny_model.encode(torch.rand(6, 3, 32, 32))
        fwd, bwd = decode_both_directions(tiny_model, feats)
        torch.testing.assert_close(fwd, decode_stack(tiny_model, feats, reverse=False), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bwd, decode_stack(tiny_model, feats, reverse=True), atol=1e-5, rtol=1e-4)


def test_lesion_segments_widen_and_merge():
    from infarctsam.runtime.slices import lesion_segments

    present = np.zeros(20, bool)
    present[[5, 6, 9, 17]] = True
    assert lesion_segments(present, 2) == [(3, 12), (15, 20)]
    assert lesion_segments(np.zeros(5, bool), 3) == []


def test_memory_segments_keep_only_selected_slices_with_a_score():
    from infarctsam.runtime.slices import memory_segments

    scores = np.full(20, -1.0)
    scores[[5, 6, 9, 17]] = 2.0
    probs = np.zeros((20, 4, 4), np.float32)
    probs[[5, 17], 0, 0] = 0.9
    assert memory_segments(probs, scores, 2) == [(3, 12), (15, 20)]
    select = lambda p: p.max(axis=(1, 2)) > 0.5  # noqa: E731
    assert memory_segments(probs, scores, 2, select) == [(3, 8), (15, 20)]
    assert memory_segments(probs, scores, 2, lambda p: np.zeros(len(p), bool)) == []


def test_memory_scope_all_covers_the_stack(tiny_model):
    from infarctsam.runtime.predictor import decode_both_directions, decode_volume

    torch.manual_seed(4)
    with torch.inference_mode():
        feats = tiny_model.encode(torch.rand(5, 3, 32, 32))
        full = decode_volume(tiny_model, feats, bidirectional=True, full=True)
        fwd, bwd = decode_both_directions(tiny_model, feats)
    torch.testing.assert_close(full, 0.5 * (fwd + bwd))
