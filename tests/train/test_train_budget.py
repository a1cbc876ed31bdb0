"""What makes training fit a 2-core CPU: a case store shared by runs, cases made in worker processes, phantom
changes per source (embolic showers), and bfloat16 steps where the CPU has native bfloat16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from infarctsam.errors import ConfigError
from infarctsam.train.config import DataSource, TrainConfig
from infarctsam.train.precision import cpu_has_native_bf16, resolve_precision

TINY_MODEL = {"image_size": 32, "memory_attention_ffn": 128}


def _cfg(tmp_path, sources, **changes) -> TrainConfig:
    fields = {"name": "t", "output": str(tmp_path / "run"), "seed": 3, "start": "random", "model": TINY_MODEL,
              "data": sources, "val_fraction": 0.0, "case_cache": str(tmp_path / "store"), "threads": 1}
    return TrainConfig(**{**fields, **changes})


def _build(cfg: TrainConfig, name: str):
    from infarctsam.model.build import build_model
    from infarctsam.train.cache import build_cache
    from infarctsam.train.data import CaseLoader, collect_cases

    torch.manual_seed(cfg.seed)  # the same random network as every other run of this seed (as the trainer does)
    model, _ = build_model(cfg.model, None)
    specs = collect_cases(cfg)
    return build_cache(Path(cfg.output) / name, specs, cfg, model, True, False, CaseLoader(cfg, None), progress=False)


def test_runs_sharing_a_store_make_each_common_case_once(tmp_path, monkeypatch):
    """A second run (another leave-one-out fold) with one more source makes only that source's case; the common
    cases come from the store byte for byte, in two worker processes or in one."""
    from infarctsam.train import cache as cache_mod

    synth = {"kind": "synth", "n": 2, "preset": "clinical"}
    first = _cfg(tmp_path, [synth], cache_workers=2)
    a = _build(first, "a")
    stored = sorted((tmp_path / "store").glob("*.npz"))
    assert len(stored) == 2 and len(a.cases) == 2

    made = []
    real = cache_mod.make_case

    def counting(cfg, spec, copy, augment, keep_all, loader):
        made.append(spec.case_id)
        return real(cfg, spec, copy, augment, keep_all, loader)

    monkeypatch.setattr(cache_mod, "make_case", counting)
    other = {"kind": "synth", "n": 1, "preset": "clinical", "seed_offset": 9}
    second = _cfg(tmp_path, [synth, other], output=str(tmp_path / "run2"))
    b = _build(second, "b")
    assert made == ["s1-00000"]  # only the new source's case was made
    assert len(b.cases) == 3
    np.testing.assert_array_equal(np.asarray(b.feats[: len(a)]), np.asarray(a.feats))
    np.testing.assert_array_equal(np.asarray(b.images[: len(a)]), np.asarray(a.images))

    # the same case made in this process equals the one the worker processes made
    for f in stored:
        f.unlink()
    made.clear()
    c = _build(_cfg(tmp_path, [synth], output=str(tmp_path / "run3")), "c")
    assert len(made) == 2
    np.testing.assert_array_equal(np.asarray(c.images), np.asarray(a.images))
    np.testing.assert_allclose(np.asarray(c.feats, np.float32), np.asarray(a.feats, np.float32), atol=1e-2)


def test_case_key_ignores_the_run_but_not_the_case(tmp_path):
    from infarctsam.train.cache import case_key
    from infarctsam.train.data import collect_cases

    synth = {"kind": "synth", "n": 2, "preset": "isles"}
    cfg = _cfg(tmp_path, [synth])
    spec = collect_cases(cfg)[0]
    key = case_key(cfg, spec, 0, True, False)
    assert case_key(cfg.model_copy(update={"name": "other", "output": "elsewhere"}), spec, 0, True, False) == key
    assert case_key(cfg, spec, 1, True, False) != key  # another augmented copy
    assert case_key(cfg, spec, 0, False, True) != key  # validation slices
    changed = _cfg(tmp_path, [{**synth, "phantom": {"p_shower": 1.0}}])
    assert case_key(changed, collect_cases(changed)[0], 0, True, False) != key


def test_phantom_changes_reach_the_phantoms():
    from infarctsam.synth import LesionLibrary
    from infarctsam.synth.phantom import choose_lesions

    src = DataSource(kind="synth", n=1, preset="isles",
                     phantom={"p_shower": 1.0, "shower_size": [6, 6], "shower_volume_ml": [0.01, 0.5],
                              "p_empty": 0.0})
    cfg = src.phantom_config()
    assert cfg.shape == (112, 112, 73) and cfg.shower_size == (6, 6)  # the preset with the changes
    lib = LesionLibrary.bundled()
    for seed in range(3):
        lesions = choose_lesions(np.random.default_rng(seed), cfg, lib)
        assert len(lesions) == 6
        assert all(0.01 <= sample.volume_ml <= 0.5 for sample, _ in lesions)


@pytest.mark.parametrize("phantom, needle", [({"no_such_field": 1}, "unknown field 'no_such_field'"),
                                             ({"shower_volume_ml": [0.5, 0.1]}, "shower_volume_ml range is empty"),
                                             ({"p_shower": 2}, "p_shower must be a probability")])
def test_bad_phantom_changes_are_one_line_errors(tmp_path, phantom, needle):
    from infarctsam.train.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": [{"kind": "synth", "n": 1, "phantom": phantom}]}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_phantom_changes_are_refused_for_datasets():
    with pytest.raises(ValueError, match="synth sources only"):
        DataSource(kind="dataset", path="x", phantom={"p_shower": 1.0})


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n", encoding="utf-8")
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n", encoding="utf-8")
    avx512bf16 = tmp_path / "zen4"
    avx512bf16.write_text("flags\t\t: avx512f avx512_bf16 avx512_vnni\n", encoding="utf-8")
    assert cpu_has_native_bf16(amx) and cpu_has_native_bf16(avx512bf16)
    assert not cpu_has_native_bf16(avx2) and not cpu_has_native_bf16(tmp_path / "missing")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_openvino_bf16_trunk_agrees_with_the_float32_trunk():
    """The cache encoder of bfloat16 runs: OpenVINO's bfloat16 trunk stays within a few percent of PyTorch's float32
    features (on a CPU without bfloat16, OpenVINO computes in float32 and agrees to rounding)."""
    from infarctsam.model.build import build_model
    from infarctsam.model.config import ModelConfig
    from infarctsam.train.cache import OpenVinoTrunk, encoder_features

    model, _ = build_model(ModelConfig(**TINY_MODEL), None)
    images = np.random.default_rng(0).random((5, 3, 32, 32)).astype(np.float16)
    ref = encoder_features(model, images, pre_neck=True).astype(np.float32)
    trunk = OpenVinoTrunk(model.sam.image_encoder.trunk, 32, pre_neck=True, threads=1)
    got = encoder_features(model, images, pre_neck=True, onnx=trunk).astype(np.float32)
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() / np.abs(ref).mean() < 0.05
