"""One result per scan on any hardware: the compiled (OpenVINO) and PyTorch CPU paths give identical masks on real
cases; CUDA runs exact float32 (no TF32) and equals the CPU; the JSON says what ran."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic_cases import real_slab

# A real scan, cut to six slices through the bundled case's lesion: the PyTorch reference takes about 1.5 s a slice
# on 2 cores, so whole cases (the bundled one and those of ../shared) are compared by
# `python benchmarks/same_result.py`, whose figures are in docs/cache.md.
SLAB = (37, 43)


@pytest.fixture(scope="module")
def real_case(tmp_path_factory):
    """The preprocessed real slab."""
    from infarctsam.io.dwi import load_adc, load_dwi
    from infarctsam.preprocess import preprocess

    dwi, adc, _ = real_slab(tmp_path_factory.mktemp("slab"), *SLAB)
    dwi_vol, _ = load_dwi(dwi)
    return preprocess(dwi_vol, load_adc(adc, dwi_vol))


@pytest.fixture(scope="module")
def default_engines():
    """The default model's engine (CPU, fp32), compiled runtime first; the session's model cache (a temporary
    folder, see conftest.py) is shared with the other tests of the default model."""
    pytest.importorskip("openvino", reason="the openvino runtime is a core dependency; this install lacks it")
    from infarctsam.engines.sam import SamEngine

    engine = SamEngine.from_weights(None, precision="fp32")
    assert engine.predictor.runtime == "openvino"
    return engine


def _mask(engine, prob, pre) -> np.ndarray:
    from infarctsam.postprocess import binarize

    return binarize(prob, pre.brain, engine.threshold, engine.min_lesion_ml, pre.voxel_ml)


def test_compiled_and_pytorch_give_identical_masks_on_a_real_scan(default_engines, real_case):
    engine = default_engines
    fast = engine.predict(real_case)
    engine.set_runtime("torch", "auto")  # the same engine, the network in PyTorch
    assert engine.predictor.runtime == "torch"
    slow = engine.predict(real_case)
    assert np.abs(fast - slow).max() < 1e-4
    mask = _mask(engine, slow, real_case)
    np.testing.assert_array_equal(_mask(engine, fast, real_case), mask)
    assert mask.sum() > 0  # not two empty masks


def test_exact_cuda_settings_are_set_in_one_call():
    """What the engine calls when built for CUDA (checked on any machine: the flags exist without a GPU)."""
    import torch

    from infarctsam.runtime.determinism import exact_cuda

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("medium")
        assert exact_cuda() == {"tf32": False, "deterministic": True}
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3:5]
        torch.use_deterministic_algorithms(saved[5], warn_only=saved[6])


def test_json_records_device_runtime_precision_and_libraries(tmp_path, tiny_weights):
    import json

    from infarctsam.api import segment
    from infarctsam.runtime.determinism import LIBRARIES

    pytest.importorskip("openvino")
    dwi, _, _ = real_slab(tmp_path / "in", 38, 41)
    result = segment(dwi, tmp_path / "out", engine="sam", weights=tiny_weights, qc=False, location=False)
    summary = json.loads((tmp_path / "out" / f"{result.case_id}.json").read_text(encoding="utf-8"))
    config = summary["engine_config"]
    assert config["device"] == "cpu" and config["runtime"] == "openvino" and config["precision"] == "fp32"
    assert set(config["libraries"]) == set(LIBRARIES)
    assert config["libraries"]["numpy"] == np.__version__ and config["libraries"]["openvino"]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(),
                    reason="needs a CUDA GPU: CUDA against CPU is checked on a machine with one")
def test_cuda_equals_cpu(default_engines, real_case):
    """Probabilities within 1e-4 and identical masks: TF32 would move small lesions (0.57 against 0.60 mL)."""
    from infarctsam.engines.sam import SamEngine

    reference = default_engines
    reference.set_runtime("torch", "auto")  # PyTorch on the CPU, as on the GPU
    gpu = SamEngine.from_weights(None, device="cuda", cache_dir=None, precision="fp32")
    assert gpu.info.config["device"] == "cuda" and gpu.info.config["tf32"] is False
    on_gpu, on_cpu = gpu.predict(real_case), reference.predict(real_case)
    assert np.abs(on_gpu - on_cpu).max() < 1e-4
    np.testing.assert_array_equal(_mask(gpu, on_gpu, real_case), _mask(reference, on_cpu, real_case))
