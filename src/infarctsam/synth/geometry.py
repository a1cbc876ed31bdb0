"""Acquisition geometry: a random slice grid, head pose and anatomy deformation, and slice-profile resampling.

A phantom is defined on the 1 mm template grid (MNI space). The scanner sees the head in *world* coordinates::

    world = c + R_head @ diag(s_head) @ (mni - c) + t_head      (head pose; not recorded in the affine)

and samples it on a slice grid whose affine (written to the file) may be oblique and have reversed or swapped axes.
Each output voxel averages ``n_sub`` points spread across the slice thickness (a box slice profile), each point read
by trilinear interpolation; a smooth random deformation and a ventricular enlargement displace the anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.synth.config import PhantomConfig

SUBSLICE_MM = 1.7  # at most this far between the points that sample one slice's thickness


@dataclass(frozen=True)
class SliceGrid:
    """The output grid and the slice profile.

    Attributes
    ----------
    shape : tuple of int
        Output array shape (i, j, k); k is the slice axis.
    affine : numpy.ndarray
        Voxel-to-world affine written to the file.
    thickness_mm : float
        Slice thickness (spacing along k is thickness plus gap).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    thickness_mm: float

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing along i, j, k (mm)."""
        return tuple(float(x) for x in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def subslice_offsets(self) -> np.ndarray:
        """Offsets (in k-index units) of the points averaged into one slice."""
        n = max(1, int(np.ceil(self.thickness_mm / SUBSLICE_MM - 1e-9)))
        mm = self.thickness_mm * ((np.arange(n) + 0.5) / n - 0.5)
        return mm / self.spacing[2]


@dataclass(frozen=True)
class HeadPose:
    """Rigid pose and size of the head in the scanner: ``world = centre + lin @ (mni - centre) + shift``."""

    centre: np.ndarray
    lin: np.ndarray
    shift: np.ndarray

    def world_to_mni(self) -> np.ndarray:
        """4x4 world-to-MNI matrix."""
        inv = np.linalg.inv(self.lin)
        out = np.eye(4)
        out[:3, :3] = inv
        out[:3, 3] = self.centre - inv @ (self.centre + self.shift)
        return out

    def mni_to_world(self) -> np.ndarray:
        """4x4 MNI-to-world matrix."""
        return np.linalg.inv(self.world_to_mni())


@dataclass(frozen=True)
class Deformation:
    """Smooth displacement ``mni -> mni + d(mni)`` (mm): random cosine modes plus ventricle enlargement."""

    wave_vectors: np.ndarray  # (K, 3) rad/mm
    phases: np.ndarray  # (K,)
    amplitudes: np.ndarray  # (K, 3) mm
    ventricles: np.ndarray  # (V, 3) centres, mm
    ventricle_strength: float
    ventricle_sigma_mm: float = 18.0

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Displacement components at MNI coordinates (arrays of one shape)."""
        dx = np.zeros_like(x)
        dy = np.zeros_like(x)
        dz = np.zeros_like(x)
        for w, ph, a in zip(self.wave_vectors, self.phases, self.amplitudes, strict=True):
            c = np.cos(w[0] * x + w[1] * y + w[2] * z + ph)
            dx += a[0] * c
            dy += a[1] * c
            dz += a[2] * c
        if self.ventricle_strength > 0:
            inv2s2 = -0.5 / self.ventricle_sigma_mm**2
            for v in self.ventricles:
                rx, ry, rz = x - v[0], y - v[1], z - v[2]
                g = self.ventricle_strength * np.exp((rx * rx + ry * ry + rz * rz) * inv2s2)
                dx -= g * rx
                dy -= g * ry
                dz -= g * rz
        return dx, dy, dz


def rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A rotation about a random axis by an angle uniform in [0, max_deg]."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def sample_pose(rng: np.random.Generator, cfg: PhantomConfig, brain_centre: np.ndarray) -> HeadPose:
    """Head tilt, size (isotropic with a little per-axis jitter) and position."""
    scale = rng.uniform(*cfg.head_scale) * rng.uniform(0.97, 1.03, size=3)
    lin = rotation(rng, cfg.head_tilt_deg) @ np.diag(scale)
    return HeadPose(np.asarray(brain_centre, float), lin, rng.uniform(-5.0, 5.0, size=3))


def sample_deformation(rng: np.random.Generator, cfg: PhantomConfig, ventricles: np.ndarray) -> Deformation:
    """Four random long-wavelength (60-160 mm) modes whose summed amplitude is about ``warp_mm``."""
    k = 4
    dirs = rng.normal(size=(k, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    wave = dirs * (2 * np.pi / rng.uniform(60.0, 160.0, size=(k, 1)))
    amp = rng.normal(size=(k, 3)) * rng.uniform(*cfg.warp_mm) / np.sqrt(k)
    return Deformation(wave, rng.uniform(0, 2 * np.pi, size=k), amp, np.asarray(ventricles, float),
                       float(rng.uniform(*cfg.ventricle_expansion)))


def sample_grid(rng: np.random.Generator, cfg: PhantomConfig, centre_world: np.ndarray,
                lowest_z_mm: float) -> SliceGrid:
    """A random axial slice grid (spacing, size, obliquity, axis flips) centred near ``centre_world``.

    The field of view is shifted at random by up to ``fov_shift_mm``; its lower edge is kept above
    ``lowest_z_mm`` - 10 mm (the template ends there).
    """
    inplane = float(rng.uniform(*cfg.inplane_mm))
    thick = float(rng.uniform(*cfg.slice_mm))
    step = thick + float(rng.uniform(*cfg.slice_gap_mm))
    if cfg.shape is not None:
        shape = tuple(int(s) for s in cfg.shape)
    else:
        n_in = int(round(rng.uniform(*cfg.fov_mm) / inplane))
        shape = (n_in, n_in, max(2, int(round(rng.uniform(*cfg.coverage_mm) / step))))
    spacing = np.array([inplane, inplane, step])
    axes = np.eye(3)
    if rng.random() < cfg.p_swap_inplane:
        axes = axes[:, [1, 0, 2]]
    signs = np.where(rng.random(3) < cfg.p_flip, -1.0, 1.0)
    lin = rotation(rng, cfg.max_oblique_deg) @ axes @ np.diag(signs * spacing)
    centre = np.asarray(centre_world, float) + rng.uniform(-1, 1, size=3) * cfg.fov_shift_mm
    half_z = 0.5 * (shape[2] - 1) * step * abs(lin[2, 2] / np.linalg.norm(lin[:, 2]))
    centre[2] = max(centre[2], lowest_z_mm - 10.0 + half_z) if half_z < 80.0 else centre[2]
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = centre - lin @ ((np.array(shape) - 1) / 2.0)
    return SliceGrid(shape, affine, thick)  # type: ignore[arg-type]


def source_coordinates(grid: SliceGrid, world_to_src: np.ndarray, pose_w2m: np.ndarray, src_affine: np.ndarray,
                       deform: Deformation | None) -> list[np.ndarray]:
    """Source-grid voxel coordinates of every sub-slice point: a list (one per sub-slice) of (3, i, j, k) arrays.

    Parameters
    ----------
    grid : SliceGrid
        Output grid.
    world_to_src : numpy.ndarray
        4x4 world-to-source-voxel matrix (``inv(src_affine) @ pose_w2m``).
    pose_w2m : numpy.ndarray
        4x4 world-to-MNI matrix (to evaluate the deformation).
    src_affine : numpy.ndarray
        4x4 source voxel-to-MNI matrix.
    deform : Deformation or None
        Displacement in MNI mm, evaluated once per output voxel and shared by its sub-slice points.
    """
    ii, jj, kk = (np.arange(n, dtype=np.float32) for n in grid.shape)
    m_vox = (world_to_src @ grid.affine).astype(np.float32)
    base = [m_vox[a, 0] * ii[:, None, None] + m_vox[a, 1] * jj[None, :, None] + m_vox[a, 2] * kk[None, None, :]
            + m_vox[a, 3] for a in range(3)]
    if deform is not None:
        # The displacement is smooth (wavelengths >= 60 mm, ventricle sigma 18 mm): evaluate it every ~6 mm in-plane
        # and interpolate linearly.
        ci = _coarse_axis(grid.shape[0], grid.spacing[0])
        cj = _coarse_axis(grid.shape[1], grid.spacing[1])
        m_mni = (pose_w2m @ grid.affine).astype(np.float32)
        xyz = [m_mni[a, 0] * ci[:, None, None] + m_mni[a, 1] * cj[None, :, None] + m_mni[a, 2] * kk[None, None, :]
               + m_mni[a, 3] for a in range(3)]
        disp = [_upsample(_upsample(d, ci, grid.shape[0], 0), cj, grid.shape[1], 1) for d in deform(*xyz)]
        inv_src = np.linalg.inv(src_affine)[:3, :3].astype(np.float32)
        for a in range(3):
            base[a] = base[a] + inv_src[a, 0] * disp[0] + inv_src[a, 1] * disp[1] + inv_src[a, 2] * disp[2]
    stack = np.stack(base)
    out = []
    for off in grid.subslice_offsets():
        out.append(stack + (m_vox[:3, 2] * off).astype(np.float32)[:, None, None, None])
    return out


def _coarse_axis(n: int, spacing: float, step_mm: float = 6.0) -> np.ndarray:
    stride = max(1, int(step_mm // spacing))
    idx = np.arange(0, n, stride)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx.astype(np.float32)


def _upsample(arr: np.ndarray, coarse: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` from the sample positions ``coarse`` to 0..n-1."""
    if len(coarse) == n:
        return arr
    pos = np.interp(np.arange(n), coarse, np.arange(len(coarse)))
    lower = np.minimum(np.floor(pos).astype(int), len(coarse) - 2)
    w = (pos - lower).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = n
    w = w.reshape(shape)
    return np.take(arr, lower, axis=axis) * (1.0 - w) + np.take(arr, lower + 1, axis=axis) * w


def resample(src: np.ndarray, coords: list[np.ndarray], lo: np.ndarray | None = None) -> np.ndarray:
    """Average of trilinear reads of ``src`` at each coordinate set (zero outside ``src``).

    ``lo`` is the source-grid index of ``src[0, 0, 0]`` when ``src`` is a crop.
    """
    from scipy import ndimage as ndi

    shape = coords[0].shape[1:]
    acc = np.zeros(shape, dtype=np.float32)
    for c in coords:
        flat = c.reshape(3, -1)
        if lo is not None:
            flat = flat - np.asarray(lo, dtype=np.float32)[:, None]
        acc += ndi.map_coordinates(src, flat, order=1, mode="constant", cval=0.0, prefilter=False).reshape(shape)
    return acc / len(coords)


def resample_sparse(src: np.ndarray, lo: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """Like :func:`resample` for a small crop: only output voxels whose points fall in the crop are read."""
    from scipy import ndimage as ndi

    shape = coords[0].shape[1:]
    acc = np.zeros(int(np.prod(shape)), dtype=np.float32)
    hi = np.asarray(lo, dtype=np.float32) + np.array(src.shape, dtype=np.float32)
    lo32 = np.asarray(lo, dtype=np.float32)
    for c in coords:
        flat = c.reshape(3, -1)
        inside = np.all((flat > lo32[:, None] - 1) & (flat < hi[:, None]), axis=0)
        sel = np.nonzero(inside)[0]
        if sel.size:
            pts = flat[:, sel] - lo32[:, None]
            acc[sel] += ndi.map_coordinates(src, pts, order=1, mode="constant", cval=0.0, prefilter=False)
    return acc.reshape(shape) / len(coords)


def coordinate_box(coords: list[np.ndarray], shape: tuple[int, ...], margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Index box (lo, hi) of the source grid touched by the coordinates, clipped to ``shape``."""
    lo = np.min([c.reshape(3, -1).min(axis=1) for c in coords], axis=0)
    hi = np.max([c.reshape(3, -1).max(axis=1) for c in coords], axis=0)
    lo_i = np.clip(np.floor(lo).astype(int) - margin, 0, np.array(shape))
    hi_i = np.clip(np.ceil(hi).astype(int) + margin + 1, 0, np.array(shape))
    hi_i = np.maximum(hi_i, lo_i)
    return lo_i, hi_i
