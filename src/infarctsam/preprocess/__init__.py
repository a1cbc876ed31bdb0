"""Preprocessing: canonical orientation, brain mask, normalisation, slice stacks; each with its inverse."""

from infarctsam.preprocess.orient import Reorient
from infarctsam.preprocess.pipeline import Preprocessed, preprocess
from infarctsam.preprocess.slices import SliceGrid

__all__ = ["Preprocessed", "Reorient", "SliceGrid", "preprocess"]
