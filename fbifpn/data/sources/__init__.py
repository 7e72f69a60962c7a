"""One adapter per dataset layout; each `scan` lists videos with labels and splits, decoding nothing."""

from fbifpn.data.sources import celebdf, deepfakebench, dfdc, dfdcp, ffpp
from fbifpn.data.sources.base import LayoutError, VideoEntry

LAYOUTS = {"ffpp": ffpp, "celebdf": celebdf, "dfdc": dfdc, "dfdcp": dfdcp, "deepfakebench": deepfakebench}

__all__ = ["LAYOUTS", "LayoutError", "VideoEntry"]
