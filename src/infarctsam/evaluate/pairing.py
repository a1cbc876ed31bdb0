"""Finding lesion masks in a folder and pairing reference and predicted masks by case.

Two kinds of file are recognised anywhere in a folder:

* BIDS-named files (``sub-X[_ses-Y]_..._<suffix>.nii.gz``, at any depth) whose suffix is mask-like, e.g. ISLES'22
  ``derivatives/sub-X/ses-Y/sub-X_ses-Y_msk.nii.gz`` or infarctsam's
  ``sub-X_ses-Y_space-orig_desc-infarct_mask.nii.gz``; the case is ``sub-X[_ses-Y]``. Masks under ``derivatives/``
  win over others of the same case; ``desc-brain`` masks are ignored. Files directly in the folder named by entities
  only (``sub-01_ses-1.nii.gz``) are masks too.
* Other image files directly in the folder (a flat folder, e.g. ``case01_mask.nii.gz`` beside ``case01.json``); the
  case is the file stem without trailing mask-like tokens (``_mask``, ``_msk``, ``_lesion``, ``_seg``, ``_label``,
  ``_pred``, ``_desc-*``, ``_space-*``, ...), so ``case01_mask``, ``case01_msk`` and ``case01`` all match ``case01``.
  Files whose last token names an image modality (``_dwi``, ``_adc``, ``_flair``, ``_0000``, probability maps ...)
  are not masks and are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from infarctsam.errors import InputError
from infarctsam.io.dataset import parse_entities, safe_id
from infarctsam.io.volume import image_suffix, strip_image_suffix

MASK_TOKENS = ("mask", "msk", "lesion", "lesions", "seg", "label", "labels", "pred", "prediction", "roi", "dseg")
NON_MASK_TOKENS = (
    "dwi", "adc", "trace", "b1000", "b0", "flair", "t1w", "t2w", "snp", "probseg", "prob", "probability", "probs",
    "softmax", "logits", "brainmask", "brain",
)
NON_LESION_DESC = ("brain", "brainmask", "skull", "head", "tissue")
IMAGE_TOKENS = ("dwi", "trace", "b1000", "0000")
_STRIP = re.compile(r"_(?:desc|space)-[A-Za-z0-9]+$")


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and bool(image_suffix(path))


def flat_key(stem: str) -> tuple[str, bool]:
    """Case key of a flat file stem and whether a mask-like token was removed.

    ``case01_space-orig_desc-infarct_mask`` -> ``("case01", True)``; ``case01`` -> ``("case01", False)``.
    """
    key, stripped = stem, False
    while True:
        head, _, last = key.rpartition("_")
        if head and last.lower() in MASK_TOKENS:
            key, stripped = head, True
        elif head and _STRIP.search(key):
            key, stripped = _STRIP.sub("", key), True
        else:
            return key, stripped


def _bids_key(ent: dict[str, str]) -> str:
    return safe_id(f"sub-{ent['sub']}" + (f"_ses-{ent['ses']}" if ent.get("ses") else ""))


@dataclass
class MaskSet:
    """Masks found in one folder: ``masks`` maps case key to file."""

    root: Path
    masks: dict[str, Path] = field(default_factory=dict)


def single_mask(path: Path) -> MaskSet:
    """One mask file as a set of one case (keyed like a flat folder's file, or by subject and session)."""
    ent = parse_entities(path.name)
    key = _bids_key(ent) if "sub" in ent else flat_key(strip_image_suffix(path.name))[0]
    return MaskSet(root=path.parent, masks={key: path})


def one_case(gt: MaskSet, preds: dict[str, MaskSet]) -> dict[str, MaskSet]:
    """When the reference and every prediction are single files, the predictions take the reference's case key
    (a one-case user names files freely: ``lesion.nii.gz`` against ``out/case_mask.nii.gz``)."""
    if len(gt.masks) != 1 or any(len(ms.masks) != 1 for ms in preds.values()):
        return preds
    (key,) = gt.masks
    return {name: MaskSet(root=ms.root, masks={key: next(iter(ms.masks.values()))}) for name, ms in preds.items()}


def find_masks(root: str | Path) -> MaskSet:
    """Find the lesion masks in a flat folder or a BIDS / ISLES'22 root (see the module docstring), or take one
    mask file as a single case.

    Raises
    ------
    InputError
        The folder does not exist, holds no mask, or two files claim the same case.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"mask file or folder not found: {root}")
    if root.is_file() and _is_image(root):
        return single_mask(root)
    if not root.is_dir():
        raise InputError(f"{root}: expected a mask image or a folder of masks")
    # candidates[key] = list of (priority, path); higher priority wins, ties are an error.
    candidates: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(p for p in root.rglob("*") if _is_image(p)):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        stem = strip_image_suffix(path.name)
        ent = parse_entities(path.name)
        if "sub" in ent:
            suffix = ent.get("suffix", "")
            bare = "-" in suffix or not suffix  # only entities, e.g. a flat sub-01_ses-1.nii.gz prediction
            if ent.get("desc", "").lower() in NON_LESION_DESC or not (
                suffix in MASK_TOKENS or (bare and path.parent == root)
            ):
                continue
            key = _bids_key(ent)
            priority = 0 if bare else 2 if "derivatives" in path.relative_to(root).parts[:-1] else 1
        elif path.parent == root:
            last = stem.rsplit("_", 1)[-1].lower()
            if last in NON_MASK_TOKENS or (last in IMAGE_TOKENS and "_" in stem):
                continue
            key, stripped = flat_key(stem)
            priority = 1 if stripped else 0
        else:
            continue
        candidates.setdefault(key, []).append((priority, path))
    masks: dict[str, Path] = {}
    for key, found in sorted(candidates.items()):
        best = max(p for p, _ in found)
        top = [path for p, path in found if p == best]
        if len(top) > 1:
            names = ", ".join(str(p.relative_to(root)) for p in top[:3])
            raise InputError(f"{root}: several masks for case {key} ({names}); point to a folder holding one per case")
        masks[key] = top[0]
    if not masks:
        raise InputError(
            f"{root}: no lesion masks found (expected CASE_mask.nii.gz files or BIDS sub-X[_ses-Y]_*_msk/_mask files)"
        )
    return MaskSet(root=root, masks=masks)


def _align_sessions(ref_keys: set[str], keys: dict[str, Path]) -> dict[str, Path]:
    """Map ``sub-X`` keys to the reference's only ``sub-X_ses-Y`` key and vice versa (single-session datasets)."""
    out: dict[str, Path] = {}
    for key, path in keys.items():
        if key not in ref_keys:
            if "_ses-" not in key and key.startswith("sub-"):
                options = [r for r in ref_keys if r.startswith(key + "_ses-")]
            elif "_ses-" in key and key.startswith("sub-"):
                options = [key.split("_ses-")[0]] if key.split("_ses-")[0] in ref_keys else []
            else:
                options = []
            if len(options) == 1 and options[0] not in keys:
                key = options[0]
        out.setdefault(key, path)
    return out


@dataclass
class Pairing:
    """Cases found on every side and those missing somewhere.

    Attributes
    ----------
    cases : list of str
        Case ids present in the reference and in every prediction, sorted.
    gt : dict
        Case id -> reference mask.
    preds : dict
        Method name -> (case id -> predicted mask).
    missing : dict
        ``"gt"`` or a method name -> case ids missing there (but present on some other side).
    """

    cases: list[str]
    gt: dict[str, Path]
    preds: dict[str, dict[str, Path]]
    missing: dict[str, list[str]]

    def missing_lines(self) -> list[str]:
        """One human-readable line per side with missing cases."""
        lines = []
        for side, ids in self.missing.items():
            where = "the reference (GT)" if side == "gt" else f"prediction {side!r}"
            shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            lines.append(f"{len(ids)} case(s) missing in {where}, left out: {shown}")
        return lines


def pair_masks(gt: MaskSet, preds: dict[str, MaskSet], strict: bool = False) -> Pairing:
    """Match reference and predicted masks by case key.

    Parameters
    ----------
    gt : MaskSet
        Reference masks.
    preds : dict
        Method name -> predicted masks.
    strict : bool
        Raise instead of leaving out cases missing on one side.

    Raises
    ------
    InputError
        No case is common to all sides, or (with ``strict``) some case is missing somewhere.
    """
    ref = set(gt.masks)
    aligned = {name: _align_sessions(ref, ms.masks) for name, ms in preds.items()}
    all_keys = ref.union(*[set(m) for m in aligned.values()])
    common = sorted(ref.intersection(*[set(m) for m in aligned.values()]))
    missing: dict[str, list[str]] = {}
    if ref != all_keys:
        missing["gt"] = sorted(all_keys - ref)
    for name, masks in aligned.items():
        if set(masks) != all_keys:
            missing[name] = sorted(all_keys - set(masks))
    pairing = Pairing(cases=common, gt={c: gt.masks[c] for c in common},
                      preds={n: {c: m[c] for c in common} for n, m in aligned.items()}, missing=missing)
    if strict and missing:
        raise InputError("--strict: " + "; ".join(pairing.missing_lines()))
    if not common:
        examples = f"reference has {', '.join(sorted(ref)[:3])}; " + "; ".join(
            f"{n} has {', '.join(sorted(m)[:3])}" for n, m in aligned.items()
        )
        raise InputError(f"no case is found in both the reference and every prediction ({examples})")
    return pairing


def find_background(case: str, folders: list[Path], exclude: set[Path] | frozenset[Path] = frozenset()) -> Path | None:
    """Find a DWI for ``case`` in the given folders, for overlay backgrounds.

    Matches BIDS files ``sub-X[_ses-Y]_dwi`` / ``_trace`` at any depth and flat files ``CASE_dwi``, ``CASE_trace``,
    ``CASE_b1000``, ``CASE_0000`` (nnU-Net channel 0) or ``CASE`` directly in a folder; files in ``exclude`` (the
    masks themselves) are skipped. Returns None if nothing fits.
    """
    skip = {p.resolve() for p in exclude}
    for folder in folders:
        if not folder.is_dir():
            continue
        flat = []
        for path in sorted(p for p in folder.rglob("*") if _is_image(p) and p.resolve() not in skip):
            stem = strip_image_suffix(path.name)
            ent = parse_entities(path.name)
            if "sub" in ent:
                if ent.get("suffix") in ("dwi", "trace") and _bids_key(ent) == case:
                    return path
            elif path.parent == folder:
                head, _, last = stem.rpartition("_")
                if (head == case and last.lower() in IMAGE_TOKENS) or stem == case:
                    flat.append((0 if head == case else 1, path))
        if flat:
            return min(flat)[1]
    return None
