"""Label tables of the shipped atlases: JHU arterial territories (level 1 and 2) and the derived brain regions.

The level-1 intensities and their level-2 / circulation grouping follow ``ArterialAtlasLables.txt`` of the JHU
Digital 3D Brain MRI Arterial Territories Atlas (Liu et al., Scientific Data 2023); the level-2 grouping is taken
from that table's *intensity* column (its name column has copy errors, e.g. label 17 "PCAR"), and the side from the
territory's full name.
"""

from __future__ import annotations

# level-1 intensity: (code, full name, level-2 code)
LEVEL1: dict[int, tuple[str, str, str]] = {
    1: ("ACAL", "anterior cerebral artery left", "ACAL"),
    2: ("ACAR", "anterior cerebral artery right", "ACAR"),
    3: ("MLSL", "medial lenticulostriate left", "ACAL"),
    4: ("MLSR", "medial lenticulostriate right", "ACAR"),
    5: ("LLSL", "lateral lenticulostriate left", "MCAL"),
    6: ("LLSR", "lateral lenticulostriate right", "MCAR"),
    7: ("MCAFL", "frontal pars of middle cerebral artery left", "MCAL"),
    8: ("MCAFR", "frontal pars of middle cerebral artery right", "MCAR"),
    9: ("MCAPL", "parietal pars of middle cerebral artery left", "MCAL"),
    10: ("MCAPR", "parietal pars of middle cerebral artery right", "MCAR"),
    11: ("MCATL", "temporal pars of middle cerebral artery left", "MCAL"),
    12: ("MCATR", "temporal pars of middle cerebral artery right", "MCAR"),
    13: ("MCAOL", "occipital pars of middle cerebral artery left", "MCAL"),
    14: ("MCAOR", "occipital pars of middle cerebral artery right", "MCAR"),
    15: ("MCAIL", "insular pars of middle cerebral artery left", "MCAL"),
    16: ("MCAIR", "insular pars of middle cerebral artery right", "MCAR"),
    17: ("PCATL", "temporal pars of posterior cerebral artery left", "PCAL"),
    18: ("PCATR", "temporal pars of posterior cerebral artery right", "PCAR"),
    19: ("PCAOL", "occipital pars of posterior cerebral artery left", "PCAL"),
    20: ("PCAOR", "occipital pars of posterior cerebral artery right", "PCAR"),
    21: ("PCTPL", "posterior choroidal and thalamoperforators left", "PCAL"),
    22: ("PCTPR", "posterior choroidal and thalamoperforators right", "PCAR"),
    23: ("ACTPL", "anterior choroidal and thalamoperforators left", "PCAL"),
    24: ("ACTPR", "anterior choroidal and thalamoperforators right", "PCAR"),
    25: ("BL", "basilar left", "VBL"),
    26: ("BR", "basilar right", "VBR"),
    27: ("SCL", "superior cerebellar left", "VBL"),
    28: ("SCR", "superior cerebellar right", "VBR"),
    29: ("ICL", "inferior cerebellar left", "VBL"),
    30: ("ICR", "inferior cerebellar right", "VBR"),
    31: ("LVL", "lateral ventricle left", "LVL"),
    32: ("LVR", "lateral ventricle right", "LVR"),
}

# level-2 code: (artery, side, circulation)
LEVEL2: dict[str, tuple[str, str, str]] = {
    "ACAL": ("ACA", "left", "anterior"), "ACAR": ("ACA", "right", "anterior"),
    "MCAL": ("MCA", "left", "anterior"), "MCAR": ("MCA", "right", "anterior"),
    "PCAL": ("PCA", "left", "posterior"), "PCAR": ("PCA", "right", "posterior"),
    "VBL": ("VB", "left", "posterior"), "VBR": ("VB", "right", "posterior"),
    "LVL": ("LV", "left", "ventricle"), "LVR": ("LV", "right", "ventricle"),
}
LEVEL2_ORDER = ("ACAL", "ACAR", "MCAL", "MCAR", "PCAL", "PCAR", "VBL", "VBR", "LVL", "LVR")
CIRCULATIONS = ("anterior", "posterior", "ventricle")

# Brain regions derived from the arterial atlas and the MNI152 2009 tissue maps (see infarctsam.location.build).
REGIONS: dict[int, str] = {
    1: "cortex_L", 2: "cortex_R",
    3: "white_matter_L", 4: "white_matter_R",
    5: "deep_grey_L", 6: "deep_grey_R",
    7: "cerebellum_L", 8: "cerebellum_R",
    9: "brainstem_L", 10: "brainstem_R",
    11: "ventricle_L", 12: "ventricle_R",
}

OUTSIDE = "outside_atlas"


def level2_label(code: str) -> str:
    """Human-readable level-2 territory, e.g. ``MCAL`` -> ``left MCA``."""
    artery, side, _ = LEVEL2[code]
    return f"{side} {artery}"
