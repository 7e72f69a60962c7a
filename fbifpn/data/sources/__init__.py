"""One adapter per dataset layout; each `scan` lists videos with labels and splits, decoding nothing."""

import warnings

from fbifpn.data.sources import celebdf, deepfakebench, dfdc, dfdcp, ffpp
from fbifpn.data.sources.base import LayoutError, LayoutWarning, VideoEntry

LAYOUTS = {"ffpp": ffpp, "celebdf": celebdf, "dfdc": dfdc, "dfdcp": dfdcp, "deepfakebench": deepfakebench}


def scan(layout: str, *args, **kwargs) -> tuple[list[VideoEntry], list[dict]]:
    """`LAYOUTS[layout].scan(...)`, with its LayoutWarnings returned as records
    ({"message": ..., **details}) for prep_report.json instead of shown; other warnings still show."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = LAYOUTS[layout].scan(*args, **kwargs)
    notes = []
    for w in caught:
        if isinstance(w.message, LayoutWarning):
            notes.append({"message": w.message.message, **w.message.details})
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return entries, notes


__all__ = ["LAYOUTS", "LayoutError", "LayoutWarning", "VideoEntry", "scan"]
