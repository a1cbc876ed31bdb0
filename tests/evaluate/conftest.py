"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalfixtures import make_cohort


@pytest.fixture
def cohort(tmp_path: Path) -> dict[str, Path]:
    """Six cases of 12x12x8 masks on an anisotropic, flipped grid; methodA lacks case05."""
    return make_cohort(tmp_path / "cohort")
