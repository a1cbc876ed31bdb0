"""Input/output: images with their geometry, DWI/ADC loading, dataset discovery, atomic writing."""

from infarctsam.io.volume import Volume, read_volume

__all__ = ["Volume", "read_volume"]
