"""infarctsam's .safetensors + model card format."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from infarctsam.errors import WeightsError
from infarctsam.model.weights_format import (
    CARD_METADATA_KEY,
    ModelCard,
    card_path_for,
    load_weights,
    read_card,
    save_weights,
    state_dict_sha256,
)


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "enc.conv.weight": torch.randn(8, 3, 3, 3, generator=gen),
        "enc.norm.bias": torch.randn(8, generator=gen),
        "enc.bn.num_batches_tracked": torch.tensor(17),
        "dec.big": torch.full((4,), 1e6),  # beyond float16 range
        "dec.mask": torch.tensor([True, False, True]),
    }


def card(**overrides) -> ModelCard:
    fields = {
        "name": "toy",
        "architecture": "infarctsam-litemedsam",
        "config": {"embed_dims": [8, 16]},
        "image_size": 256,
        "created": "2025-01-31",
        "training": {"data": "synthetic", "steps": 10},
        "metrics": {"dice": 0.5},
        "base_weights": {"name": "lite_medsam.pth", "sha256": "79d8c9dc"},
        "licence": "Apache-2.0",
    }
    return ModelCard(**{**fields, **overrides})


def data_offset(path) -> int:
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_len


def test_round_trip(tmp_path):
    state = small_state()
    path = save_weights(tmp_path / "toy.safetensors", state, card())
    assert path == tmp_path / "toy.safetensors" and card_path_for(path).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.safetensors"]  # no temporaries left
    loaded, got = load_weights(path)
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v)
    assert got.n_tensors == 5 and got.n_values == 216 + 8 + 1 + 4 + 3
    assert got.tensors_sha256 == state_dict_sha256(state)
    assert got.metrics == {"dice": 0.5} and got.base_weights["sha256"] == "79d8c9dc"
    assert json.loads(card_path_for(path).read_text(encoding="utf-8"))["tensors_sha256"] == got.tensors_sha256


def test_checksum_depends_on_content_not_layout():
    state = small_state()
    base = state_dict_sha256(state)
    reordered = dict(reversed(list(state.items())))
    strided = dict(state, **{"enc.conv.weight": state["enc.conv.weight"].permute(1, 0, 2, 3).contiguous().permute(
        1, 0, 2, 3)})
    assert not strided["enc.conv.weight"].is_contiguous()
    assert state_dict_sha256(reordered) == state_dict_sha256(strided) == base
    changed = dict(state, **{"enc.norm.bias": state["enc.norm.bias"].clone()})
    changed["enc.norm.bias"][3] += 1e-3
    assert state_dict_sha256(changed) != base
    assert state_dict_sha256(dict(state, **{"enc.norm.bias": state["enc.norm.bias"].double()})) != base
    assert state_dict_sha256(dict(state, **{"enc.norm.bias": state["enc.norm.bias"].reshape(2, 4)})) != base


def test_tampered_tensor_is_refused(tmp_path):
    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    raw = bytearray(path.read_bytes())
    raw[data_offset(path) + 5] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="fail their checksum"):
        load_weights(path)
    state, _ = load_weights(path, verify=False)
    original = small_state()
    assert sum(not torch.equal(state[k], original[k]) for k in original) == 1


def test_tampered_card_is_refused(tmp_path):
    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    sidecar = card_path_for(path)
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    data["metrics"]["dice"] = 0.99
    sidecar.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(WeightsError, match="differs from the card embedded"):
        load_weights(path)
    sidecar.write_text("{not json", encoding="utf-8")
    with pytest.raises(WeightsError, match="is not valid JSON"):
        load_weights(path)
    sidecar.write_text(json.dumps({**data, "image_size": -3}), encoding="utf-8")
    with pytest.raises(WeightsError, match="invalid: image_size"):
        load_weights(path)
    sidecar.write_text(json.dumps({**data, "format_version": 99}), encoding="utf-8")
    with pytest.raises(WeightsError, match="format version 99, newer"):
        load_weights(path)


def test_missing_card_is_refused_but_embedded_card_suffices(tmp_path):
    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    card_path_for(path).unlink()
    _, got = load_weights(path)  # the card travels inside the file too
    assert got.name == "toy"
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(3)}, str(bare))
    with pytest.raises(WeightsError) as info:
        load_weights(bare)
    assert "no model card (bare.json is missing and none is embedded)" in str(info.value)


def test_missing_corrupt_and_misnamed_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "nothing.safetensors")
    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_weights(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x07" * 64)
    with pytest.raises(WeightsError, match="junk.safetensors is corrupt or truncated"):
        load_weights(junk)
    with pytest.raises(WeightsError, match=r"must end in \.safetensors"):
        save_weights(tmp_path / "toy.pt", small_state(), card())
    with pytest.raises(WeightsError, match="entry 'x' is not a named tensor"):
        save_weights(tmp_path / "x.safetensors", {"x": 3}, card())


def test_float16_storage_round_trip(tmp_path):
    state = small_state()
    full = save_weights(tmp_path / "full.safetensors", state, card())
    half = save_weights(tmp_path / "half.safetensors", state, card(), half=True)
    assert half.stat().st_size < full.stat().st_size
    stored, got = load_weights(half)
    assert stored["enc.conv.weight"].dtype == torch.float16
    assert stored["dec.big"].dtype == torch.float32  # kept: it would overflow in float16
    assert stored["enc.bn.num_batches_tracked"].dtype == torch.int64
    assert got.tensors_sha256 == state_dict_sha256(stored)
    as32, _ = load_weights(half, to_float32=True)
    assert as32["enc.conv.weight"].dtype == torch.float32
    assert torch.equal(as32["enc.conv.weight"], state["enc.conv.weight"].half().float())
    torch.testing.assert_close(as32["enc.conv.weight"], state["enc.conv.weight"], rtol=1e-3, atol=1e-3)
    assert torch.equal(as32["dec.mask"], state["dec.mask"])


def test_card_fields_and_metadata(tmp_path):
    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        embedded = json.loads(handle.metadata()[CARD_METADATA_KEY])
    assert embedded == json.loads(card_path_for(path).read_text(encoding="utf-8"))
    assert read_card(path).architecture == "infarctsam-litemedsam"
    assert ModelCard(name="a", architecture="b", image_size=512, licence="x").created[:2] == "20"
    with pytest.raises(ValueError, match="ISO 8601"):
        card(created="31/01/2025")
    with pytest.raises(ValueError, match="Extra inputs"):
        card(colour="red")


def _with_header(path, header: object, data: bytes, claimed: int | None = None) -> None:
    text = json.dumps(header).encode("utf-8") if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(text) if claimed is None else claimed) + text + data)


def _hostile(kind: str, path) -> None:
    """Rewrite a valid weights file at ``path`` into one hostile class of header."""
    raw = path.read_bytes()
    start = data_offset(path)
    header, data = json.loads(raw[8:start]), raw[start:]
    name = next(k for k in header if k != "__metadata__")
    if kind == "length_2_63":
        _with_header(path, header, data, claimed=2**63)
    elif kind == "length_beyond_file":
        _with_header(path, header, data, claimed=len(raw))
    elif kind == "header_over_16_mib":
        with path.open("wb") as fh:
            fh.write(struct.pack("<Q", 20 << 20))
            fh.truncate(24 << 20)  # sparse: the file is large enough, the claimed header is not sane
    elif kind == "offsets_outside_file":
        header[name]["data_offsets"] = [0, 10**15]
        _with_header(path, header, data)
    elif kind == "shape_lies_about_range":
        header[name]["shape"] = [100000, 100000, 100000]
        _with_header(path, header, data)
    elif kind == "overlapping_ranges":
        other = next(k for k in header if k not in ("__metadata__", name))
        header[other]["data_offsets"], header[other]["shape"] = header[name]["data_offsets"], header[name]["shape"]
        header[other]["dtype"] = header[name]["dtype"]
        _with_header(path, header, data)
    elif kind == "unknown_dtype":
        header[name]["dtype"] = "F1024"
        _with_header(path, header, data)
    elif kind == "header_not_object":
        _with_header(path, [1, 2, 3], data)
    elif kind == "header_nested_deeply":
        _with_header(path, b"[" * 100_000 + b"]" * 100_000, data)
    elif kind == "metadata_not_strings":
        header["__metadata__"] = {CARD_METADATA_KEY: {"name": "<script>"}}
        _with_header(path, header, data)


HOSTILE_HEADERS = ["length_2_63", "length_beyond_file", "header_over_16_mib", "offsets_outside_file",
                   "shape_lies_about_range", "overlapping_ranges", "unknown_dtype", "header_not_object",
                   "header_nested_deeply", "metadata_not_strings"]


@pytest.mark.parametrize("kind", HOSTILE_HEADERS)
def test_huge_or_lying_safetensors_header_is_refused_in_one_line(tmp_path, kind):
    from typer.testing import CliRunner

    from infarctsam.cli import app
    from infarctsam.model.weights_format import load_weights_numpy

    path = save_weights(tmp_path / "toy.safetensors", small_state(), card())
    card_path_for(path).unlink()
    _hostile(kind, path)
    for loader in (read_card, load_weights, load_weights_numpy):
        with pytest.raises(WeightsError, match="toy.safetensors is corrupt or truncated: ") as info:
            loader(path)
        assert "\n" not in str(info.value)
    res = CliRunner().invoke(app, ["weights", "inspect", str(path)])
    err = res.stderr.strip()
    assert res.exit_code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, (kind, res.output)
    assert "Traceback" not in res.output
