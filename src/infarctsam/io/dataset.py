"""Finding cases in a dataset root: BIDS / ISLES'22 layout, flat folders, or a text file listing cases.

BIDS / ISLES'22::

    ROOT/rawdata/sub-X/ses-Y/dwi/sub-X_ses-Y_dwi.nii.gz     (ADC beside it: *_adc.nii.gz)
    ROOT/derivatives/sub-X/ses-Y/sub-X_ses-Y_msk.nii.gz     (lesion masks, any depth under derivatives/)

``ROOT/sub-X/...`` (BIDS without ``rawdata``) works too. A flat folder holds ``NAME_dwi.nii.gz`` (or any image) with
optional ``NAME_adc.*`` and ``NAME_mask.*`` / ``NAME_msk.*`` / ``NAME_lesion.*`` beside it. A text file lists one
case per line: a DWI path, optionally followed by an ADC path (tab, comma or whitespace separated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from infarctsam.errors import InputError
from infarctsam.io.volume import IMAGE_SUFFIXES, image_suffix, strip_image_suffix

_ENTITY = re.compile(r"(?:^|_)(sub|ses|acq|run|desc|space)-([A-Za-z0-9]+)")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
MASK_SUFFIXES = ("msk", "mask", "lesion", "label", "seg", "roi")
ADC_SUFFIXES = ("adc",)
DWI_SUFFIXES = ("dwi", "trace", "b1000")
LIST_SUFFIXES = (".txt", ".tsv", ".csv", ".lst")
OTHER_MODALITIES = ("flair", "t1w", "t2w", "b0", "snp", "brainmask", "brain")


@dataclass(frozen=True)
class Case:
    """One case of a dataset.

    Attributes
    ----------
    case_id : str
        Identifier safe to use in file names (``sub-X_ses-Y`` for BIDS, the file stem otherwise).
    dwi : Path
        The DWI image.
    adc : Path or None
        The ADC map, when found.
    mask : Path or None
        A reference lesion mask, when found.
    subject, session : str or None
        BIDS entities (without the ``sub-``/``ses-`` prefix).
    """

    case_id: str
    dwi: Path
    adc: Path | None = None
    mask: Path | None = None
    subject: str | None = None
    session: str | None = None


def parse_entities(name: str) -> dict[str, str]:
    """BIDS entities and suffix of a file name: ``sub-01_ses-2_dwi.nii.gz`` -> ``{'sub': '01', 'ses': '2',
    'suffix': 'dwi'}``."""
    stem = strip_image_suffix(Path(name).name)
    out = {k: v for k, v in _ENTITY.findall(stem)}
    parts = stem.split("_")
    if len(parts) > 1 or "-" not in parts[-1]:
        out["suffix"] = parts[-1].lower()
    return out


def safe_id(text: str) -> str:
    """Make a case identifier that cannot escape a folder: only letters, digits, '.', '_', '-'; no leading dot."""
    cleaned = _SAFE.sub("_", text).strip("._-")
    cleaned = re.sub(r"\.{2,}", "_", cleaned)
    if not cleaned:
        raise InputError(f"cannot make a safe case identifier from {text!r}")
    return cleaned[:128]


def bids_case_id(subject: str | None, session: str | None, fallback: str) -> str:
    """``sub-X[_ses-Y]`` when a subject is known, else the fallback, made safe; a fallback with no usable character
    (a name only in non-Latin script, ``脑卒中``) becomes ``case-`` and a short hash of the name."""
    if subject:
        return safe_id(f"sub-{subject}" + (f"_ses-{session}" if session else ""))
    if not _SAFE.sub("", fallback).strip("._-"):
        import hashlib

        return f"case-{hashlib.sha256(fallback.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"
    return safe_id(fallback)


def case_id_from_path(dwi: str | Path) -> str:
    """Case identifier from a DWI path: BIDS ``sub-X[_ses-Y]``, else the file stem without ``_dwi``; generic names
    (``dwi.mha``) and DICOM folders take their folder's name."""
    path = Path(dwi)
    ent = parse_entities(path.name)
    stem = strip_image_suffix(path.name)
    for tag in ("_dwi", "_trace", "_b1000"):
        if stem.lower().endswith(tag) and len(stem) > len(tag):
            stem = stem[: -len(tag)]
            break
    if stem.lower() in ("dwi", "trace", "b1000", "image", "dwi_trace") and path.parent.name:
        stem = path.parent.name
    return bids_case_id(ent.get("sub"), ent.get("ses"), stem)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)


def _key(ent: dict[str, str]) -> tuple[str | None, str | None]:
    return ent.get("sub"), ent.get("ses")


def _find_bids(root: Path) -> list[Case]:
    raw = root / "rawdata" if (root / "rawdata").is_dir() else root
    dwis = sorted(p for p in raw.glob("sub-*/**/*_dwi.*") if image_suffix(p) in IMAGE_SUFFIXES)
    masks: dict[tuple[str | None, str | None], Path] = {}
    deriv = root / "derivatives"
    if deriv.is_dir():
        for p in sorted(deriv.rglob("sub-*")):
            if p.is_file() and image_suffix(p):
                ent = parse_entities(p.name)
                if ent.get("suffix") in MASK_SUFFIXES:
                    masks.setdefault(_key(ent), p)
    cases = []
    for dwi in dwis:
        ent = parse_entities(dwi.name)
        stem = strip_image_suffix(dwi.name)[: -len("_dwi")]
        adc = next((q for q in _images(dwi.parent) if strip_image_suffix(q.name) == f"{stem}_adc"), None)
        sib_mask = next(
            (q for q in _images(dwi.parent) if strip_image_suffix(q.name) in {f"{stem}_{s}" for s in MASK_SUFFIXES}),
            None,
        )
        cases.append(
            Case(
                case_id=bids_case_id(ent.get("sub"), ent.get("ses"), stem),
                dwi=dwi,
                adc=adc,
                mask=masks.get(_key(ent), sib_mask),
                subject=ent.get("sub"),
                session=ent.get("ses"),
            )
        )
    return cases


def _find_flat(folder: Path) -> list[Case]:
    by_stem = {strip_image_suffix(p.name).lower(): p for p in _images(folder)}

    def token(stem: str) -> str:
        return stem.rsplit("_", 1)[-1]

    def base_of(stem: str) -> str:
        return stem.rsplit("_", 1)[0] if "_" in stem else ""

    def sibling(base: str, suffixes: tuple[str, ...]) -> Path | None:
        names = [f"{base}_{s}" if base else s for s in suffixes]
        return next((by_stem[n] for n in names if n in by_stem), None)

    tagged = [s for s in by_stem if token(s) in DWI_SUFFIXES]
    skip = MASK_SUFFIXES + ADC_SUFFIXES + OTHER_MODALITIES
    stems = tagged or [s for s in by_stem if token(s) not in skip]
    cases = []
    for stem in sorted(stems):
        base = base_of(stem) if tagged else stem
        path = by_stem[stem]
        ent = parse_entities(path.name)
        cases.append(
            Case(
                case_id=bids_case_id(ent.get("sub"), ent.get("ses"), strip_image_suffix(path.name)[: len(base)]
                                     if base else folder.name),
                dwi=path,
                adc=sibling(base, ADC_SUFFIXES),
                mask=sibling(base, MASK_SUFFIXES),
                subject=ent.get("sub"),
                session=ent.get("ses"),
            )
        )
    return cases


_HEADER_WORDS = ("dwi", "dwi_path", "path", "image", "case", "file")


def read_case_list(listing: str | Path) -> list[Case]:
    """Read a text file of cases: one ``DWI [ADC]`` per line (tab, comma or space separated).

    Relative paths are relative to the list's folder; blank lines, ``#`` comments and a header line (``dwi,adc``)
    are skipped. A listed file that does not exist is kept (a batch records it as a failed case), but a list in
    which no listed DWI exists is refused.

    Raises
    ------
    InputError
        Unreadable file, no case, or none of the listed DWIs exists.
    """
    from infarctsam.io.safety import MAX_LIST_BYTES, read_text_limited

    listing = Path(listing)
    lines = read_text_limited(listing, "case list", MAX_LIST_BYTES).splitlines()
    cases: list[Case] = []
    missing: tuple[int, Path] | None = None
    first = True
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in re.split(r"[\t,]|\s+", line) if f]
        if first and fields[0].lower() in _HEADER_WORDS:
            first = False
            continue
        first = False
        paths = [Path(f) if Path(f).is_absolute() else listing.parent / f for f in fields[:2]]
        if not paths[0].exists() and missing is None:
            missing = (n, paths[0])
        ent = parse_entities(paths[0].name)
        cases.append(Case(case_id=case_id_from_path(paths[0]), dwi=paths[0], adc=paths[1] if len(paths) > 1 else None,
                          subject=ent.get("sub"), session=ent.get("ses")))
    if not cases:
        raise InputError(f"{listing.name}: the case list is empty")
    if missing is not None and not any(c.dwi.exists() for c in cases):
        raise InputError(f"{listing.name}: none of the listed DWIs exists (line {missing[0]}: {missing[1]} not found); "
                         "relative paths are read from the list's folder")
    return cases


def unique_cases(cases: list[Case]) -> list[Case]:
    """Sort by case id and make ids unique (``-2``, ``-3``, ... on repeats)."""
    seen: dict[str, int] = {}
    unique = []
    for case in sorted(cases, key=lambda c: (c.case_id, str(c.dwi))):
        n = seen.get(case.case_id, 0)
        seen[case.case_id] = n + 1
        if n:
            case = Case(f"{case.case_id}-{n + 1}", case.dwi, case.adc, case.mask, case.subject, case.session)
        unique.append(case)
    return unique


def find_cases(root: str | Path) -> list[Case]:
    """List the cases in a dataset root, a flat folder or a text file of cases.

    Parameters
    ----------
    root : str or Path
        BIDS / ISLES'22 root, flat folder of images, or a ``.txt``/``.tsv``/``.csv`` listing DWI [ADC] per line.

    Returns
    -------
    list of Case
        Sorted by case id; case ids are unique (a numeric suffix is added to duplicates).

    Raises
    ------
    InputError
        When the path does not exist or holds no case.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"input not found: {root}")
    if root.is_file():
        if root.suffix.lower() not in LIST_SUFFIXES:
            raise InputError(f"{root.name}: expected a folder or a text file listing cases")
        cases = read_case_list(root)
    elif (root / "rawdata").is_dir() or any(root.glob("sub-*/")) and any(root.glob("sub-*/**/*_dwi.*")):
        cases = _find_bids(root)
    else:
        cases = _find_flat(root)
    if not cases:
        raise InputError(f"{root}: no cases found (expected BIDS rawdata/sub-*/.../*_dwi.nii.gz or image files)")
    return unique_cases(cases)
