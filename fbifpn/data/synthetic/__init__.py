"""The synthetic forgery benchmark: procedural faces filmed as videos, four manipulation methods,
written in the FF++, Celeb-DF-v2 and DFDC layouts. Every figure made from it is labelled synthetic."""

from fbifpn.data.synthetic.generate import DATASETS, SIZES, default_out, generate

__all__ = ["DATASETS", "SIZES", "default_out", "generate"]
