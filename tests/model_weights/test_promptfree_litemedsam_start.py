"""Before training, the prompt-free model started from LiteMedSAM behaves exactly as single-slice LiteMedSAM."""

from __future__ import annotations

import torch

from infarctsam.model.build import build_model
from infarctsam.model.config import ModelConfig


def test_litemedsam_start_equals_the_reference_model(vendored_litemedsam, litemedsam_state):
    reference = vendored_litemedsam.build_lite_medsam()
    state = {f"{part}.{k}": v for part, tensors in litemedsam_state.items() for k, v in tensors.items()}
    reference.load_state_dict(state, strict=True)
    reference.eval()
    model, info = build_model(ModelConfig(image_size=256), "litemedsam")
    assert info["tensors_loaded"] == 435 and info["sha256"].startswith("79d8c9dc")
    torch.manual_seed(0)
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        expected = reference(image, [[0.0, 0.0, 255.0, 255.0]])  # MedSAM with a whole-image box
        ours = model(image)  # no prompt at all: learned tokens start from that box, memory gate closed
    assert ours.shape == expected.shape == (1, 1, 256, 256)
    rel = float((ours - expected).abs().max() / expected.abs().max())
    assert rel < 1e-4, rel
