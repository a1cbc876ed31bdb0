"""Synthetic stroke phantoms: DWI (b=1000) + ADC volumes with infarcts of known volume.

Real anatomy (the MNI152 2009 template shipped in nilearn) and real infarct shapes and locations (SOOP lesion masks
in MNI space) are combined with a follow-up infarct contrast model and a randomised acquisition (grid, orientation,
slice profile, bias, Rician noise, scaling, skull, ADC unit). See :func:`make_phantom` and :func:`write_cohort`.
"""

from infarctsam.synth.cohort import write_cohort
from infarctsam.synth.config import ADC_UNITS, PhantomConfig
from infarctsam.synth.library import LesionLibrary, LesionSample
from infarctsam.synth.phantom import Phantom, make_phantom

__all__ = ["ADC_UNITS", "LesionLibrary", "LesionSample", "Phantom", "PhantomConfig", "make_phantom", "write_cohort"]
