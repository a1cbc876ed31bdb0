"""Blobs placed in known arterial territories of the template come back in those territories after the head is
rotated (up to 30 degrees), shifted, given a skull and scalp and sampled on 5 mm slices, on flipped and oblique grids;
left and right are never swapped. A 4-slice slab is an unreliable location, not a guess."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_head import make_head, territory_points

# level-1 label -> expected level-2 territory: ten positions, both sides, anterior and posterior circulation
TARGETS = {7: "MCAL", 8: "MCAR", 1: "ACAL", 2: "ACAR", 19: "PCAL", 20: "PCAR", 11: "MCAL", 10: "MCAR",
           29: "VBL", 30: "VBR"}
POSES = {
    "yaw30-flipped": dict(rot_deg=(0, 0, 30), shift_mm=(8, -6, 4), flip_x=True),
    "pitch20-roll10-oblique": dict(rot_deg=(20, 10, -8), shift_mm=(-5, 10, -8), oblique_deg=15),
    "roll25": dict(rot_deg=(0, 25, 12), shift_mm=(0, 0, 12)),
}


def _preprocessed(dwi, affine):
    from infarctsam.io.volume import Volume
    from infarctsam.preprocess import preprocess

    pre = preprocess(Volume(dwi, affine), None)
    return pre


@pytest.mark.parametrize("pose", sorted(POSES))
def test_blobs_land_in_their_territory(pose):
    from infarctsam.location import locate
    from infarctsam.location.register import register_to_mni

    points = territory_points(TARGETS)
    dwi, affine, masks = make_head(**POSES[pose], blobs=[points[k] for k in TARGETS], seed=len(pose))
    pre = _preprocessed(dwi, affine)
    reg = register_to_mni(pre.dwi, pre.brain, pre.affine)
    assert reg.reliable, reg.warnings
    for (lab, want), mask in zip(TARGETS.items(), masks, strict=True):
        assert mask.sum() > 3
        report = locate(pre.reorient.to_canonical(mask.astype(np.uint8)), pre.dwi, pre.brain, pre.affine,
                        registration=reg)
        assert report["reliable"]
        assert report["dominant"]["territory"] == want, (pose, lab, report["summary"], report["level2"])
        side = "left" if want.endswith("L") else "right"
        other = "right" if side == "left" else "left"
        assert report["side"][side]["share"] > 0.9 and report["side"][other]["share"] < 0.1, (pose, lab)


def test_slab_is_unreliable_with_a_warning():
    from infarctsam.location.case import case_location

    dwi, affine, masks = make_head(rot_deg=(0, 0, 10), n_slices=4, blobs=[territory_points([7])[7]])
    pre = _preprocessed(dwi, affine)
    from pathlib import Path

    loc = case_location(pre, pre.reorient.to_canonical(masks[0].astype(np.uint8)), Path("x_qc.png"))
    assert loc.report["reliable"] is False
    assert loc.warnings and all("unreliable" in w for w in loc.warnings)
    assert "unreliable" in loc.line and "MCA" not in loc.line
    assert all(loc.report[k] is None for k in ("dominant", "level2", "level1", "circulation", "side", "regions"))
    assert loc.files == {}  # no picture of a mapping that was never fitted


def test_implausible_mapping_is_flagged():
    """A mapping with an absurd scale is refused by the checks even when the optimiser 'succeeded'."""
    from infarctsam.location.register import _checked
    from infarctsam.location.template import registration_template

    tpl = registration_template()
    brain = tpl.brain.copy()
    squash = np.diag([2.0, 2.0, 2.0, 1.0])
    reg = _checked(squash, brain, tpl.affine, tpl, 0.0)
    assert not reg.reliable and any("scale" in w for w in reg.warnings)
    same = _checked(np.eye(4), brain, tpl.affine, tpl, 0.0)
    assert same.reliable and same.brain_overlap == pytest.approx(1.0)


def test_brain_overlap_samples_the_template_at_every_scan_voxel_centre():
    """The separable grid evaluation equals mapping each voxel centre on its own (world, MNI, template voxel)."""
    from infarctsam.location.register import brain_overlap

    rng = np.random.default_rng(3)
    brain = rng.random((9, 11, 6)) > 0.4
    affine = np.array([[-2.0, 0.1, 0.0, 10.0], [0.0, 2.2, 0.3, -12.0], [0.0, 0.0, 4.0, -5.0], [0, 0, 0, 1]])
    to_mni = np.eye(4)
    to_mni[:3, :3] += rng.normal(scale=0.05, size=(3, 3))
    to_mni[:3, 3] = [1.5, -2.0, 3.0]
    tpl_brain = rng.random((8, 9, 7)) > 0.5
    tpl_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    tpl_affine[:3, 3] = [-10.0, -14.0, -12.0]
    mapped = np.zeros_like(brain)
    for i, j, k in np.ndindex(brain.shape):
        mni = to_mni @ affine @ np.array([i, j, k, 1.0])
        v = np.rint(np.linalg.solve(tpl_affine, mni)[:3]).astype(int)
        if np.all(v >= 0) and np.all(v < tpl_brain.shape):
            mapped[i, j, k] = tpl_brain[tuple(v)]
    expected = 2 * (brain & mapped).sum() / (brain.sum() + mapped.sum())
    assert 0.05 < expected < 0.95  # partly inside, partly outside the template's grid
    assert brain_overlap(brain, affine, to_mni, tpl_brain, tpl_affine) == pytest.approx(expected, abs=1e-12)


def test_prefetch_loads_the_template_and_atlas_once_in_the_background():
    from infarctsam.location import prefetch
    from infarctsam.location.atlas import load_atlas
    from infarctsam.location.template import registration_template

    prefetch.start()
    first = prefetch._thread
    prefetch.start()  # once per process
    assert prefetch._thread is first and first is not None
    prefetch.wait()
    assert not first.is_alive()
    assert registration_template.cache_info().currsize == 1 and load_atlas.cache_info().currsize == 1
