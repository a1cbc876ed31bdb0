"""The physics fusion head: logistic fit, features, the ADC path, storage in the weights file and the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infarctsam.errors import WeightsError
from infarctsam.model.fusion import FEATURES_DWI_ONLY, FEATURES_WITH_ADC, FusionHead, fusion_features
from infarctsam.train.fusion_fit import FusionCase, fit_fusion, fit_logistic

from synthetic_cases import head_phantom

SP = (3.0, 3.0, 6.0)


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60000, 2))
    beta = np.array([1.5, -2.0, 0.5])  # two slopes, intercept last
    p = 1 / (1 + np.exp(-(x @ beta[:2] + beta[2])))
    y = (rng.random(p.size) < p).astype(float)
    fitted = fit_logistic(x, y, np.ones(y.size), l2=0.0)
    np.testing.assert_allclose(fitted, beta, atol=0.08)


def test_logistic_fit_with_one_feature_and_perfect_balance_gives_zero_intercept():
    # symmetric data around 0 with labels = sign: the intercept of the maximum-likelihood fit is 0 by symmetry
    x = np.r_[np.linspace(-2, -0.1, 50), np.linspace(0.1, 2, 50)][:, None]
    y = np.r_[np.zeros(50), np.ones(50)]
    y[[0, 99]] = y[[99, 0]]  # one error on each side keeps the optimum finite
    beta = fit_logistic(x, y, np.ones(100), l2=0.0)
    assert abs(beta[1]) < 1e-3 and beta[0] > 0


def shine_through_case(seed: int = 0) -> FusionCase:
    """A true infarct (DWI bright, ADC low) and a T2 shine-through region (DWI bright, ADC normal), both of which
    a DWI-only 'network' marks with the same probability."""
    dwi, adc, brain, les = head_phantom(shape=(40, 44, 16), spacing=SP, scalp=False, seed=seed)
    idx = np.indices(brain.shape)
    shine = brain & ((idx[0] - 12) ** 2 + (idx[1] - 22) ** 2 <= 9) & (np.abs(idx[2] - 8) <= 2)
    dwi[shine] = 220.0  # as bright as the infarct, ADC left normal (800)
    norm = dwi / np.median(dwi[brain])
    prob = np.where(les | shine, 0.8, 0.05).astype(np.float32)
    return FusionCase(f"c{seed}", prob, norm.astype(np.float32), brain, SP, adc, les)


def test_features_have_the_documented_columns():
    c = shine_through_case()
    with_adc = fusion_features(c.prob, c.dwi, c.brain, c.spacing, c.adc)
    dwi_only = fusion_features(c.prob, c.dwi, c.brain, c.spacing, None)
    assert with_adc.shape == (int(c.brain.sum()), len(FEATURES_WITH_ADC))
    assert dwi_only.shape == (int(c.brain.sum()), len(FEATURES_DWI_ONLY))
    np.testing.assert_allclose(with_adc[:, :5], dwi_only[:, :5], atol=1e-5)  # ADC only adds columns
    adc_low = with_adc[:, FEATURES_WITH_ADC.index("adc_low")]
    in_lesion = c.label[c.brain]
    assert adc_low[in_lesion].mean() > 1.0 and np.median(adc_low[~in_lesion]) == 0.0


def test_the_adc_path_rejects_shine_through_that_the_dwi_path_cannot_tell_apart():
    head = fit_fusion([shine_through_case(0), shine_through_case(1)], l2=1e-4)
    test = shine_through_case(2)
    idx = np.indices(test.brain.shape)
    shine = test.brain & ((idx[0] - 12) ** 2 + (idx[1] - 22) ** 2 <= 9) & (np.abs(idx[2] - 8) <= 2)
    with_adc = head.predict(test.prob, test.dwi, test.brain, SP, test.adc)
    dwi_only = head.predict(test.prob, test.dwi, test.brain, SP, None)
    assert with_adc[test.label].mean() > 0.5 and with_adc[shine].mean() < 0.2
    # without ADC, shine-through looks much like infarct: the gap between the two is far smaller
    gap_adc = with_adc[test.label].mean() - with_adc[shine].mean()
    gap_dwi = dwi_only[test.label].mean() - dwi_only[shine].mean()
    assert gap_adc > gap_dwi + 0.2, (gap_adc, gap_dwi)
    assert (with_adc[~test.brain] == 0).all()


def test_head_round_trips_through_tensors_and_checks_shapes():
    head = FusionHead(np.arange(len(FEATURES_WITH_ADC) + 1.0), np.arange(len(FEATURES_DWI_ONLY) + 1.0))
    back = FusionHead.from_tensors(head.to_tensors())
    np.testing.assert_allclose(back.with_adc, head.with_adc)
    np.testing.assert_allclose(back.dwi_only, head.dwi_only)
    with pytest.raises(ValueError, match="fusion coefficients"):
        FusionHead(np.zeros(3), np.zeros(4))


def tiny_weights(tiny_net):
    """The session's tiny random-weight network (its compiled parts are in the session's cache): (model, card, path)."""
    from infarctsam.model.weights_format import read_card

    return tiny_net.model, read_card(tiny_net.weights), tiny_net.weights


def test_weights_with_a_fusion_head_load_into_the_engine(tmp_path, tiny_net, compiled_cache):
    from infarctsam.engines.sam import SamEngine
    from infarctsam.model.weights_format import load_weights, save_weights
    from infarctsam.train.fusion_data import attach_fusion

    model, card, plain = tiny_weights(tiny_net)
    head = fit_fusion([shine_through_case(0)], l2=1e-3)
    fused = attach_fusion(plain, head, tmp_path / "fused.safetensors", {"cases": ["c0"]})
    state, new_card = load_weights(fused)  # checksum covers the fusion tensors
    assert {"fusion.with_adc", "fusion.dwi_only"} <= set(state)
    assert new_card.training["fusion"]["cases"] == ["c0"]
    # machine paths of the network's card are cut to dataset and file names in the new card
    machine = card.model_copy(update={"training": {"sources": [{"path": "/home/me/data/isles22-0003"}]},
                                      "base_weights": {"path": "/opt/venv/lib/lite_medsam.pth"}})
    plain2 = save_weights(tmp_path / "plain2.safetensors", model.state_dict(), machine)
    card2 = load_weights(attach_fusion(plain2, head, tmp_path / "fused2.safetensors", {"cases": ["c0"]}))[1]
    assert card2.training["sources"] == [{"path": "isles22-0003"}]
    assert card2.base_weights == {"path": "lib/lite_medsam.pth"}
    assert not SamEngine.from_weights(plain).uses_adc  # the engine with a head: the next test (one export fewer)
    # a fusion tensor of the wrong size is refused with a clear error
    state = {k: v for k, v in state.items()}
    state["fusion.with_adc"] = torch.zeros(3)
    bad = save_weights(tmp_path / "bad.safetensors", state, new_card)
    with pytest.raises(WeightsError, match="invalid fusion head"):
        SamEngine.from_weights(bad)


def test_fit_fusion_command_writes_weights_that_segment_uses(tmp_path, phantom_files, tiny_net, compiled_cache):
    import json

    from typer.testing import CliRunner

    from infarctsam.cli import app
    from infarctsam.engines.sam import SamEngine
    from infarctsam.io.volume import Volume
    from infarctsam.model.fusion import TENSOR_KEYS
    from infarctsam.model.weights_format import load_weights
    from infarctsam.preprocess import preprocess

    model, card, plain = tiny_weights(tiny_net)
    dwi, adc, _ = phantom_files
    runner = CliRunner()
    res = runner.invoke(app, ["fit-fusion", str(plain), "--data", str(dwi.parent), "-o",
                              str(tmp_path / "f.safetensors"), "-q"])
    assert res.exit_code == 0, res.output
    assert "fitted on 1 case(s)" in res.output
    out = tmp_path / "out"
    res = runner.invoke(app, ["segment", str(dwi), "--adc", str(adc), "--engine", "sam", "--weights",
                              str(tmp_path / "f.safetensors"), "--no-qc", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(next(out.glob("*.json")).read_text(encoding="utf-8"))
    assert summary["model_inputs"] == "DWI + ADC" and summary["engine_config"]["fusion"] is True
    assert isinstance(summary["warnings"], list)
    # the engine applies the head it read from the file to the network's probability; the network's compiled parts
    # are those of the plain weights (named after the network's tensors: a new fusion head exports nothing)
    engine = SamEngine.from_weights(tmp_path / "f.safetensors")
    assert engine._model is None and engine.weights_info["network_sha256"] == card.tensors_sha256
    assert engine.uses_adc and engine.info.config["fusion"] is True
    state, _ = load_weights(tmp_path / "f.safetensors")
    head = FusionHead.from_tensors({k: state[k].double().numpy() for k in TENSOR_KEYS})
    dwi, adc, _, _ = head_phantom(shape=(30, 34, 12), spacing=SP, scalp=False)
    aff = np.diag([*SP, 1.0])
    pre = preprocess(Volume(dwi, aff), Volume(adc, aff))
    net = engine.predictor.predict(pre)
    np.testing.assert_allclose(engine.predict(pre), head.predict(net, pre.dwi, pre.brain, pre.spacing, pre.adc),
                               atol=1e-6)
    # no labelled case: a one-line error, nothing written
    res = runner.invoke(app, ["fit-fusion", str(plain), "--data", str(tmp_path / "missing"), "-o",
                              str(tmp_path / "g.safetensors")])
    assert res.exit_code == 2 and "dataset folder not found" in res.output
    assert not (tmp_path / "g.safetensors").exists()


def test_depth_on_the_brain_box_equals_the_whole_array_transform():
    from scipy import ndimage as ndi

    from infarctsam.model.fusion import depth_mm

    rng = np.random.default_rng(3)
    shape, spacing = (30, 26, 14), (0.9, 1.1, 5.0)
    idx = np.indices(shape)
    blob = ((idx[0] - 14) / 9.0) ** 2 + ((idx[1] - 12) / 8.0) ** 2 + ((idx[2] - 7) / 5.0) ** 2 < 1
    blob &= rng.random(shape) > 0.05  # holes inside
    edge = np.zeros(shape, bool)
    edge[:12, 3:20, :] = True  # touching three sides of the array
    for brain in (blob, edge, np.zeros(shape, bool)):
        whole = ndi.distance_transform_edt(brain, sampling=spacing) if brain.any() else np.zeros(shape)
        np.testing.assert_array_equal(depth_mm(brain, spacing)[brain], whole[brain])


@pytest.mark.parametrize("with_adc", [True, False])
def test_fused_logit_prepared_before_the_network_equals_the_logistic_model_of_all_features(with_adc):
    """The engine prepares the fusion from the images alone (linear in the network's logit) and fuses the network's
    probability later; it must be the logistic model of every feature, ``sam_x_adc_low`` included."""
    c = shine_through_case(seed=2)
    rng = np.random.default_rng(1)
    head = FusionHead(with_adc=rng.normal(size=len(FEATURES_WITH_ADC) + 1),
                      dwi_only=rng.normal(size=len(FEATURES_DWI_ONLY) + 1))
    adc = c.adc if with_adc else None
    prob = np.clip(rng.random(c.brain.shape), 1e-6, 1 - 1e-6).astype(np.float32)
    feats = fusion_features(prob, c.dwi, c.brain, c.spacing, adc)
    w = head.coefficients(with_adc)
    expected = 1 / (1 + np.exp(-(feats @ w[:-1] + w[-1])))
    fused = head.linear_in_network(c.dwi, c.brain, c.spacing, adc).fuse(prob)
    np.testing.assert_allclose(fused[c.brain], expected, rtol=1e-5, atol=1e-7)
    assert not fused[~c.brain].any()
    select = head.linear_in_network(c.dwi, c.brain, c.spacing, adc).slices_reaching(0.5)(prob)
    assert select.shape == (c.brain.shape[2],)
    np.testing.assert_array_equal(select, (fused >= 0.5).any(axis=(0, 1)))
