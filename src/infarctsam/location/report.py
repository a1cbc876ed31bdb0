"""The location report of one lesion mask: millilitres and shares per territory, circulation and region.

Shares are fractions of the whole lesion volume (``outside_atlas`` holds what maps outside the atlas); the
*territory fraction* is the part of each territory that is infarcted, computed in MNI space (lesion volume scaled by
the mapping's Jacobian over the territory's atlas volume).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infarctsam.location.atlas import Atlas, lesion_labels
from infarctsam.location.labels import CIRCULATIONS, LEVEL1, LEVEL2, LEVEL2_ORDER, OUTSIDE, REGIONS, level2_label
from infarctsam.location.register import Registration

ATLAS_NOTE = ("JHU Digital 3D Brain MRI Arterial Territories Atlas (Liu et al., Sci Data 2023; CC BY-SA 4.0); "
              "regions derived from it and the MNI152 2009 tissue maps (see docs/location.md)")


def _entry(ml: float, total: float) -> dict[str, float]:
    return {"ml": round(ml, 3), "share": round(ml / total, 4) if total > 0 else 0.0}


def location_report(mask: np.ndarray, affine: np.ndarray, reg: Registration, atlas: Atlas) -> dict[str, Any]:
    """The ``location`` section of a case JSON.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean lesion mask (x, y, z).
    affine : numpy.ndarray
        Its voxel-to-world (RAS, mm) matrix.
    reg : Registration
        The scan's mapping to MNI.
    atlas : Atlas
        The shipped atlases.

    Returns
    -------
    dict
        ``reliable``, ``summary`` (one line), ``dominant``, ``level2``, ``level1``, ``circulation``, ``side``,
        ``regions``, ``outside_atlas``, ``registration``, ``atlas``. When the mapping is unreliable every table is
        ``null`` and ``summary`` says why: no location is given as fact.
    """
    out: dict[str, Any] = {"reliable": reg.reliable, "registration": reg.describe(), "atlas": ATLAS_NOTE}
    tables = ("dominant", "level2", "level1", "circulation", "side", "regions", "outside_atlas")
    if not reg.reliable:
        out.update(dict.fromkeys(tables))
        out["summary"] = "location unreliable (registration to MNI failed its checks)"
        return out
    l1, rg, ml = lesion_labels(mask, affine, reg.to_mni, atlas)
    total = float(ml.sum())
    jac = float(abs(np.linalg.det(reg.to_mni[:3, :3])))
    per_l1 = np.bincount(l1, weights=ml, minlength=33)
    atlas_l1 = atlas.level1_ml
    level1 = {}
    level2 = {code: 0.0 for code in LEVEL2_ORDER}
    atlas_l2 = {code: 0.0 for code in LEVEL2_ORDER}
    for lab, (code, name, l2) in LEVEL1.items():
        level1[code] = {"name": name, **_entry(float(per_l1[lab]), total),
                        "territory_fraction": round(float(per_l1[lab]) * jac / atlas_l1[lab], 5)}
        level2[l2] += float(per_l1[lab])
        atlas_l2[l2] += float(atlas_l1[lab])
    out["level2"] = {code: {"name": level2_label(code), **_entry(v, total),
                            "territory_fraction": round(v * jac / atlas_l2[code], 5)} for code, v in level2.items()}
    out["level1"] = level1
    circ = {c: 0.0 for c in CIRCULATIONS}
    side = {"left": 0.0, "right": 0.0}
    for code, v in level2.items():
        _, s, c = LEVEL2[code]
        circ[c] += v
        side[s] += v
    out["circulation"] = {c: _entry(v, total) for c, v in circ.items()}
    out["side"] = {s: _entry(v, total) for s, v in side.items()}
    per_rg = np.bincount(rg, weights=ml, minlength=max(REGIONS) + 1)
    out["regions"] = {name: _entry(float(per_rg[lab]), total) for lab, name in REGIONS.items()}
    out["outside_atlas"] = _entry(float(per_l1[0]), total)
    if total <= 0:
        out["dominant"] = None
        out["summary"] = "no lesion"
        return out
    best = max(LEVEL2_ORDER, key=lambda c: level2[c])
    share = level2[best] / total
    out["dominant"] = {"territory": best, "name": level2_label(best), "share": round(share, 4)}
    out["summary"] = f"{level2_label(best)} {100 * share:.0f}%" if level2[best] > 0 else f"{OUTSIDE} 100%"
    return out


def location_columns(location: dict[str, Any] | None) -> dict[str, Any]:
    """Flat columns for tables (batch CSV, review page): dominant territory, its share, left/right/anterior/posterior
    shares and whether the location is reliable; empty values when there is no location."""
    cols: dict[str, Any] = {"location": "", "location_reliable": "", "dominant_territory": "",
                            "dominant_share": "", **{f"{c}_ml": "" for c in LEVEL2_ORDER[:8]}}
    if not location:
        return cols
    cols["location"] = location.get("summary", "")
    cols["location_reliable"] = bool(location.get("reliable"))
    dom = location.get("dominant") or {}
    cols["dominant_territory"] = dom.get("name", "")
    cols["dominant_share"] = dom.get("share", "")
    for code, entry in (location.get("level2") or {}).items():
        if f"{code}_ml" in cols:
            cols[f"{code}_ml"] = entry["ml"]
    return cols
