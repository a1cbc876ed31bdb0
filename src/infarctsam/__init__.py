"""infarctsam: prompt-free follow-up infarct volume measurement on diffusion-weighted MRI.

The package is organised as one module per pipeline stage, data flowing one way::

    io -> preprocess -> engines (model) -> postprocess -> outputs

with ``metrics -> stats -> report`` beside it for validation. Importing the package is cheap: heavy dependencies
(torch, matplotlib, dask) are imported only inside the functions that need them.
"""

from infarctsam._version import __version__

__all__ = ["__version__"]
