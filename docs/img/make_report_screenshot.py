"""Rebuild ``docs/img/report_screenshot.png``: the validation report of a demo cohort, screenshotted in Chromium.

The demo cohort is illustrative, not a result: reference masks are real SOOP infarct masks in MNI space (CC0, from
``../shared/data/soop-lesions-mni``), the two "methods" are simulated perturbations of them (boundary errors, missed
small lesions, false-positive blobs), and the background DWI is simulated from nilearn's MNI152 tissue templates.

Usage (from the repository root, with ``chromium`` on PATH)::

    python docs/img/make_report_screenshot.py [WORKDIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
SOOP = REPO.parent / "shared" / "data" / "soop-lesions-mni"
N_CASES = 24


def simulate(gt: np.ndarray, rng: np.random.Generator, noise: int) -> np.ndarray:
    """A plausible automatic segmentation: boundary error, occasional missed small lesion and false-positive blob."""
    pred = gt.copy()
    step = int(rng.integers(-1, 2 + noise))
    if step > 0:
        pred = ndimage.binary_dilation(pred, iterations=step)
    elif step < 0:
        pred = ndimage.binary_erosion(pred, iterations=1) | (gt & (rng.random(gt.shape) < 0.5))
    labels, n = ndimage.label(gt, structure=np.ones((3, 3, 3)))
    if n > 1 and rng.random() < 0.5:
        sizes = ndimage.sum(gt, labels, range(1, n + 1))
        pred[labels == int(np.argmin(sizes)) + 1] = False
    if rng.random() < 0.25 * (1 + noise):
        brain = np.argwhere(ndimage.binary_erosion(gt | True, iterations=30))
        c = brain[rng.integers(len(brain))]
        pred[tuple(slice(int(x) - 2, int(x) + 3) for x in c)] = True
    return pred


def tissue(ref: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """MNI152 grey- and white-matter probability maps on the grid of ``ref``."""
    from nilearn import datasets, image

    gm = image.resample_to_img(datasets.load_mni152_gm_template(), ref, interpolation="linear").get_fdata()
    wm = image.resample_to_img(datasets.load_mni152_wm_template(), ref, interpolation="linear").get_fdata()
    return gm, wm


def pseudo_dwi(gm: np.ndarray, wm: np.ndarray, lesion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DWI-like contrast from MNI152 tissue maps: brain mid-grey, CSF dark, infarct bright, with noise."""
    dwi = 420 * gm + 360 * wm + 900 * ndimage.gaussian_filter(lesion.astype(float), 1.0) * (gm + wm > 0.3)
    return np.clip(dwi + rng.normal(0, 25, dwi.shape) * (gm + wm > 0.1), 0, None).astype(np.float32)


def build(work: Path) -> Path:
    """Write the demo cohort under ``work`` and evaluate it; return the report path."""
    from infarctsam.evaluate import evaluate
    from infarctsam.report import write_report

    rng = np.random.default_rng(7)
    files = sorted(SOOP.glob("lesions/bwsrsub-*_lesion.nii.gz"))
    chosen = [files[i] for i in sorted(rng.choice(len(files), size=N_CASES, replace=False))]
    for d in ("gt", "sim-A", "sim-B", "dwi"):
        (work / d).mkdir(parents=True, exist_ok=True)
    gm, wm = tissue(nib.load(str(chosen[0])))  # every SOOP mask shares one MNI grid
    for path in chosen:
        img = nib.load(str(path))
        gt = np.asarray(img.dataobj) > 0
        case = path.name.split("_")[0].removeprefix("bwsr")
        outputs = {
            work / "gt" / f"{case}_msk.nii.gz": gt.astype(np.uint8),
            work / "sim-A" / f"{case}_mask.nii.gz": simulate(gt, rng, 0).astype(np.uint8),
            work / "sim-B" / f"{case}_mask.nii.gz": simulate(gt, rng, 1).astype(np.uint8),
            work / "dwi" / f"{case}_dwi.nii.gz": pseudo_dwi(gm, wm, gt, rng),
        }
        for out, data in outputs.items():
            nib.save(nib.Nifti1Image(data, img.affine), str(out))
    result = evaluate(work / "gt", [work / "sim-A", work / "sim-B"], clinical=SOOP / "participants.tsv")
    write_report(result, work / "report", image_dir=work / "dwi")
    return work / "report" / "report.html"


def screenshot(report: Path, out: Path, work: Path) -> None:
    """Screenshot the top of the report at 1100x2600 and store it downscaled as an optimised PNG."""
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found")
    raw = work / "raw.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={work / 'profile'}", "--window-size=1100,2600",
                    f"--screenshot={raw}", report.as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(raw).convert("RGB")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS).quantize(colors=192)
    img.save(out, optimize=True)


if __name__ == "__main__":
    if not SOOP.is_dir():
        sys.exit(f"needs {SOOP}")
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="infarctsam-demo-"))
    screenshot(build(workdir), REPO / "docs" / "img" / "report_screenshot.png", workdir)
    print(f"wrote docs/img/report_screenshot.png (demo cohort in {workdir})")
