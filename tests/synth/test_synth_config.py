"""PhantomConfig validation and presets."""

from __future__ import annotations

import pytest

from infarctsam.errors import ConfigError
from infarctsam.synth import PhantomConfig


def test_presets_are_valid_and_distinct():
    isles, clin, default = PhantomConfig.isles_like(), PhantomConfig.clinical(), PhantomConfig()
    assert isles.shape == (112, 112, 73) and isles.skull_strip_prob == 1.0
    assert clin.shape == (256, 256, 25) and clin.skull_strip_prob == 0.0 and clin.slice_mm == (5.0, 5.0)
    assert default.shape is None and 0.0 < default.skull_strip_prob < 1.0
    assert PhantomConfig.isles_like(p_empty=0.5).p_empty == 0.5


@pytest.mark.parametrize("changes", [
    {"inplane_mm": (2.0, 1.0)},
    {"snr": (0.0, 10.0)},
    {"p_shower": 1.5},
    {"adc_units": ("furlongs",)},
    {"adc_units": ()},
    {"shape": (10, 10)},
    {"n_lesions": (0, 2)},
    {"lesion_weighting": "heavy"},
])
def test_invalid_configs_raise_one_line_config_errors(changes):
    with pytest.raises(ConfigError) as err:
        PhantomConfig().with_(**changes)
    assert "\n" not in str(err.value)
