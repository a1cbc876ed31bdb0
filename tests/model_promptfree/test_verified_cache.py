"""Verified model cache: a flipped byte in any kind of entry changes no result (one warning, replaced, or used from
memory in a read-only cache); writers starting at once on an empty folder; ``infarctsam cache`` lists and prunes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from infarctsam.io.volume import Volume
from infarctsam.model.config import ModelConfig
from infarctsam.preprocess import preprocess
from infarctsam.runtime import cache_entries

from synthetic_cases import copy_entries, head_phantom

pytest.importorskip("openvino", reason="the openvino runtime is a core dependency; this install lacks it")

TINY = ModelConfig(image_size=32)
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def _threads_of_the_compiled_engine():
    """OpenVINO's thread count changes the last bit of some sums: the network rebuilt after a damaged entry runs with
    PyTorch's thread count, the engine loaded from the compiled parts with the CPUs it may use, so the two are made
    the same here (an earlier test in the same process may have changed PyTorch's)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _fresh_warnings():
    cache_entries._WARNED.clear()
    yield
    cache_entries._WARNED.clear()


@pytest.fixture(scope="module")
def tiny(tiny_net, compiled_cache, tmp_path_factory):
    """The session's tiny weights, a cache of their own holding their entries (copied from the session's cache,
    where they were exported and compiled once), a case and the expected probability."""
    from infarctsam.engines.sam import SamEngine

    sp = (3.0, 2.5, 3.0)  # 36 mm: 18 slices of the 2-mm model grid
    dwi, _, _, _ = head_phantom(shape=(30, 34, 12), spacing=sp, scalp=False)
    pre = preprocess(Volume(dwi, np.diag([-sp[0], sp[1], sp[2], 1.0])))
    cache = copy_entries(compiled_cache, tiny_net.key, tmp_path_factory.mktemp("verified") / "cache")
    expected = SamEngine.from_weights(tiny_net.weights, cache_dir=cache, precision="fp32").predict(pre)
    assert expected.max() > 0.01
    return tiny_net.weights, cache, pre, expected


def _entries(cache: Path) -> dict[str, list[Path]]:
    return {"export": sorted(cache.glob("ov-*-b*.onnx")), "constants": sorted(cache.glob("ov-constants-*.npz")),
            "blob": sorted((cache / "openvino").glob("*.blob"))}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: model cache entry")]


def test_every_entry_carries_its_sha256(tiny):
    _, cache, _, _ = tiny
    entries = _entries(cache)
    assert all(len(v) >= 1 for v in entries.values()), entries
    for path in [p for paths in entries.values() for p in paths]:
        data, state = cache_entries.check_entry(path)
        assert state == "ok" and data is not None, path


@pytest.mark.parametrize("kind", ["export", "constants", "blob"])
def test_a_flipped_byte_changes_no_result_and_warns_once(tiny, tmp_path, capfd, kind):
    """The engine loads from the compiled cache: a damaged blob or constants file is detected there; a damaged
    export is read when its blob is not there (another CPU or OpenVINO release), so the blobs are removed for it."""
    from infarctsam.engines.sam import SamEngine

    weights, cache, pre, expected = tiny
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    if kind == "export":
        shutil.rmtree(copy / "openvino")
    target = _entries(copy)[kind][0]
    _flip(target)
    capfd.readouterr()
    engine = SamEngine.from_weights(weights, cache_dir=copy, precision="fp32")
    np.testing.assert_array_equal(engine.predict(pre), expected)
    lines = _warnings(capfd.readouterr().err)
    assert len(lines) == 1 and target.name in lines[0], lines
    assert cache_entries.check_entry(target)[1] == "ok"  # replaced by a verified entry
    cache_entries._WARNED.clear()
    SamEngine.from_weights(weights, cache_dir=copy, precision="fp32").predict(pre)
    assert not _warnings(capfd.readouterr().err)  # the next process finds it whole


def test_a_flipped_byte_in_the_encoder_export(tiny_net, tmp_path, capfd):
    """The ONNX Runtime encoder export (``tinyvit-*.onnx``) is verified too."""
    pytest.importorskip("onnxruntime")
    from infarctsam.runtime import export_cache
    from infarctsam.runtime.onnx_trunk import OnnxTrunk

    trunk = tiny_net.model.sam.image_encoder.trunk
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = OnnxTrunk(trunk, 32, cache_dir=export_cache.DEFAULT_CACHE)(images)  # exported once for the run
    name = f"tinyvit-{export_cache.weights_key(trunk, 32, False)}.onnx"
    for suffix in ("", ".sha256"):  # a copy of it to damage
        shutil.copy2(export_cache.DEFAULT_CACHE / (name + suffix), tmp_path / (name + suffix))
    target = tmp_path / name
    _flip(target)
    capfd.readouterr()
    np.testing.assert_array_equal(OnnxTrunk(trunk, 32, cache_dir=tmp_path)(images), expected)
    lines = _warnings(capfd.readouterr().err)
    assert len(lines) == 1 and target.name in lines[0]
    assert cache_entries.check_entry(target)[1] == "ok"


def test_a_read_only_cache_is_used_and_a_damaged_entry_kept_in_memory(tiny, tmp_path, capfd, monkeypatch):
    """Nothing can be written (a read-only shared folder; simulated, as the tests may run as root): a whole cache
    is used as it is, a damaged entry is made again in memory with one warning and left untouched."""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.runtime.openvino_parts import CompiledPredictor

    def refuse(path, data):
        raise PermissionError(13, "Read-only file system")

    weights, cache, pre, expected = tiny
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    monkeypatch.setattr(cache_entries, "_write_tmp", refuse)
    capfd.readouterr()
    whole = SamEngine.from_weights(weights, cache_dir=copy, precision="fp32")
    assert isinstance(whole.predictor, CompiledPredictor)
    np.testing.assert_array_equal(whole.predict(pre), expected)
    assert not _warnings(capfd.readouterr().err)
    for kind in ("blob", "constants"):
        target = _entries(copy)[kind][-1]
        whole_bytes = target.read_bytes()
        _flip(target)
        damaged = target.read_bytes()
        engine = SamEngine.from_weights(weights, cache_dir=copy, precision="fp32")
        np.testing.assert_array_equal(engine.predict(pre), expected)
        lines = _warnings(capfd.readouterr().err)
        assert len(lines) == 1 and target.name in lines[0], lines
        assert target.read_bytes() == damaged  # nothing written
        target.write_bytes(whole_bytes)  # one damaged entry at a time
        cache_entries._WARNED.clear()


def test_writers_starting_at_once_on_an_empty_cache(tmp_path):
    """Eight processes fill the same entry at once, each with its own bytes (a non-deterministic export): each
    gets verified bytes, no warning, and one whole entry is left."""
    script = textwrap.dedent("""
        import os, sys, time
        from pathlib import Path
        from infarctsam.runtime.cache_entries import cached_bytes
        path = Path(sys.argv[1]) / "ov-step-b2-v9-0123.onnx"
        while time.time() < float(sys.argv[2]):
            time.sleep(0.005)
        def produce():
            time.sleep(0.05)
            return (str(os.getpid()) * 50000).encode()
        data, stored = cached_bytes(path, produce)
        print(len(data), stored)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    import time

    start = str(time.time() + 1.5)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(8)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert not any("warning" in err for _, err in outs)
    entry = tmp_path / "ov-step-b2-v9-0123.onnx"
    assert cache_entries.check_entry(entry)[1] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name, entry.name + ".sha256"]  # no temporary left


def test_cache_command_lists_and_prunes(tiny, tmp_path):
    from typer.testing import CliRunner

    from infarctsam.cli import app

    _, cache, _, _ = tiny
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    old = copy / "ov-encoder-b4-v1-abc123.onnx"
    old.write_bytes(b"old graphs")
    (copy / "openvino" / "fp32").mkdir()
    legacy = copy / "openvino" / "fp32" / "123456.blob"
    legacy.write_bytes(b"OpenVINO's own cache of an earlier release")
    orphan = copy / "ov-single-b8-v6-ffff.onnx.sha256"
    orphan.write_text("0" * 64)
    foreign = copy / "notes.txt"
    foreign.write_text("mine")
    _flip(_entries(copy)["constants"][0])
    runner = CliRunner()
    listed = runner.invoke(app, ["cache", "--cache-dir", str(copy)])
    assert listed.exit_code == 0, listed.output
    assert "old version" in listed.output and "damaged" in listed.output and "foreign" in listed.output
    assert "current" in listed.output and "4 prunable" in listed.output
    pruned = runner.invoke(app, ["cache", "--cache-dir", str(copy), "--prune"])
    assert pruned.exit_code == 0, pruned.output
    assert not old.exists() and not legacy.exists() and not orphan.exists() and foreign.exists()
    assert not (copy / "openvino" / "fp32").exists()
    assert not list(copy.glob("ov-constants-*"))  # the damaged entry and its sidecar
    assert len(_entries(copy)["blob"]) == len(_entries(cache)["blob"])  # current entries kept
    again = runner.invoke(app, ["cache", "--cache-dir", str(copy)])
    assert "0 prunable" in again.output


def test_export_lock_makes_a_second_exporter_wait(tmp_path):
    """Processes on a cold cache export a model once: a second holder of the same key waits (here: gives up after
    its wait and goes on unlocked); without a usable cache folder there is no lock and no failure."""
    import threading

    from infarctsam.runtime.cache_listing import list_entries

    seen = []

    def second():
        with cache_entries.export_lock(tmp_path, "k1", wait_s=0.5) as got:
            seen.append(got)

    with cache_entries.export_lock(tmp_path, "k1") as first:
        assert first
        worker = threading.Thread(target=second)
        worker.start()
        worker.join()
        with cache_entries.export_lock(tmp_path, "k2", wait_s=0.5) as other:
            assert other  # another model's lock is free
    assert seen == [False]
    with cache_entries.export_lock(tmp_path, "k1", wait_s=0.5) as again:
        assert again  # released
    with cache_entries.export_lock(None, "k1") as none:
        assert not none
    (tmp_path / "file").write_text("x")
    with cache_entries.export_lock(tmp_path / "file", "k1", wait_s=0.1) as blocked:  # no folder can be made there
        assert not blocked
    assert (tmp_path / "locks" / "k1.lock").is_file()
    listed = list_entries(tmp_path, 6)
    assert [e.path.name for e in listed] == ["file"]  # a foreign file is listed, the locks are not entries
