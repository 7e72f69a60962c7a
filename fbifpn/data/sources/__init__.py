"""One adapter per dataset layout. Each has the same `scan(root, options) -> [VideoEntry]`, which
lists videos with labels and splits, decoding nothing; its `TAKES` names the `ScanOptions` it uses."""

import warnings

from fbifpn.data.sources import celebdf, deepfakebench, dfdc, dfdcp, ffpp
from fbifpn.data.sources.base import LayoutError, LayoutWarning, ScanOptions, VideoEntry

LAYOUTS = {"ffpp": ffpp, "celebdf": celebdf, "dfdc": dfdc, "dfdcp": dfdcp, "deepfakebench": deepfakebench}


def scan(layout: str, root, **options) -> tuple[list[VideoEntry], list[dict]]:
    """`LAYOUTS[layout].scan(root, ScanOptions(**options))`, with its LayoutWarnings returned as
    records ({"message": ..., **details}) for prep_report.json instead of shown; other warnings show."""
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r} (layouts: {', '.join(LAYOUTS)})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = LAYOUTS[layout].scan(root, ScanOptions(**options))
    notes = []
    for w in caught:
        if isinstance(w.message, LayoutWarning):
            notes.append({"message": w.message.message, **w.message.details})
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return entries, notes


__all__ = ["LAYOUTS", "LayoutError", "LayoutWarning", "ScanOptions", "VideoEntry", "scan"]
