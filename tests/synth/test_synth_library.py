"""LesionLibrary: the bundled subset, sampling filters, mirroring, saving and reading a SOOP-style folder."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest

from infarctsam.errors import InputError
from infarctsam.synth import LesionLibrary
from infarctsam.synth.library import (
    BUNDLED_FILE,
    MNI_AFFINE,
    MNI_SHAPE,
    mirror_label,
    territory_group,
    territory_side,
)
from infarctsam.synth.library_build import library_from_folder

BUNDLED_COUNT = 157


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ idx + affine[:3, 3]


def test_bundled_library_count_span_and_size(library):
    assert len(library) == BUNDLED_COUNT
    vols = library.volumes_ml
    assert vols.min() <= 0.05 and vols.max() >= 200.0
    assert np.all(np.diff(vols) >= 0)  # stored by volume
    groups = {territory_group(int(t)) for t in library.territory}
    assert {"ACA", "MCA", "PCA", "VB"} <= groups
    assert "CC0" in library.info["licence"]
    ref = importlib.resources.files("infarctsam") / "data" / "soop" / BUNDLED_FILE
    with importlib.resources.as_file(ref) as path:
        assert path.stat().st_size < 1_500_000
    assert (path.parent / "ATTRIBUTION.md").is_file()


def test_entries_unpack_to_their_voxel_counts(library):
    for i in (0, len(library) // 2, len(library) - 1):
        sample = library.get(i)
        full = sample.full()
        assert full.shape == MNI_SHAPE
        assert int(full.sum()) == int(library.n_voxels[i]) == sample.n_voxels
        assert sample.volume_ml == pytest.approx(library.volumes_ml[i])
        assert np.allclose(sample.affine[:3, :3], MNI_AFFINE[:3, :3])
    assert library.get(str(library.ids[3])).lesion_id == library.ids[3]
    with pytest.raises(InputError):
        library.get("sub-does-not-exist")


def test_mirror_flips_hemisphere_and_territory(library):
    idx = library.indices(volume_ml=(1.0, 50.0), territory="MCA")
    sample = library.get(int(idx[0]))
    mirrored = sample.mirror()
    c0 = _centroid_mm(sample.full() > 0, MNI_AFFINE)
    c1 = _centroid_mm(mirrored.full() > 0, MNI_AFFINE)
    assert c1[0] == pytest.approx(-c0[0], abs=0.51) and c1[1:] == pytest.approx(c0[1:], abs=1e-6)
    assert mirrored.territory == mirror_label(sample.territory)
    assert territory_side(mirrored.territory) != territory_side(sample.territory)
    back = mirrored.mirror()
    assert back.lesion_id == sample.lesion_id and np.array_equal(back.crop, sample.crop)


def test_sampling_filters(library):
    rng = np.random.default_rng(0)
    for _ in range(10):
        s = library.sample(rng, volume_ml=(0.5, 5.0), territory="ACA")
        assert 0.5 <= s.volume_ml <= 5.0 and territory_group(s.territory) == "ACA"
        r = library.sample(rng, territory="MCA", side="R", mirror_prob=0.5)
        assert territory_side(r.territory) == "R"
    natural = np.log([library.sample(rng, weighting="natural").volume_ml for _ in range(400)])
    flat = np.log([library.sample(rng, weighting="log_uniform").volume_ml for _ in range(400)])
    # 'natural' follows SOOP (median about 12 mL in MNI space); 'log_uniform' spreads over 0.02-490 mL.
    assert 5.0 < np.exp(np.median(natural)) < 30.0
    assert np.ptp(np.percentile(flat, [10, 90])) > np.ptp(np.percentile(natural, [10, 90])) + 1.0
    with pytest.raises(InputError):
        library.sample(rng, volume_ml=(5000.0, 6000.0))
    with pytest.raises(InputError):
        library.indices(territory="XYZ")


def test_save_load_roundtrip(library, tmp_path):
    sub = library.subset([0, 10, 20])
    path = sub.save(tmp_path / "lib.npz")
    back = LesionLibrary.load(path)
    assert len(back) == 3 and list(back.ids) == list(sub.ids)
    for i in range(3):
        assert np.array_equal(back.get(i).crop, sub.get(i).crop)
    assert back.donor(0) == sub.donor(0)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        LesionLibrary.load(tmp_path / "bad.npz")


def _write_mask(path, mask):
    import nibabel as nib

    nib.save(nib.Nifti1Image(mask.astype(np.uint8), MNI_AFFINE), str(path))


def test_from_folder_reads_masks_atlas_and_table(tmp_path):
    import nibabel as nib

    les = tmp_path / "lesions"
    les.mkdir()
    inv = np.linalg.inv(MNI_AFFINE)

    def blob(centre_mm, radius):
        c = inv[:3, :3] @ np.asarray(centre_mm, float) + inv[:3, 3]
        idx = np.indices(MNI_SHAPE)
        return sum((idx[a] - c[a]) ** 2 for a in range(3)) <= radius**2

    _write_mask(les / "bwsrsub-7_lesion.nii.gz", blob((-30, -10, 20), 6))  # left hemisphere, in brain
    _write_mask(les / "bwsrsub-8_lesion.nii.gz", blob((25, 10, 30), 3))  # right hemisphere
    _write_mask(les / "bwsrsub-9_lesion.nii.gz", blob((-75, -108, -46), 3))  # grid corner: outside the brain
    atlas = np.zeros(MNI_SHAPE, np.int16)
    atlas[blob((-30, -10, 20), 10)] = 7  # MCAFL
    nib.save(nib.Nifti1Image(atlas, MNI_AFFINE), str(tmp_path / "ArterialAtlas136.nii.gz"))
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tsex\tage\tnihss\nsub-7\tF\t89+\t12\nsub-8\tn/a\tn/a\tn/a\n", encoding="utf-8")
    cache = tmp_path / "cache.npz"
    lib = library_from_folder(tmp_path, cache=cache)
    assert sorted(lib.ids) == ["sub-7", "sub-8"]  # the corner mask is implausible and dropped
    i7 = int(np.nonzero(lib.ids == "sub-7")[0][0])
    assert lib.get(i7).territory_name == "MCAFL"
    assert lib.donor(i7) == {"age": 89.0, "sex": "F", "nihss": 12.0}
    assert lib.donor(int(np.nonzero(lib.ids == "sub-8")[0][0]))["age"] is None
    assert cache.is_file()
    again = library_from_folder(tmp_path, cache=cache)
    assert list(again.ids) == list(lib.ids) and np.array_equal(again.bits, lib.bits)
    everything = library_from_folder(tmp_path, plausible_only=False)
    assert len(everything) == 3
    with pytest.raises(InputError):
        library_from_folder(tmp_path / "missing")
