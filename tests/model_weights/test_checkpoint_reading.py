"""Safe reading of foreign PyTorch checkpoints and state-dict comparison."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from infarctsam.errors import WeightsError
from infarctsam.model.checkpoint import compare_state_dict, read_torch_checkpoint


class CreatesMarker:
    """Unpickling this object calls ``open(marker, "w")``: arbitrary code from a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": CreatesMarker(marker)}, bad)
    with pytest.raises(WeightsError) as info:
        read_torch_checkpoint(bad)
    assert "evil.pt" in one_line(info) and "refused" in str(info.value)
    assert not marker.exists()
    # the payload is real: an unrestricted load does run it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(bad, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("wrapper", ["plain", "model", "state_dict", "ddp"])
def test_wrappers_and_ddp_prefix_are_removed(tmp_path, wrapper):
    sd = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.ones(2)}
    obj = {
        "plain": sd,
        "model": {"model": sd, "epoch": 3, "optimizer": {"lr": 1e-3}},
        "state_dict": {"state_dict": sd},
        "ddp": {f"module.{k}": v for k, v in sd.items()},
    }[wrapper]
    path = tmp_path / "ck.pth"
    torch.save(obj, path)
    got = read_torch_checkpoint(path)
    assert sorted(got) == ["a.bias", "a.weight"]
    assert torch.equal(got["a.weight"], sd["a.weight"])


def test_partial_module_prefix_is_kept(tmp_path):
    path = tmp_path / "ck.pt"
    torch.save({"module.a": torch.zeros(1), "b": torch.zeros(1)}, path)
    assert sorted(read_torch_checkpoint(path)) == ["b", "module.a"]


def test_unreadable_files_give_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(1000)}, good)
    cases = {
        "missing.pt": ("does not exist", None),
        "empty.pt": ("is empty", b""),
        "truncated.pt": ("truncated or corrupt", good.read_bytes()[: good.stat().st_size // 2]),
        "text.pt": ("not a PyTorch checkpoint", b"this is not a checkpoint\n"),
    }
    for name, (reason, content) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(WeightsError) as info:
            read_torch_checkpoint(path)
        assert name in one_line(info) and reason in str(info.value), str(info.value)
    with pytest.raises(WeightsError, match="is not a file"):
        read_torch_checkpoint(tmp_path)


def test_non_state_dicts_are_refused(tmp_path):
    for name, obj, reason in [
        ("int.pt", {"w": torch.zeros(1), "step": 7}, "entry 'step' is a int, not a tensor"),
        ("list.pt", [torch.zeros(1)], "holds a list, not a state dict"),
        ("emptydict.pt", {}, "holds an empty state dict"),
        ("intkey.pt", {3: torch.zeros(1)}, "non-string key 3"),
    ]:
        path = tmp_path / name
        torch.save(obj, path)
        with pytest.raises(WeightsError) as info:
            read_torch_checkpoint(path)
        assert name in one_line(info) and reason in str(info.value), str(info.value)


def test_compare_state_dict_report():
    expected = {"a": torch.Size([2, 3]), "b": (4,), "c": [1], "d": ()}
    got = {"a": torch.zeros(2, 3), "b": torch.zeros(5), "d": torch.zeros(()), "e": torch.zeros(1)}
    report = compare_state_dict(expected, got)
    assert report.matched == 2
    assert report.missing == ["c"]
    assert report.unexpected == ["e"]
    assert report.mismatched == [("b", (4,), (5,))]
    assert not report.ok
    text = report.summary()
    assert "\n" not in text
    assert "2 of 4 expected tensors match" in text
    assert "1 missing (c)" in text and "1 unexpected (e)" in text and "b: expected [4], got [5]" in text
    good = compare_state_dict(expected, {k: torch.zeros(v) for k, v in expected.items()})
    assert good.ok and good.score() == 1.0 and "all 4 tensors" in good.summary()


def test_summary_lists_only_the_first_problems():
    expected = {f"k{i:02d}": (1,) for i in range(10)}
    report = compare_state_dict(expected, {})
    assert report.summary(limit=3).endswith("10 missing (k00, k01, k02, ... (7 more))")
