"""make_phantom: determinism, volume bookkeeping, tissue-only lesions, contrast, geometry and units."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from infarctsam.synth import ADC_UNITS, PhantomConfig, make_phantom
from infarctsam.synth.library import MNI_AFFINE, territory_group, territory_side


def test_same_seed_gives_identical_case(fast_config):
    a = make_phantom(11, fast_config)
    b = make_phantom(11, fast_config)
    for name in ("dwi", "adc", "lesion", "brain"):
        va, vb = getattr(a, name), getattr(b, name)
        assert np.array_equal(va.data, vb.data), name
        assert np.array_equal(va.affine, vb.affine), name
    assert a.meta == b.meta


def test_different_seeds_differ(fast_config):
    a = make_phantom(11, fast_config)
    b = make_phantom(12, fast_config)
    assert a.meta["lesion_ids"] != b.meta["lesion_ids"] or not np.allclose(a.dwi.affine, b.dwi.affine)
    assert not np.array_equal(a.dwi.data, b.dwi.data)
    assert not np.array_equal(a.lesion.data, b.lesion.data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lesion_volume_is_mask_count_times_voxel_volume(fast_config, seed):
    ph = make_phantom(seed, fast_config)
    mask = ph.lesion.data
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert ph.brain.data.dtype == np.uint8
    assert mask.sum() > 0
    assert ph.meta["lesion_volume_ml"] == pytest.approx(int(mask.sum()) * ph.lesion.voxel_volume_ml, rel=1e-12)
    assert np.all(ph.brain.data[mask > 0] == 1)
    assert ph.dwi.same_grid(ph.adc) and ph.dwi.same_grid(ph.lesion) and ph.dwi.same_grid(ph.brain)
    assert ph.dwi.data.dtype == np.float32 and ph.adc.data.dtype == np.float32


def test_lesions_lie_in_tissue_before_acquisition(fast_config):
    for seed in (4, 5):
        ph = make_phantom(seed, fast_config.with_(n_lesions=(2, 3)), keep_source=True)
        src = ph.source
        assert src is not None and src.label.any()
        assert np.all(src.tissue[src.label] >= 0.5)
        assert np.all(src.csf[src.label] <= 0.5)
        # The clean 1 mm DWI is brighter in the infarct than the tissue around it.
        ring = ndi.binary_dilation(src.label, iterations=3) & ~ndi.binary_dilation(src.label) & (src.tissue > 0.9)
        assert src.dwi[src.label].mean() > src.dwi[ring].mean()


def _ring(mask: np.ndarray, brain: np.ndarray, adc_1e6: np.ndarray) -> np.ndarray:
    ring = ndi.binary_dilation(mask, iterations=3) & ~ndi.binary_dilation(mask, iterations=1)
    return ring & brain & (adc_1e6 > 400) & (adc_1e6 < 1300)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_infarct_is_bright_on_dwi_and_dark_on_adc(clean_config, seed):
    ph = make_phantom(seed, clean_config)
    les = ph.lesion.data > 0
    adc = ph.adc.data * ph.meta["adc_to_1e-6"]
    ring = _ring(les, ph.brain.data > 0, adc)
    assert les.sum() > 5 and ring.sum() > 5
    assert ph.dwi.data[les].mean() > 1.1 * ph.dwi.data[ring].mean()
    assert adc[les].mean() < 0.95 * adc[ring].mean()
    con = ph.meta["lesions"][0]
    assert 1.3 <= con["dwi_ratio"] <= 3.5 and 0.45 <= con["adc_ratio"] <= 0.7


def test_pseudonormalised_lesions_keep_bright_dwi(clean_config):
    ph = make_phantom(31, clean_config.with_(p_pseudonormal=1.0))
    con = ph.meta["lesions"][0]
    assert con["pseudonormal"] and con["adc_ratio"] >= 0.85
    les = ph.lesion.data > 0
    ring = _ring(les, ph.brain.data > 0, ph.adc.data * ph.meta["adc_to_1e-6"])
    assert ph.dwi.data[les].mean() > 1.1 * ph.dwi.data[ring].mean()


def test_random_grid_spacing_within_configured_ranges():
    cfg = PhantomConfig(fov_mm=(90.0, 110.0), coverage_mm=(60.0, 80.0), slice_gap_mm=(0.0, 1.0), p_empty=0.0)
    for seed in range(3):
        ph = make_phantom(seed, cfg)
        si, sj, sk = ph.dwi.spacing
        assert 0.9 - 1e-6 <= si <= 2.0 + 1e-6 and abs(si - sj) < 1e-6
        assert 2.0 - 1e-6 <= ph.meta["slice_thickness_mm"] <= 6.0 + 1e-6
        assert ph.meta["slice_thickness_mm"] - 1e-6 <= sk <= ph.meta["slice_thickness_mm"] + 1.0 + 1e-6
        assert ph.meta["spacing_mm"] == pytest.approx([si, sj, sk])


def test_presets_pin_the_grid():
    isles = make_phantom(5, PhantomConfig.isles_like(p_empty=0.0))
    assert isles.dwi.shape == (112, 112, 73)
    assert isles.dwi.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert isles.meta["skull_stripped"] and isles.meta["adc_unit"] == "1e-3 mm2/s"
    assert np.all(isles.dwi.data[isles.brain.data == 0][:: 7] >= 0)
    clin = make_phantom(5, PhantomConfig.clinical(p_empty=0.0))
    assert clin.dwi.shape == (256, 256, 25)
    assert clin.dwi.spacing[:2] == pytest.approx((0.9, 0.9))
    assert 5.0 - 1e-6 <= clin.dwi.spacing[2] <= 6.0 + 1e-6
    assert not clin.meta["skull_stripped"]


def test_affine_flips_and_obliquity(fast_config):
    straight = make_phantom(7, fast_config.with_(p_flip=0.0, p_swap_inplane=0.0, max_oblique_deg=0.0))
    lin = straight.dwi.affine[:3, :3]
    assert np.allclose(lin, np.diag(np.diag(lin))) and np.all(np.diag(lin) > 0)
    flipped = make_phantom(7, fast_config.with_(p_flip=1.0, p_swap_inplane=0.0))
    assert np.linalg.det(flipped.dwi.affine[:3, :3]) < 0
    cols = flipped.dwi.affine[:3, :3] / np.array(flipped.dwi.spacing)
    assert np.degrees(np.arccos(abs(cols[2, 2]))) <= 15.0 + 1e-6
    swapped = make_phantom(7, fast_config.with_(p_flip=0.0, p_swap_inplane=1.0, max_oblique_deg=0.0))
    assert abs(swapped.dwi.affine[0, 1]) > 0 and abs(swapped.dwi.affine[0, 0]) < 1e-9


@pytest.mark.parametrize("seed", [8, 9])
def test_lesion_world_position_matches_its_mni_source(fast_config, library, seed):
    cfg = fast_config.with_(n_lesions=(1, 1), p_shower=0.0, warp_mm=(0.0, 0.0), ventricle_expansion=(0.0, 0.0),
                            p_flip=0.5, max_oblique_deg=15.0)
    ph = make_phantom(seed, cfg)
    ijk = np.argwhere(ph.lesion.data > 0)
    world = ijk @ ph.lesion.affine[:3, :3].T + ph.lesion.affine[:3, 3]
    w2m = np.asarray(ph.meta["world_to_mni"])
    mni = world @ w2m[:3, :3].T + w2m[:3, 3]
    lid = ph.meta["lesion_ids"][0]
    sample = library.get(lid.split(":")[0])
    if lid.endswith(":mirrored"):
        sample = sample.mirror()
    truth = ndi.binary_dilation(sample.full() > 0, iterations=3)
    idx = np.round(mni @ np.linalg.inv(MNI_AFFINE)[:3, :3].T + np.linalg.inv(MNI_AFFINE)[:3, 3]).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(truth.shape)), axis=1)
    hits = truth[tuple(idx[inside].T)]
    assert inside.mean() > 0.95 and hits.mean() > 0.85
    centre = np.linalg.inv(ph.lesion.affine) @ np.append(world.mean(axis=0), 1.0)
    near = np.round(centre[:3]).astype(int)
    assert ph.brain.data[tuple(np.clip(near, 0, np.array(ph.brain.shape) - 1))] == 1


@pytest.mark.parametrize("unit", list(ADC_UNITS))
def test_adc_stored_in_requested_unit(fast_config, unit):
    ph = make_phantom(3, fast_config.with_(adc_units=(unit,)))
    assert ph.meta["adc_unit"] == unit and ph.adc.meta["adc_unit"] == unit
    tissue = (ph.brain.data > 0) & (ph.lesion.data == 0)
    med = float(np.median(ph.adc.data[tissue])) / ADC_UNITS[unit]
    assert 500.0 < med < 1500.0
    assert ph.meta["adc_to_1e-6"] == pytest.approx(1.0 / ADC_UNITS[unit])


def test_skull_stripped_or_present(fast_config):
    stripped = make_phantom(6, fast_config.with_(skull_strip_prob=1.0))
    outside = ndi.binary_dilation(stripped.brain.data > 0, iterations=2) == 0
    assert np.all(stripped.dwi.data[outside] == 0) and np.all(stripped.adc.data[outside] == 0)
    skull = make_phantom(6, fast_config.with_(skull_strip_prob=0.0))
    far = ndi.binary_dilation(skull.brain.data > 0, iterations=2) == 0
    assert np.count_nonzero(skull.dwi.data[far]) > 0.5 * far.sum()


def test_empty_case_and_embolic_shower(fast_config):
    empty = make_phantom(2, fast_config.with_(p_empty=1.0))
    assert empty.lesion.data.sum() == 0 and empty.meta["lesion_volume_ml"] == 0.0 and empty.meta["lesion_ids"] == []
    shower = make_phantom(2, fast_config.with_(p_shower=1.0, shower_size=(4, 6), lesion_volume_ml=None))
    lesions = shower.meta["lesions"]
    assert 4 <= len(lesions) <= 6
    assert all(les["volume_ml_mni"] <= fast_config.satellite_max_ml for les in lesions)


def test_territory_filter(fast_config, library):
    ph = make_phantom(4, fast_config.with_(territory="PCA", n_lesions=(1, 1), p_shower=0.0))
    lid = ph.meta["lesion_ids"][0]
    sample = library.get(lid.split(":")[0])
    if lid.endswith(":mirrored"):
        sample = sample.mirror()
    assert territory_group(sample.territory) == "PCA"
    assert ph.meta["lesions"][0]["territory"].startswith(("PCA", "PCT", "ACT"))
    assert territory_side(sample.territory) in ("L", "R")
