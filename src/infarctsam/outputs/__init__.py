"""Outputs: lesion mask on the input grid, JSON summary, QC montage, BIDS-derivatives naming."""
